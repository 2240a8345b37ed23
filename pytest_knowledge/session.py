"""The knowledge session: everything the pytest hooks delegate to.

It resolves which suites to run, builds collection nodes, runs cases through the
engine, judges them, and — on the controller only, never on an xdist worker —
gathers records, writes baselines and prints the table.
"""

from __future__ import annotations

import os
from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest

from .baselines import BaselineStore
from .engine import Engine
from .errors import KnowledgeError
from .nodes import CaseItem, KnowledgeFailure, SuiteFile
from .report import table
from .suite import Suite, load_suite, suite_files
from .verdict import Record, error_record, judge

DEFAULT_SUITE = Path("suites") / "default.yaml"
RECORD_KEY = "knowledge_record"


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
        self._engine: Engine | None = None
        self._load_errors: dict[Any, str] = {}

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
        """Keep each model's cases together so a process loads each model once."""
        slots = [i for i, item in enumerate(items) if isinstance(item, CaseItem)]
        cases = sorted((items[i] for i in slots), key=lambda it: it.case.model.source)  # type: ignore[attr-defined]
        for slot, item in zip(slots, cases):
            items[slot] = item

    # -- running --------------------------------------------------------------------------
    @property
    def engine(self) -> Engine:
        if self._engine is None:
            self._engine = Engine()
        return self._engine

    def run_item(self, item: CaseItem) -> None:
        case = item.case
        if case.model in self._load_errors:
            raise KnowledgeError(self._load_errors[case.model])
        try:
            result = self.engine.run(case)
        except KnowledgeError as error:
            item.user_properties.append((RECORD_KEY, error_record(case, str(error)).to_json()))
            if "cannot load" in str(error):
                self._load_errors[case.model] = str(error)
            raise
        baseline_file = self.store.path(case.suite, case.model.name)
        stored = self.store.get(case.suite, case.model.name, case.id)
        record = judge(case, result, stored, self.update, os.path.relpath(baseline_file, self.rootpath))
        item.user_properties.append((RECORD_KEY, record.to_json()))
        for key in ("metric", "current", "baseline", "delta", "dense", "status"):
            item.user_properties.append((f"knowledge_{key}", getattr(record, key)))
        if not record.passed:
            raise KnowledgeFailure(record.message)

    # -- controller side ------------------------------------------------------------------
    def on_report(self, report: pytest.TestReport) -> None:
        for key, value in report.user_properties:
            if key == RECORD_KEY and report.when == "call":
                self.records.append(Record(**value))

    def finish(self) -> None:
        """Write baselines from the records (controller only) after every case has reported."""
        if self.is_worker or not self.update:
            return
        grouped: dict[tuple[str, str], dict[str, dict]] = defaultdict(dict)
        for record in self.records:
            if record.entry is not None and record.status in ("new", "updated"):
                grouped[(record.suite, record.model)][record.case_id] = record.entry
        for (suite, model), entries in sorted(grouped.items()):
            self.store.write(suite, model, entries)

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
        stale = self.stale_entries()
        if stale:
            reporter.write_sep("-", f"{len(stale)} baseline entries not used by any case")
            for line in stale:
                reporter.write_line(f"  {line}")
