"""``pytest-knowledge``: read the run history and maintain baselines outside a test session.

    pytest-knowledge runs                      list recorded runs
    pytest-knowledge history --model M         each case's metric over recent runs, step-downs flagged
    pytest-knowledge compare latest~1 latest   deltas between two runs; exit 1 on a regression
    pytest-knowledge report out.html           HTML (or .md) report of a run from the store
    pytest-knowledge baselines list|diff|prune baseline files: list, compare with a run, drop stale entries
    pytest-knowledge merge r1.json r2.json     combine the results of sharded runs; exit 1 if a case failed

Exit status: 0 fine, 1 a regression (``compare``, ``history --check``, ``merge``), 2 a usage or input error.
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

from sqlalchemy.exc import SQLAlchemyError
from tabulate import tabulate

from pytest_knowledge.core.errors import KnowledgeError
from pytest_knowledge.core.formatting import number
from pytest_knowledge.gate.record import same_measurement
from pytest_knowledge.reports.files import write_report
from pytest_knowledge.reports.table import table
from pytest_knowledge.stores.baselines import BaselineStore
from pytest_knowledge.stores.history import (
    DEFAULT_WINDOW,
    FAILING,
    HistoryStore,
    RunInfo,
    history_url,
)
from pytest_knowledge.stores.results_file import (
    merge,
    missing_records,
    update_baselines,
)
from pytest_knowledge.suite.parse import load_suite

REGRESSION = 1
USAGE = 2


def _table(rows: Sequence[Sequence[object]], headers: Sequence[str]) -> str:
    return tabulate(rows, headers=headers, tablefmt="simple", disable_numparse=True)


def _short(commit: str | None) -> str:
    return commit[:10] if commit else "-"


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a number >= 1, got {text}")
    return value


def _open(args: argparse.Namespace) -> HistoryStore:
    return HistoryStore(history_url(args.history, Path.cwd()), create=False)


# -- runs ------------------------------------------------------------------------------------


def _run_row(run: RunInfo) -> tuple[object, ...]:
    dirty = "+dirty" if run.git_dirty else ""
    return (run.id, run.started_at.strftime("%Y-%m-%d %H:%M"), f"{_short(run.git_commit)}{dirty}",
            run.git_branch or "-", ",".join(run.suites), run.host, run.device, run.cases, run.failed, run.state)


def cmd_runs(args: argparse.Namespace) -> int:
    with _open(args) as store:
        runs = store.runs(last=args.last)
    headers = ("run", "started (UTC)", "commit", "branch", "suites", "host", "device", "cases", "failed", "state")
    print(_table([_run_row(r) for r in runs], headers) if runs else "no runs recorded")
    return 0


# -- history ---------------------------------------------------------------------------------


def cmd_history(args: argparse.Namespace) -> int:
    with _open(args) as store:
        series = store.case_history(suite=args.suite, model=args.model, method=args.method,
                                    benchmark=args.benchmark, case_id=args.case,
                                    last=max(args.last, 2 * args.window))
        runs = {r.id: r for r in store.runs()}
    if not series:
        print("no recorded cases match")
        return 0
    steps = {(s.suite, s.case_id, s.metric): s.step(args.window) for s in series}
    run_ids = sorted({p.run_id for s in series for p in s.points})[-args.last:]
    rows = []
    for s in sorted(series, key=lambda s: (steps[(s.suite, s.case_id, s.metric)] is None, s.suite, s.case_id)):
        values = {p.run_id: number(p.value) + ("*" if p.status in FAILING else "") for p in s.points}
        step = steps[(s.suite, s.case_id, s.metric)]
        flag = (f"STEP DOWN {step.earlier:.4f} -> {step.recent:.4f} (allowed drop {step.allowed:.4f})"
                if step else "")
        rows.append((s.case_id, s.metric, *(values.get(r, "") for r in run_ids), flag))
    print(_table(rows, ("case", "metric", *(f"#{r}" for r in run_ids), "trend")))
    print("* the case failed in that run")
    legend = [(f"#{r}", runs[r].started_at.strftime("%Y-%m-%d %H:%M"), _short(runs[r].git_commit),
               runs[r].git_branch or "-") for r in run_ids]
    print(_table(legend, ("run", "started (UTC)", "commit", "branch")))
    flagged = sum(step is not None for step in steps.values())
    if flagged:
        print(f"{flagged} case(s) step down: the median of the last {args.window} runs is worse than the median "
              f"of the {args.window} before by more than the case's tolerance")
    return REGRESSION if args.check and flagged else 0


# -- compare ---------------------------------------------------------------------------------


def cmd_compare(args: argparse.Namespace) -> int:
    with _open(args) as store:
        run_a, run_b = store.resolve(args.run_a), store.resolve(args.run_b)
        deltas = store.compare(run_a, run_b)
    deltas.sort(key=lambda d: (not d.regressed, d.suite, d.case_id))
    rows = [(d.case_id, d.metric, number(d.before), number(d.after), number(d.delta, signed=True), number(d.allowed),
             d.verdict) for d in deltas]
    print(_table(rows, ("case", "metric", f"run {run_a}", f"run {run_b}", "delta", "allowed drop", "verdict")))
    counts = Counter(d.verdict for d in deltas)
    print(", ".join(f"{n} {verdict}" for verdict, n in sorted(counts.items())) or "no cases in either run")
    regressions = sum(d.regressed for d in deltas)
    if regressions:
        print(f"{regressions} regression(s) from run {run_a} to run {run_b}")
        return REGRESSION
    return 0


# -- report ----------------------------------------------------------------------------------


def cmd_report(args: argparse.Namespace) -> int:
    with _open(args) as store:
        run_id = store.resolve(args.run)
        records = store.run_records(run_id)
        exit_status = store.runs(only=run_id)[0].exit_status
        path = write_report(Path(args.output), records, store, title=f"Knowledge report, run {run_id}",
                            until_run=run_id, exit_status=exit_status)
    print(f"wrote {path} ({len(records)} cases from run {run_id})")
    return 0


# -- baselines -------------------------------------------------------------------------------


def _baseline_files(root: Path) -> list[tuple[str, str]]:
    """(suite, model) of every baseline file under ``root``."""
    return sorted((p.parent.name, p.stem) for p in root.glob("*/*.json"))


def cmd_baselines_list(args: argparse.Namespace) -> int:
    store = BaselineStore(Path(args.dir))
    rows = []
    for suite, model in _baseline_files(store.root):
        entries = store.entries(suite, model)
        dates = [e["date"] for e in entries.values() if "date" in e]
        rows.append((suite, model, len(entries), max(dates) if dates else "-", store.path(suite, model)))
    print(_table(rows, ("suite", "model", "entries", "newest entry", "file")) if rows
          else f"no baseline files under {store.root}")
    return 0


def _flipped(stored: str | None, measured: str | None) -> str:
    """How many examples changed outcome between two per-example outcome strings."""
    if not stored or not measured or len(stored) != len(measured):
        return "-"
    return str(sum(a != b for a, b in zip(stored, measured, strict=True)))


def cmd_baselines_diff(args: argparse.Namespace) -> int:
    baselines = BaselineStore(Path(args.dir))
    with _open(args) as store:
        run_id = store.resolve(args.run)
        records = store.run_records(run_id)
    rows = []
    measured: set[tuple[str, str, str]] = set()
    for record in records:
        measured.add((record.suite, record.model, record.case_id))
        stored = baselines.get(record.suite, record.model, record.case_id)
        entry = record.entry or {}
        if stored is None:
            rows.append((record.case_id, "-", number(record.current), "-", "-", "not in baselines"))
            continue
        same = same_measurement(stored, record.entry)
        delta = record.current - stored["value"] if record.current is not None else None
        rows.append((record.case_id, number(stored["value"]), number(record.current), number(delta, signed=True),
                     _flipped(stored.get("outcomes"), entry.get("outcomes")), "same" if same else "differs"))
    for suite, model in sorted({(s, m) for s, m, _ in measured}):
        for case_id, stored in sorted(baselines.entries(suite, model).items()):
            if (suite, model, case_id) not in measured:
                rows.append((case_id, number(stored["value"]), "-", "-", "-", f"not in run {run_id}"))
    print(_table(rows, ("case", "baseline", f"run {run_id}", "delta", "examples flipped", "state")))
    return 0


def cmd_baselines_prune(args: argparse.Namespace) -> int:
    suite = load_suite(Path(args.suite))
    store = BaselineStore(Path(args.dir))
    stale = store.stale(suite) if args.dry_run else store.prune(suite)
    for model, case_ids in stale.items():
        for case_id in sorted(case_ids):
            print(f"{'would remove' if args.dry_run else 'removed'} {store.path(suite.name, model)}: {case_id}")
    removed = sum(len(case_ids) for case_ids in stale.values())
    models = {m.name for m in suite.models}
    for suite_name, model_name in _baseline_files(store.root):
        if suite_name == suite.name and model_name not in models:
            print(f"left alone {store.path(suite_name, model_name)}: suite {suite.name!r} has no model {model_name!r}")
    print(f"{removed} stale entr{'y' if removed == 1 else 'ies'}{' (dry run)' if args.dry_run and removed else ''}")
    return 0


def cmd_merge(args: argparse.Namespace) -> int:
    """Combine the result files of sharded runs: one table, optional reports and baseline update.

    Exit 1 when a merged case did not pass, two files disagree about a case, or (with
    ``--expect``) a case of an expected suite is in no file; reports are written first.
    """
    merged = merge([Path(p) for p in args.results])
    suites = [load_suite(Path(p)) for p in args.expect or []]
    missing = missing_records(merged.records, suites)
    records = merged.records + missing
    print(table(records))
    for path in args.report or []:
        write_report(Path(path), records, None, title=args.title)
        print(f"knowledge report: {path}")
    written = update_baselines(BaselineStore(Path(args.dir)), merged.records) if args.update_baselines else None
    for path in written.written if written else []:
        print(f"baselines written: {path}")
    for problem in written.failed if written else []:
        print(f"baselines not written: {problem}", file=sys.stderr)
    for conflict in merged.conflicts:
        print(f"conflict: {conflict}", file=sys.stderr)
    for record in missing:
        print(f"missing: {record.suite}/{record.case_id} is in no results file", file=sys.stderr)
    failed = [r for r in records if r.failed]
    for record in failed:
        print(f"not passing: {record.suite}/{record.case_id} ({record.status})", file=sys.stderr)
    print(f"{len(merged.records)} cases from {len(args.results)} files, {len(failed)} not passing, "
          f"{len(merged.conflicts)} conflicts" + (f", {len(missing)} missing" if suites else ""))
    if written and written.failed:
        return USAGE
    return REGRESSION if failed or merged.conflicts else 0


# -- entry point -----------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="pytest-knowledge", description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--history", default=None, metavar="URL",
                        help="SQLAlchemy URL or SQLite path of the run history (default: .knowledge/history.db)")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    runs = commands.add_parser("runs", help="list recorded runs")
    runs.add_argument("--last", type=_positive, default=20, help="newest runs to show (default 20)")
    runs.set_defaults(handler=cmd_runs)

    history = commands.add_parser("history", help="each case's metric over recent runs, step-downs flagged")
    for option in ("suite", "model", "method", "benchmark"):
        history.add_argument(f"--{option}", help=f"only cases of this {option}")
    history.add_argument("--case", help="only this case id")
    history.add_argument("--last", type=_positive, default=8, help="runs to show per case (default 8)")
    history.add_argument("--window", type=_positive, default=DEFAULT_WINDOW,
                         help=f"runs per median in step detection (default {DEFAULT_WINDOW})")
    history.add_argument("--check", action="store_true", help="exit 1 when a case steps down")
    history.set_defaults(handler=cmd_history)

    compare = commands.add_parser("compare", help="deltas between two runs; exit 1 on a regression")
    compare.add_argument("run_a", metavar="RUN_A", help="run id, 'latest' or 'latest~N'")
    compare.add_argument("run_b", metavar="RUN_B", help="run id, 'latest' or 'latest~N'")
    compare.set_defaults(handler=cmd_compare)

    report = commands.add_parser("report", help="write an HTML (.html) or Markdown (.md) report of a run")
    report.add_argument("output", metavar="OUTPUT", help="report file; its suffix picks the format")
    report.add_argument("--run", default="latest", help="run id, 'latest' or 'latest~N' (default latest)")
    report.set_defaults(handler=cmd_report)

    baselines = commands.add_parser("baselines", help="list baseline files, diff them against a run, prune them")
    baselines.add_argument("--dir", default="baselines", help="baseline folder (default baselines)")
    actions = baselines.add_subparsers(dest="action", required=True, metavar="ACTION")
    actions.add_parser("list", help="baseline files and their entry counts").set_defaults(handler=cmd_baselines_list)
    diff = actions.add_parser("diff", help="stored baselines against the values of a run")
    diff.add_argument("--run", default="latest", help="run id, 'latest' or 'latest~N' (default latest)")
    diff.set_defaults(handler=cmd_baselines_diff)
    prune = actions.add_parser("prune", help="drop entries no case of a suite uses")
    prune.add_argument("suite", metavar="SUITE", help="suite file whose cases are kept")
    prune.add_argument("--dry-run", action="store_true", help="only say what would be removed")
    prune.set_defaults(handler=cmd_baselines_prune)
    merge_ = commands.add_parser("merge", help="combine --knowledge-results files of sharded runs")
    merge_.add_argument("results", nargs="+", metavar="RESULTS", help="results JSON files")
    merge_.add_argument("--report", action="append", metavar="PATH", help="also write a .html or .md report")
    merge_.add_argument("--update-baselines", action="store_true",
                        help="write the new and updated entries of every shard into the baseline folder")
    merge_.add_argument("--dir", default="baselines", help="baseline folder (default baselines)")
    merge_.add_argument("--expect", action="append", metavar="SUITE",
                        help="suite file the shards ran: its cases missing from every file count as errors; repeatable")
    merge_.add_argument("--title", default="Knowledge report", help="title of the reports (default: Knowledge report)")
    merge_.set_defaults(handler=cmd_merge)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exit_:  # --help, or a usage error argparse already printed
        return int(exit_.code or 0)
    try:
        return args.handler(args)
    except KnowledgeError as error:
        print(f"pytest-knowledge: {error}", file=sys.stderr)
        return USAGE
    except SQLAlchemyError as error:  # a database that broke after it was opened
        reason = getattr(error, "orig", None) or error
        print(f"pytest-knowledge: history database {args.history or '.knowledge/history.db'}: {reason}",
              file=sys.stderr)
        return USAGE


if __name__ == "__main__":
    sys.exit(main())
