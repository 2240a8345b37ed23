"""Report files: a self-contained HTML page for people, a Markdown summary for pull requests.

Both put what needs attention first: failing cases, then cases whose metric stepped down
over recent runs although each run passed (see ``history.detect_step``). The headline never
says "pass" for a session pytest failed, nor for one that recorded no case.
"""

from __future__ import annotations

import base64
import datetime as dt
import html
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from pathlib import Path

from tabulate import tabulate

from pytest_knowledge.core.errors import KnowledgeError
from pytest_knowledge.core.files import write_atomic
from pytest_knowledge.core.formatting import number
from pytest_knowledge.gate.record import SKIPPED, Record
from pytest_knowledge.reports.table import HEADERS, rows
from pytest_knowledge.stores.history import (
    DEFAULT_WINDOW,
    CaseSeries,
    HistoryStore,
    StepChange,
)
from pytest_knowledge.suite.parse import DENSE

HISTORY_RUNS = 30  # runs shown per case; older ones stay in the store
ATTENTION_HEADERS = ("case", "verdict", "metric", "dense", "baseline", "current", "delta", "retention")
FACT_HEADERS = ("subject", "relation", "expected", "answered now")
DRIFT_HEADERS = ("case", "metric", "earlier median", "recent median", "drop", "allowed", "since run")

HISTORY_FIGURES = 12  # history plots in the HTML report; drawing them dominates long histories


def write_report(path: Path, records: Sequence[Record], history: HistoryStore | None, *,
                 title: str = "Knowledge report", until_run: int | None = None, exit_status: int | None = None) -> Path:
    """Write HTML (``.html``/``.htm``) or Markdown (``.md``) atomically.

    With a history store, cases are also checked for step-downs over their stored runs
    (up to ``until_run`` when reporting on an older run); record the current run first
    so it is part of that history. ``exit_status`` is pytest's: a non-zero one is headlined
    even when every knowledge case passed.
    """
    suffix = path.suffix.lower()
    if suffix in (".html", ".htm"):
        render = render_html
    elif suffix in (".md", ".markdown"):
        render = render_markdown
    else:
        raise KnowledgeError(f"{path}: a report file must end in .html, .htm or .md")
    series = _series(records, history, until_run)
    write_atomic(path, render(records, series, title, exit_status))
    return path


def _series(records: Sequence[Record], history: HistoryStore | None, until_run: int | None) -> list[CaseSeries]:
    """The stored history of the reported cases (none without a store)."""
    if history is None:
        return []
    wanted = {(r.suite, r.case_id) for r in records}
    return [s for s in history.case_history(last=HISTORY_RUNS, until_run=until_run) if (s.suite, s.case_id) in wanted]


def _ordered(records: Iterable[Record]) -> list[Record]:
    """Failing cases first, then the grid order of the terminal table."""
    return sorted(records, key=lambda r: (r.passed, r.suite, r.model, r.benchmark, r.method != DENSE, r.method,
                                          r.ratio or 0))


def _steps(series: Iterable[CaseSeries]) -> list[tuple[CaseSeries, StepChange]]:
    found = ((s, s.step(DEFAULT_WINDOW)) for s in series)
    return [(s, step) for s, step in found if step is not None]


def _attention_row(r: Record) -> tuple[str, ...]:
    return (r.case_id, r.status, r.metric or "-", number(r.dense), number(r.baseline), number(r.current),
            number(r.delta, signed=True), number(r.retention))


def _drift_row(series: CaseSeries, step: StepChange) -> tuple[str, ...]:
    return (series.case_id, series.metric, number(step.earlier), number(step.recent), number(step.drop),
            number(step.allowed), f"#{series.measured[step.recent_start].run_id}")


def _headline(records: Sequence[Record], drifting: int, exit_status: int | None) -> str:
    failing = sum(r.failed for r in records)
    counts = ", ".join(f"{n} {status}" for status, n in sorted(Counter(r.status for r in records).items()))
    if failing:
        head = f"{failing} of {len(records)} cases failing"
    elif not records:
        head = "no case was recorded"
    elif exit_status:
        head = f"the session failed (pytest exit status {exit_status}) though none of its {len(records)} cases failed"
    elif any(r.status == SKIPPED for r in records):
        skipped = sum(r.status == SKIPPED for r in records)
        head = f"{len(records) - skipped} of {len(records)} cases pass, {skipped} skipped on this machine"
    else:
        head = f"all {len(records)} cases pass"
    if exit_status and (failing or not records):
        head += f" (pytest exit status {exit_status})"
    drift = f"; {drifting} stepping down over recent runs" if drifting else ""
    return f"{head}{drift}" + (f" ({counts})" if counts else "")


def _bad(records: Sequence[Record], drifting: int, exit_status: int | None) -> bool:
    """Whether the headline is a warning: anything but every recorded case passing in a passing session."""
    return bool(exit_status) or not records or drifting > 0 or any(r.failed for r in records)


# -- HTML --------------------------------------------------------------------------------

STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1200px; color: #222; }
table { border-collapse: collapse; margin: 0.5em 0 1.5em; font-size: 0.9em; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.6em; text-align: left; }
th { background: #f3f3f3; }
tr.fail td, tr.error td, tr.crashed td, tr.missing td { background: #fde8e8; }
tr.improved td, tr.new td, tr.updated td { background: #eef6ee; }
pre { background: #f7f7f7; padding: 0.6em; overflow-x: auto; }
img { max-width: 100%; display: block; margin: 0.5em 0 1.5em; }
.ok { color: #2a7a2a; } .bad { color: #c62828; }
"""


def _table(headers: Sequence[str], body: Iterable[Sequence[str]], classes: Iterable[str] | None = None) -> str:
    classes = list(classes) if classes is not None else None
    head = "".join(f"<th>{html.escape(h)}</th>" for h in headers)
    lines = []
    for i, row in enumerate(body):
        css = f' class="{html.escape(classes[i])}"' if classes else ""
        lines.append(f"<tr{css}>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in row) + "</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(lines)}</tbody></table>"


def _image(png: bytes, alt: str) -> str:
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{base64.b64encode(png).decode("ascii")}">'


def render_html(records: Sequence[Record], series: Sequence[CaseSeries], title: str,
                exit_status: int | None = None) -> str:
    ordered = _ordered(records)
    failing = [r for r in ordered if not r.passed]
    drifting = _steps(series)
    generated = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    verdict_class = "bad" if _bad(records, len(drifting), exit_status) else "ok"
    parts = [
        f"<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>{html.escape(title)}</title>"
        f"<style>{STYLE}</style></head><body>",
        f"<h1>{html.escape(title)}</h1>",
        f'<p class="{verdict_class}"><strong>{html.escape(_headline(records, len(drifting), exit_status))}</strong>'
        f" — generated {generated}</p>",
        "<h2>Needs attention</h2>",
    ]
    if not _bad(records, len(drifting), exit_status):
        parts.append("<p>Nothing: every case passes and none steps down over its recent runs.</p>")
    elif not failing and not drifting:
        parts.append("<p>No case failed, but the session did not pass: see the pytest output.</p>")
    if failing:
        parts.append("<h3>Failing cases</h3>")
        parts.append(_table(ATTENTION_HEADERS, map(_attention_row, failing), (r.status for r in failing)))
        parts += [f"<details><summary>{html.escape(r.case_id)}</summary><pre>{html.escape(r.message)}</pre></details>"
                  for r in failing if r.message]
        forgetting = [r for r in failing if r.lost]
        if forgetting:
            parts.append("<h3>Forgotten facts</h3>")
        for r in forgetting:
            parts.append(f"<p>{html.escape(r.case_id)}: {len(r.lost)} lost, {len(r.gained)} gained "
                         f"vs {html.escape(r.compared_with)}</p>")
            parts.append(_table(FACT_HEADERS, ((e["subject"], e["relation"], e["expected"], e["answer"])
                                               for e in r.lost)))
    if drifting:
        parts.append(f"<h3>Stepping down over recent runs</h3><p>The median of the last runs is worse than the "
                     f"median of the {DEFAULT_WINDOW} runs before them by more than the case's tolerance.</p>")
        parts.append(_table(DRIFT_HEADERS, (_drift_row(s, step) for s, step in drifting)))
    from pytest_knowledge.reports.plots import (  # matplotlib only when a report is drawn
        benchmark_figure,
        history_figure,
    )

    parts.append("<h2>Metric and retention versus ratio</h2>")
    for benchmark_records in _benchmark_groups(ordered):
        first_record = benchmark_records[0]
        name = f"{first_record.suite} / {first_record.model} / {first_record.benchmark}"
        parts.append(f"<h3>{html.escape(name)}</h3>")
        parts.append(_image(benchmark_figure(benchmark_records),
                            f"{first_record.metric} and retention versus ratio for {name}"))
    parts.append("<h2>History</h2>")
    flagged = {(s.suite, s.case_id): step for s, step in drifting}
    groups = _history_groups(series, flagged)
    if not groups:
        parts.append("<p>No case has two or more stored runs yet.</p>")
    shown = groups[:HISTORY_FIGURES]  # groups stepping down come first; all of them are listed above
    if len(shown) < len(groups):
        parts.append(f"<p>The first {HISTORY_FIGURES} groups, those stepping down first (every step-down is in "
                     f"the table above); {len(groups) - len(shown)} more groups are in "
                     "<code>pytest-knowledge history</code>.</p>")
    for group in shown:
        first = group[0]
        name = f"{first.suite} / {first.model} / {first.method} / {first.benchmark}"
        steps = {s.case_id: flagged[(s.suite, s.case_id)] for s in group if (s.suite, s.case_id) in flagged}
        parts.append(f"<h3>{html.escape(name)}</h3>")
        parts.append(_image(history_figure(group, steps), f"{first.metric} per run for {name}"))
    parts.append("<h2>All cases</h2>")
    parts.append(_table(HEADERS, rows(ordered), (r.status for r in ordered)))
    parts.append("</body></html>\n")
    return "\n".join(parts)


def _benchmark_groups(ordered: Sequence[Record]) -> list[list[Record]]:
    """Records per suite, model and benchmark, in first-seen order (so groups with failures come first)."""
    groups: dict[tuple[str, str, str], list[Record]] = defaultdict(list)
    for record in ordered:
        groups[(record.suite, record.model, record.benchmark)].append(record)
    return [g for g in groups.values() if any(r.current is not None for r in g)]


def _history_groups(series: Sequence[CaseSeries], flagged: dict[tuple[str, str], StepChange]) -> list[list[CaseSeries]]:
    """Series with at least two measured runs, per suite, model, method and benchmark; flagged groups first."""
    groups: dict[tuple[str, str, str, str], list[CaseSeries]] = defaultdict(list)
    for s in series:
        if len(s.measured) >= 2:
            groups[(s.suite, s.model, s.method, s.benchmark)].append(s)
    return sorted(groups.values(), key=lambda g: (not any((s.suite, s.case_id) in flagged for s in g),
                                                  g[0].suite, g[0].model, g[0].benchmark, g[0].method != DENSE,
                                                  g[0].method))


# -- Markdown ----------------------------------------------------------------------------


def render_markdown(records: Sequence[Record], series: Sequence[CaseSeries], title: str,
                    exit_status: int | None = None) -> str:
    """Short enough for a pull-request comment: problems as tables, the full grid folded away."""
    ordered = _ordered(records)
    failing = [r for r in ordered if not r.passed]
    drifting = _steps(series)
    lines = [f"### {title}", "", f"**{_headline(records, len(drifting), exit_status)}**", ""]
    if failing:
        lines += ["#### Failing cases", "",
                  tabulate(map(_attention_row, failing), headers=ATTENTION_HEADERS, tablefmt="github",
                           disable_numparse=True), ""]
    if drifting:
        lines += [f"#### Stepping down over recent runs (median of recent runs vs the {DEFAULT_WINDOW} before)", "",
                  tabulate((_drift_row(s, step) for s, step in drifting), headers=DRIFT_HEADERS, tablefmt="github",
                           disable_numparse=True), ""]
    lines += [f"<details><summary>All {len(records)} cases</summary>", "",
              tabulate(rows(ordered), headers=HEADERS, tablefmt="github", disable_numparse=True), "", "</details>", ""]
    return "\n".join(lines)
