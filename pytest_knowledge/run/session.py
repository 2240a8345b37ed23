"""The knowledge session: everything the pytest hooks delegate to.

It resolves which suites to run, builds collection nodes, runs cases through the
engine, judges them, and — on the controller only, never on an xdist worker —
gathers records, writes baselines and prints the table.

Every collected case ends as a record in every output, also one whose worker died or
that never ran (status ``crashed`` or ``error``), so no output counts fewer cases than
pytest collected; and an output that cannot be written fails the session. The outputs
themselves are plugins fed through this project's hooks (``hookspecs``, ``outputs``).
"""

from __future__ import annotations

import logging
import math
import os
import time
from collections import defaultdict
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from tabulate import tabulate

from pytest_knowledge.core.errors import KnowledgeError, Unavailable
from pytest_knowledge.engine.cache import ResultCache
from pytest_knowledge.engine.devices import cuda_count, pin_worker, visible_devices
from pytest_knowledge.engine.engine import Engine
from pytest_knowledge.engine.ratio_search import find_max_ratio
from pytest_knowledge.gate.record import SKIPPED, Record, error_record
from pytest_knowledge.gate.verdict import judge
from pytest_knowledge.reports.table import table
from pytest_knowledge.run.nodes import CaseItem, KnowledgeFailure, SearchItem, SuiteFile
from pytest_knowledge.run.outputs import (
    BaselinesOutput,
    FileOutput,
    HistoryOutput,
    facts_export,
    report,
    results_file,
)
from pytest_knowledge.run.sharding import assign_shards, parse_shard, worker_groups
from pytest_knowledge.stores.baselines import BaselineStore
from pytest_knowledge.stores.history import HistoryError, HistoryStore, history_url
from pytest_knowledge.suite.parse import Suite, load_suite, suite_files
from pytest_knowledge.suite.tolerance import retention_ok, within_baseline

DEFAULT_SUITE = Path("suites") / "default.yaml"
RECORD_KEY = "knowledge_record"
SEARCH_KEY = "knowledge_search"
CASE_KEY = "knowledge_case"  # (suite, case id) on every report of a case, so a crash report can be placed
CASES_OUTPUT = "knowledge_cases"  # a worker's collected cases, sent to the controller when it finishes
RUN_PHASES = ("setup", "call", "teardown")  # xdist reports a crashed worker's case with another phase
PROGRESS_FROM = 4  # runs of at least this many cases log cases done, rate and ETA
log = logging.getLogger("pytest_knowledge")


class KnowledgeSession:
    def __init__(self, config: pytest.Config):
        self.config = config
        self.rootpath = config.rootpath
        self.update = bool(config.getoption("knowledge_update_baselines"))
        self.store = BaselineStore(self._path(config.getoption("knowledge_baselines") or config.getini("knowledge_baselines")))
        self.suite_paths = self._suite_paths(config.getoption("knowledge_suite"))
        self.suites: dict[Path, Suite] = {}
        self.records: list[Record] = []
        self.expected: dict[str, tuple[str, str]] = {}  # node id -> (suite, case id) of every collected case
        self.recorded: set[str] = set()  # node ids that reported a record
        self.unrecorded: dict[str, pytest.TestReport] = {}  # a case's first failed or skipped report without a record
        self.problems: list[str] = []  # outputs that could not be written; they fail the session
        self.written: list[Path] = []  # baseline files written
        self.reports_written: list[Path] = []
        self.is_worker = hasattr(config, "workerinput")
        self.cache = ResultCache(
            self._path(config.getoption("knowledge_cache") or config.getini("knowledge_cache")),
            "off" if config.getoption("knowledge_no_cache") else
            "refresh" if config.getoption("knowledge_refresh_cache") else "use",
        )
        shard = config.getoption("knowledge_shard")
        self.shard = parse_shard(shard) if shard else None
        self.device: str | None = None
        self.threads: int | None = None
        self.search_resolution: float | None = (
            config.getoption("knowledge_search_resolution") if config.getoption("knowledge_find_max_ratio") else None
        )
        self.searches: list[dict[str, Any]] = []
        self.reports = [self._path(p) for p in config.getoption("knowledge_report") or []]
        self.history_url = None if config.getoption("knowledge_no_history") else history_url(
            config.getoption("knowledge_history"), self.rootpath)
        self.history: HistoryStore | None = None
        self.exitstatus = 0
        self.total = 0  # cases collected (on the controller also under xdist)
        self.started = time.monotonic()
        self._engine: Engine | None = None

    # -- set-up ---------------------------------------------------------------------------
    def _path(self, value: str | Path) -> Path:
        path = Path(value)
        return path if path.is_absolute() else self.rootpath / path

    def _suite_paths(self, option: str) -> list[Path]:
        if option == "default":
            option = self.config.getini("knowledge_suite") or str(DEFAULT_SUITE)
            target = self._path(option)
            bundled = Path(__file__).resolve().parents[1] / DEFAULT_SUITE
            if not target.exists() and option == str(DEFAULT_SUITE) and bundled.exists():
                target = bundled
        else:
            target = self._path(option)
        return [p.resolve() for p in suite_files(target)]

    def rewrite_args(self) -> None:
        """Run the suites when no paths were given; add them when other paths were."""
        given = self.config.args_source == pytest.Config.ArgsSource.ARGS
        suites = [str(p) for p in self.suite_paths]
        if not given:
            self.config.args[:] = suites
            return
        mentioned = {str(self._path(a.split("::")[0]).resolve()) for a in self.config.args}
        self.config.args.extend(s for s in suites if s not in mentioned)

    def devices(self) -> list[str]:
        """Accelerators the workers share (controller side)."""
        return visible_devices(self.config.getoption("knowledge_devices"), dict(os.environ), cuda_count)

    def configure_node(self, workerinput: dict[str, Any]) -> None:
        workerinput["knowledge_devices"] = self.devices()

    def configure_worker(self) -> None:
        """Pin this worker before any CUDA use: its device, or its share of CPU cores."""
        info = self.config.workerinput  # type: ignore[attr-defined]
        pinned = pin_worker(info["workerid"], int(info["workercount"]), info.get("knowledge_devices", []), os.environ)
        self.device = "cuda:0" if pinned.device is not None else None
        self.threads = pinned.threads

    def use_loadgroup(self) -> None:
        """Under ``-n``, schedule by the groups ``order`` assigns, unless another mode was chosen."""
        if getattr(self.config.option, "dist", "no") == "load":
            self.config.option.dist = "loadgroup"

    def open_history(self) -> None:
        """Open and check the history before any case runs (controller only), so a damaged database
        stops the session with one message instead of failing after its first case."""
        if self.history_url is None or self.is_worker or self.config.option.collectonly:
            return
        try:
            self.history = HistoryStore(self.history_url)
        except HistoryError as error:
            raise HistoryError(f"{error} (or run without history: --knowledge-no-history)") from None

    def register_outputs(self) -> None:
        """The outputs this session writes, as plugins of the knowledge hooks (controller only)."""
        if self.is_worker:
            return
        outputs: list[object] = []
        if self.update:
            outputs.append(BaselinesOutput())
        results = self.config.getoption("knowledge_results")
        if results:
            meta = {"suites": [str(p) for p in self.suite_paths], "shard": self.config.getoption("knowledge_shard")}
            outputs.append(FileOutput("results file", self._path(results), results_file(meta)))
        facts = self.config.getoption("knowledge_facts")
        if facts:
            outputs.append(FileOutput("facts export", self._path(facts), facts_export))
        outputs += [FileOutput("report", path, report) for path in self.reports]
        if self.history is not None:
            outputs.append(HistoryOutput(self.history))
        for i, output in enumerate(outputs):
            self.config.pluginmanager.register(output, f"knowledge-output-{i}-{type(output).__name__}")

    def load_all(self) -> None:
        """Validate every suite up front, so a bad one stops the run before anything executes."""
        for path in self.suite_paths:
            self.load(path)

    def load(self, path: Path) -> Suite:
        if path not in self.suites:
            self.suites[path] = load_suite(path)
        return self.suites[path]

    # -- collection -----------------------------------------------------------------------
    def collect_file(self, file_path: Path, parent: pytest.Collector) -> SuiteFile | None:
        if file_path.resolve() not in self.suite_paths:
            return None
        node = SuiteFile.from_parent(parent, path=file_path)
        node.suite = self.load(file_path.resolve())
        node.knowledge = self
        return node

    def collected(self, items: list[pytest.Item]) -> None:
        """Remember every case this session runs (after -k and shard selection) and tag its reports
        with the case, so the controller can account for a case whose worker died before reporting."""
        for item in items:
            if isinstance(item, CaseItem) and not isinstance(item, SearchItem):
                identity = (item.case.suite, item.case.id)
                self.expected[item.nodeid] = identity
                item.user_properties.append((CASE_KEY, list(identity)))
        self.total = len(self.expected)
        if self.is_worker:
            self.config.workeroutput[CASES_OUTPUT] = {nodeid: list(i) for nodeid, i in self.expected.items()}  # type: ignore[attr-defined]

    def worker_finished(self, output: dict[str, Any]) -> None:
        """A worker's collected cases (every worker collects all of them), including cases no worker started."""
        for nodeid, identity in output.get(CASES_OUTPUT, {}).items():
            self.expected.setdefault(nodeid, (identity[0], identity[1]))

    def order(self, items: list[pytest.Item]) -> None:
        """Keep each model's cases together, keep only this shard's cases, and group them
        for xdist so a worker loads each model once."""
        slots = [i for i, item in enumerate(items) if isinstance(item, CaseItem)]
        ordered: list[CaseItem] = sorted((items[i] for i in slots), key=lambda it: it.case.model.source)  # type: ignore[misc]
        for slot, item in zip(slots, ordered):
            items[slot] = item
        if self.shard is not None:
            shards = assign_shards([it.case for it in ordered], self.shard.count)
            dropped = {id(it) for it, s in zip(ordered, shards) if s != self.shard.index - 1}
            self.config.hook.pytest_deselected(items=[it for it in items if id(it) in dropped])
            items[:] = [it for it in items if id(it) not in dropped]
            ordered = [it for it in ordered if id(it) not in dropped]
        workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
        for item, group in zip(ordered, worker_groups([it.case for it in ordered], workers)):
            item.add_marker(pytest.mark.xdist_group(group))

    # -- running --------------------------------------------------------------------------
    @property
    def engine(self) -> Engine:
        if self._engine is None:
            export = self.config.getoption("knowledge_export")
            self._engine = Engine(self.cache, self.device, self.threads, self._path(export) if export else None)
        return self._engine

    def run_item(self, item: CaseItem) -> None:
        case = item.case
        try:
            stored = self.store.get(case.suite, case.model.name, case.id)  # an unreadable file fails before the run
            result = self.engine.run(case)
        except Unavailable as reason:  # this machine cannot run it: a skip with the reason, in every output
            item.user_properties.append((RECORD_KEY, error_record(case, str(reason), SKIPPED).to_json()))
            pytest.skip(str(reason))
        except KnowledgeError as error:
            item.user_properties.append((RECORD_KEY, error_record(case, str(error)).to_json()))
            raise
        baseline_file = self.store.path(case.suite, case.model.name)
        record = judge(case, result, stored, self.update, os.path.relpath(baseline_file, self.rootpath))
        item.user_properties.append((RECORD_KEY, record.to_json()))
        for key in ("metric", "current", "baseline", "delta", "dense", "status"):
            item.user_properties.append((f"knowledge_{key}", getattr(record, key)))
        if not record.passed:
            raise KnowledgeFailure(record.message)
        if record.message:
            item.warn(pytest.PytestWarning(f"{case.id}: {record.message}"))

    def run_search(self, item: SearchItem) -> None:
        """Largest ratio whose result still passes the case's tolerance measured against dense."""
        case = item.case
        assert case.method is not None and case.method.ratio_spec is not None

        def probe(ratio: float) -> tuple[float, bool]:
            try:
                cr = self.engine.run(replace(case, ratio=ratio))
            except KnowledgeError:
                return math.nan, False
            value, dense, higher = cr.result.value, cr.dense.value, cr.result.higher_is_better
            ok = within_baseline(value, dense, case.tolerance, higher) and retention_ok(value, dense, case.tolerance, higher)
            return value, ok

        result = find_max_ratio(case.method.ratio_spec.grid(self.search_resolution or 0.05), probe)
        item.user_properties.append((SEARCH_KEY, {
            "suite": case.suite, "model": case.model.name, "method": case.method_name,
            "benchmark": case.benchmark.name, "safe_ratio": result.safe_ratio, "evaluated": result.describe(),
        }))

    # -- controller side ------------------------------------------------------------------
    def on_report(self, report: pytest.TestReport) -> None:
        """Collect a case's record (controller only: workers' reports reach it over xdist)."""
        if self.is_worker:
            return
        for key, value in report.user_properties:
            if key == CASE_KEY:
                self.expected.setdefault(report.nodeid, (value[0], value[1]))
            if key == SEARCH_KEY and report.when == "call":
                self.searches.append(value)
            if key == RECORD_KEY and report.when == "call":
                self.recorded.add(report.nodeid)
                self._add(Record(**value))
                self._progress()
        if not report.passed and report.nodeid not in self.recorded:
            self.unrecorded.setdefault(report.nodeid, report)

    def _progress(self) -> None:
        """Cases done, rate and ETA, through the ``pytest_knowledge`` logger (pytest's live logging shows it)."""
        done, total = len(self.records), max(self.total, len(self.records))
        if total < PROGRESS_FROM:
            return
        elapsed = time.monotonic() - self.started
        rate = done / elapsed if elapsed > 0 else 0.0
        eta = f", ETA {(total - done) / rate:.0f} s" if rate > 0 and done < total else ""
        log.info("knowledge: %d/%d cases done, %.2f cases/s%s", done, total, rate, eta)

    def _add(self, record: Record) -> None:
        self.records.append(record)
        self.config.hook.pytest_knowledge_record(session=self, record=record)

    def _unrecorded_records(self) -> list[Record]:
        """A record for every collected case that reported none: crashed, failed outside the
        measurement, or never run; a skipped case stays a skip, and --co runs nothing."""
        if self.config.option.collectonly:
            return []
        cases = {(case.suite, case.id): case for suite in self.suites.values() for case in suite.cases()}
        records = []
        for nodeid, identity in self.expected.items():
            report = self.unrecorded.get(nodeid)
            if nodeid in self.recorded or identity not in cases or (report is not None and report.skipped):
                continue
            if report is None:
                message = (f"{nodeid} did not run: the session ended before it (stopped early by -x, --maxfail "
                           "or an interrupt, or its worker could not be restarted)")
                records.append(error_record(cases[identity], message))
            elif report.when not in RUN_PHASES:
                message = (f"{report.longreprtext}: the process running it died (killed, out of memory, or a "
                           "crash in native code) before it reported a result")
                records.append(replace(error_record(cases[identity], message), status="crashed"))
            else:
                crash = getattr(report.longrepr, "reprcrash", None)  # the exception's one-line message
                detail = crash.message if crash is not None else report.longreprtext.strip()
                records.append(error_record(cases[identity], f"{nodeid} failed in {report.when} before it "
                                                             f"reported a result: {detail}"))
        return records

    def output_failed(self, message: str) -> None:
        """An output could not be written: shown after the summary, and the session fails."""
        self.problems.append(message)

    def status(self) -> int:
        """pytest's exit status, made failing when an output could not be written."""
        failing = self.problems and not self.exitstatus
        return int(pytest.ExitCode.TESTS_FAILED) if failing else int(self.exitstatus)

    def finish(self, exitstatus: int) -> int:
        """Account for every collected case, then let the outputs write (controller only, after every
        case has reported); return the session's exit status, a failing one when an output failed."""
        if self.is_worker:
            return exitstatus
        self.exitstatus = exitstatus
        for record in self._unrecorded_records():
            self._add(record)
        self.config.hook.pytest_knowledge_finish(session=self)
        return self.status()

    def stale_entries(self) -> list[str]:
        """Stored entries no case of the loaded suites uses (with -k, deselected cases still count as used)."""
        return [f"{self.store.path(suite.name, model)}: {case_id}"
                for suite in map(self.load, self.suite_paths)
                for model, case_ids in self.store.stale(suite).items() for case_id in sorted(case_ids)]

    def summary(self, reporter: Any) -> None:
        if self.is_worker:
            return
        if self.records:
            reporter.write_sep("=", "knowledge summary")
            order = {id(r): i for i, r in enumerate(self.records)}
            records = sorted(self.records, key=lambda r: (r.suite, r.model, r.benchmark, r.method != "dense", r.method, r.ratio or 0, order[id(r)]))
            reporter.write_line(table(records))
            counts: dict[str, int] = defaultdict(int)
            for r in records:
                counts[r.status] += 1
            reporter.write_line(", ".join(f"{n} {status}" for status, n in sorted(counts.items())))
            if self.written:
                reporter.write_line(f"baselines written under {self.store.root}")
            for path in self.reports_written:
                reporter.write_line(f"knowledge report: {path}")
        if self.searches:
            reporter.write_sep("=", "largest safe ratio (passing the tolerance against dense)")
            rows = [(s["model"], s["method"], s["benchmark"], "-" if s["safe_ratio"] is None else f"{s['safe_ratio']:g}",
                     s["evaluated"].split("; evaluated ")[1]) for s in self.searches]
            reporter.write_line(tabulate(rows, headers=("model", "method", "benchmark", "safe ratio", "evaluated"),
                                         disable_numparse=True))
        stale = self.stale_entries()
        if stale:
            reporter.write_sep("-", f"{len(stale)} baseline entries not used by any case")
            for line in stale:
                reporter.write_line(f"  {line}")
        if self.problems:
            reporter.write_sep("!", "knowledge outputs failed (the session fails)", red=True)
            for problem in self.problems:
                reporter.write_line(f"ERROR: {problem}", red=True)
