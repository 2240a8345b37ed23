"""The knowledge session: everything the pytest hooks delegate to.

It resolves which suites to run, builds collection nodes, runs cases through the
engine, judges them, and — on the controller only, never on an xdist worker —
gathers records, writes baselines and prints the table.
"""

from __future__ import annotations

import math
import os
from collections import defaultdict
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from tabulate import tabulate

from pytest_knowledge.core.errors import KnowledgeError
from pytest_knowledge.engine.cache import ResultCache
from pytest_knowledge.engine.devices import cuda_count, pin_worker, visible_devices
from pytest_knowledge.engine.engine import Engine
from pytest_knowledge.engine.ratio_search import find_max_ratio
from pytest_knowledge.gate.verdict import Record, error_record, judge
from pytest_knowledge.reports.files import write_report
from pytest_knowledge.reports.table import export_facts, table
from pytest_knowledge.run.nodes import CaseItem, KnowledgeFailure, SearchItem, SuiteFile
from pytest_knowledge.run.sharding import assign_shards, parse_shard, worker_groups
from pytest_knowledge.stores.baselines import BaselineStore
from pytest_knowledge.stores.history import (
    HistoryStore,
    RunMeta,
    RunWriter,
    history_url,
)
from pytest_knowledge.stores.results_file import update_baselines, write_results
from pytest_knowledge.suite.parse import Suite, load_suite, suite_files
from pytest_knowledge.suite.tolerance import retention_ok, within_baseline

DEFAULT_SUITE = Path("suites") / "default.yaml"
RECORD_KEY = "knowledge_record"
SEARCH_KEY = "knowledge_search"


class KnowledgeSession:
    def __init__(self, config: pytest.Config):
        self.config = config
        self.rootpath = config.rootpath
        self.update = bool(config.getoption("knowledge_update_baselines"))
        self.store = BaselineStore(self._path(config.getoption("knowledge_baselines") or config.getini("knowledge_baselines")))
        self.suite_paths = self._suite_paths(config.getoption("knowledge_suite"))
        self.suites: dict[Path, Suite] = {}
        self.records: list[Record] = []
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
        self._history: HistoryStore | None = None
        self._run: RunWriter | None = None
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
            result = self.engine.run(case)
        except KnowledgeError as error:
            item.user_properties.append((RECORD_KEY, error_record(case, str(error)).to_json()))
            raise
        baseline_file = self.store.path(case.suite, case.model.name)
        stored = self.store.get(case.suite, case.model.name, case.id)
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
    def _history_run(self) -> RunWriter | None:
        """The history run of this session, opened at its first result so --co records nothing."""
        if self._run is None and self.history_url is not None:
            self._history = HistoryStore(self.history_url)
            device = ",".join(self.devices()) or "cpu"
            self._run = self._history.start_run(RunMeta.collect(self.suites.values(), device, self.rootpath))
        return self._run

    def on_report(self, report: pytest.TestReport) -> None:
        """Collect a case's record (controller only: workers' reports reach it over xdist)."""
        if self.is_worker:
            return
        for key, value in report.user_properties:
            if key == SEARCH_KEY and report.when == "call":
                self.searches.append(value)
            if key == RECORD_KEY and report.when == "call":
                record = Record(**value)
                self.records.append(record)
                run = self._history_run()
                if run is not None:
                    run.add([record])  # one transaction per case: an interrupted session keeps what ran

    def finish(self) -> None:
        """Write baselines from the records (controller only) after every case has reported."""
        if self.is_worker:
            return
        if self.update:
            update_baselines(self.store, self.records)
        results = self.config.getoption("knowledge_results")
        if results:
            meta = {"suites": [str(p) for p in self.suite_paths], "shard": self.config.getoption("knowledge_shard")}
            write_results(self._path(results), self.records, meta)
        if self._run is not None:
            self._run.finish()
        for path in self.reports:
            write_report(path, self.records, self._history)
        facts = self.config.getoption("knowledge_facts")
        if facts:
            export_facts(self._path(facts), self.records)
        if self._history is not None:
            self._history.close()

    def stale_entries(self) -> list[str]:
        """Stored entries no case of the loaded suites uses (with -k, deselected cases still count as used)."""
        stale = []
        for path in self.suite_paths:
            suite = self.load(path)
            ids = {c.id for c in suite.cases()}
            for model in suite.models:
                try:
                    entries = self.store.entries(suite.name, model.name)
                except KnowledgeError:
                    continue
                stale += [f"{self.store.path(suite.name, model.name)}: {cid}" for cid in sorted(set(entries) - ids)]
        return stale

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
            if self.update:
                reporter.write_line(f"baselines written under {self.store.root}")
            for path in self.reports:
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
