"""Report figures, drawn with matplotlib's Agg canvas and returned as PNG bytes.

Figures are built on ``matplotlib.figure.Figure`` directly rather than through pyplot,
so drawing a report never switches the process's global backend or leaks figures.
"""

from __future__ import annotations

import io
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from pytest_knowledge.gate.record import Record
from pytest_knowledge.stores.history import FAILING, CaseSeries, StepChange
from pytest_knowledge.suite.parse import DENSE, format_ratio

DPI = 100
FAILED_STYLE: dict[str, Any] = dict(marker="x", color="#d62728", markersize=10, markeredgewidth=2.5, linestyle="none",
                                    zorder=5)


def _png(figure: Figure) -> bytes:
    FigureCanvasAgg(figure)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=DPI, bbox_inches="tight")
    return buffer.getvalue()


def _direction(higher_is_better: bool) -> str:
    return "higher is better" if higher_is_better else "lower is better"


def benchmark_figure(records: Sequence[Record]) -> bytes:
    """One model on one benchmark: metric versus ratio and retention versus ratio, one line per method.

    The dense model is a dashed reference line; a method without a ratio (int8) is a
    dotted horizontal line at its value; failing cases are marked with a red cross.
    """
    first = records[0]
    figure = Figure(figsize=(11, 4.2))
    metric_axes, retention_axes = figure.subplots(1, 2)
    by_method: dict[str, list[Record]] = defaultdict(list)
    for record in records:
        if record.method != DENSE and record.current is not None:
            by_method[record.method].append(record)
    dense = next((r.current for r in records if r.method == DENSE and r.current is not None), None)
    if dense is not None:
        metric_axes.axhline(dense, color="black", linestyle="--", linewidth=1.5, label="dense")
    retention_axes.axhline(1.0, color="black", linestyle="--", linewidth=1.5, label="dense")
    for index, (method, points) in enumerate(sorted(by_method.items())):
        color = f"C{index}"
        with_ratio = sorted((r for r in points if r.ratio is not None), key=lambda r: float(r.ratio or 0))
        for axes, value in ((metric_axes, lambda r: r.current), (retention_axes, lambda r: r.retention)):
            for record in points:
                if record.ratio is None and value(record) is not None:
                    axes.axhline(value(record), color=color, linestyle=":", linewidth=2, label=f"{method} (no ratio)")
            plotted = [r for r in with_ratio if value(r) is not None]
            if plotted:
                axes.plot([r.ratio for r in plotted], [value(r) for r in plotted], marker="o", color=color,
                          label=method)
            failed = [r for r in plotted if r.status in FAILING]
            if failed:
                axes.plot([r.ratio for r in failed], [value(r) for r in failed], **FAILED_STYLE)
    metric_axes.set_title(f"{first.model} · {first.benchmark}")
    metric_axes.set_xlabel("ratio")
    metric_axes.set_ylabel(f"{first.metric} ({_direction(first.higher_is_better)})")
    retention_axes.set_title("retention versus dense")
    retention_axes.set_xlabel("ratio")
    retention_axes.set_ylabel("retention")
    for axes in (metric_axes, retention_axes):
        axes.grid(alpha=0.3)
        axes.legend(fontsize="small")
    return _png(figure)


def history_figure(series: Sequence[CaseSeries], steps: dict[str, StepChange]) -> bytes:
    """One method's cases over runs (one line per ratio); failed runs get a red cross.

    ``steps`` maps case ids to detected step-downs, drawn as a shaded band over the
    recent window with the earlier and recent medians as short horizontal segments.
    """
    first = series[0]
    figure = Figure(figsize=(11, 3.6))
    axes = figure.subplots()
    for index, case in enumerate(sorted(series, key=lambda s: (s.ratio is None, s.ratio or 0))):
        color = f"C{index}"
        measured = case.measured
        label = format_ratio(case.ratio) if case.ratio is not None else case.method
        axes.plot([p.run_id for p in measured], [p.value for p in measured], marker="o", color=color, label=label)
        failed = [p for p in measured if p.status in FAILING]
        if failed:
            axes.plot([p.run_id for p in failed], [p.value for p in failed], **FAILED_STYLE)
        step = steps.get(case.case_id)
        if step is not None:
            earlier = [p.run_id for p in measured[step.earlier_start:step.recent_start]]
            recent = [p.run_id for p in measured[step.recent_start:]]
            axes.axvspan(recent[0] - 0.4, recent[-1] + 0.4, color="#d62728", alpha=0.12)
            axes.hlines([step.earlier, step.recent], [earlier[0], recent[0]], [earlier[-1], recent[-1]],
                        colors=color, linestyles="--", linewidth=2.5)
            axes.annotate(f"step down {step.drop:.3f} (allowed {step.allowed:.3f})", (recent[-1], step.recent),
                          textcoords="offset points", xytext=(-8, -14), ha="right", color="#d62728", fontsize="small")
    axes.set_title(f"{first.model} · {first.method} · {first.benchmark}: {first.metric} per run")
    axes.set_xlabel("run")
    axes.set_ylabel(f"{first.metric} ({_direction(first.higher_is_better)})")
    axes.xaxis.set_major_locator(MaxNLocator(integer=True))
    axes.grid(alpha=0.3)
    axes.legend(title="ratio" if first.ratio is not None else None, fontsize="small")
    return _png(figure)
