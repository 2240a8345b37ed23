"""Run history: every knowledge session's results, kept in one SQL database.

Baselines say what a case *should* score; history says what it *did* score, run after
run. That is what finds a slow drift (each run within tolerance of the one before) and
the commit that caused a drop. Any SQLAlchemy URL works: SQLite at
``.knowledge/history.db`` for one machine, PostgreSQL for a team whose CI jobs all
write to one database. The schema is created on first use and carries a version.

A run is written in steps — the run row first, then cases in transactions, then its
finish time and pytest's exit status — so a session that is interrupted keeps what it
recorded. A damaged SQLite file is refused when it is opened, before a session runs a case.
"""

from __future__ import annotations

import datetime as dt
import os
import platform
import socket
import statistics
import subprocess
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import make_url

from pytest_knowledge.core.errors import KnowledgeError
from pytest_knowledge.core.versions import describe_versions
from pytest_knowledge.gate.verdict import Record
from pytest_knowledge.suite.parse import Suite
from pytest_knowledge.suite.tolerance import EPSILON, Tolerance, worsening

SCHEMA_VERSION = 1
DEFAULT_PATH = Path(".knowledge") / "history.db"
DEFAULT_WINDOW = 3
FAILING = ("fail", "error", "crashed")
# Branch names CI systems set when they check out a detached commit.
CI_BRANCH_VARIABLES = ("GITHUB_HEAD_REF", "GITHUB_REF_NAME", "CI_COMMIT_REF_NAME", "BRANCH_NAME")

metadata = sa.MetaData()

schema_table = sa.Table(
    "knowledge_schema", metadata,
    sa.Column("key", sa.String(64), primary_key=True),
    sa.Column("value", sa.String(256), nullable=False),
)

runs_table = sa.Table(
    "knowledge_runs", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("finished_at", sa.DateTime(timezone=True)),
    sa.Column("suites", sa.JSON, nullable=False),
    sa.Column("git_commit", sa.String(64)),
    sa.Column("git_branch", sa.String(256)),
    sa.Column("git_dirty", sa.Boolean),
    sa.Column("host", sa.String(256), nullable=False),
    sa.Column("platform", sa.String(256), nullable=False),
    sa.Column("device", sa.String(256), nullable=False),
    sa.Column("versions", sa.JSON, nullable=False),
    sa.Column("exit_status", sa.Integer),  # pytest's exit status; empty for an interrupted run
)

cases_table = sa.Table(
    "knowledge_cases", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("run_id", sa.Integer, sa.ForeignKey("knowledge_runs.id"), nullable=False, index=True),
    sa.Column("suite", sa.String(256), nullable=False),
    sa.Column("case_id", sa.String(512), nullable=False),
    sa.Column("model", sa.String(256), nullable=False),
    sa.Column("method", sa.String(256), nullable=False),
    sa.Column("ratio", sa.Float),
    sa.Column("benchmark", sa.String(256), nullable=False),
    sa.Column("metric", sa.String(128), nullable=False),
    sa.Column("higher_is_better", sa.Boolean, nullable=False),
    sa.Column("n", sa.Integer, nullable=False),
    sa.Column("dense", sa.Float),
    sa.Column("baseline", sa.Float),
    sa.Column("current", sa.Float),
    sa.Column("delta", sa.Float),
    sa.Column("retention", sa.Float),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("from_cache", sa.Boolean, nullable=False),
    sa.Column("message", sa.Text, nullable=False),
    sa.Column("method_report", sa.Text, nullable=False),
    sa.Column("seconds", sa.Float, nullable=False),
    sa.Column("fingerprint", sa.String(64)),
    sa.Column("entry", sa.JSON),
    sa.Column("tol_abs", sa.Float),
    sa.Column("tol_rel", sa.Float),
    sa.Column("tol_min_retention", sa.Float),
    sa.Index("ix_knowledge_cases_case", "suite", "case_id"),
)

# Record fields stored one-to-one as columns of the same name.
RECORD_COLUMNS = (
    "suite", "case_id", "model", "method", "ratio", "benchmark", "metric", "higher_is_better", "n", "dense",
    "baseline", "current", "delta", "retention", "status", "message", "method_report", "seconds", "entry",
)


class HistoryError(KnowledgeError):
    """The history database cannot be opened, or does not hold what was asked for."""


def history_url(value: str | Path | None, root: Path) -> str:
    """The SQLAlchemy URL for ``--knowledge-history``: a URL as given, a path (relative to ``root``) as SQLite."""
    if value is None:
        value = DEFAULT_PATH
    if isinstance(value, str) and "://" in value:
        return value
    path = Path(value)
    return f"sqlite:///{path if path.is_absolute() else root / path}"


def _utc(moment: dt.datetime) -> dt.datetime:
    """SQLite hands back naive datetimes; everything stored is UTC."""
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=dt.timezone.utc)


def _now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


# -- what a run records about where it ran -----------------------------------------------


def _git(root: Path, *args: str) -> str | None:
    try:
        done = subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout.strip() if done.returncode == 0 else None


def git_state(root: Path) -> tuple[str | None, str | None, bool | None]:
    """Commit, branch and whether tracked files differ from it; all None outside a git checkout."""
    commit = _git(root, "rev-parse", "HEAD")
    if commit is None:
        return None, None, None
    branch = _git(root, "rev-parse", "--abbrev-ref", "HEAD")
    if branch in (None, "HEAD"):
        branch = next((os.environ[v] for v in CI_BRANCH_VARIABLES if os.environ.get(v)), None)
    changes = _git(root, "status", "--porcelain", "--untracked-files=no")
    return commit, branch, None if changes is None else bool(changes)


@dataclass(frozen=True)
class RunMeta:
    """Where and on what a session ran; model fingerprints are stored per case, as they are measured."""

    suites: tuple[str, ...]
    device: str
    started_at: dt.datetime = field(default_factory=_now)
    git_commit: str | None = None
    git_branch: str | None = None
    git_dirty: bool | None = None
    host: str = ""
    platform: str = ""
    versions: Mapping[str, str] = field(default_factory=dict)
    tolerances: Mapping[tuple[str, str], Tolerance] = field(default_factory=dict)

    @classmethod
    def collect(cls, suites: Iterable[Suite], device: str, root: Path | None = None) -> RunMeta:
        """Gather git state of ``root`` (default: the working directory), host, versions and case tolerances."""
        suites = list(suites)
        commit, branch, dirty = git_state(root or Path.cwd())
        return cls(
            suites=tuple(s.name for s in suites), device=device, git_commit=commit, git_branch=branch,
            git_dirty=dirty, host=socket.gethostname(), platform=platform.platform(), versions=describe_versions(),
            tolerances={(s.name, case.id): case.tolerance for s in suites for case in s.cases()},
        )


# -- what is read back -------------------------------------------------------------------


@dataclass(frozen=True)
class RunInfo:
    id: int
    started_at: dt.datetime
    finished_at: dt.datetime | None
    suites: tuple[str, ...]
    git_commit: str | None
    git_branch: str | None
    git_dirty: bool | None
    host: str
    platform: str
    device: str
    versions: dict[str, str]
    statuses: dict[str, int]
    models: dict[str, tuple[str, ...]]
    exit_status: int | None = None

    @property
    def complete(self) -> bool:
        """False for a run that was interrupted (or is still going)."""
        return self.finished_at is not None

    @property
    def state(self) -> str:
        """``complete``, ``failed`` (pytest exited non-zero) or ``interrupted`` (no finish time, or pytest's
        interrupted status 2)."""
        if not self.complete or self.exit_status == 2:
            return "interrupted"
        return "complete" if not self.exit_status else f"failed (exit {self.exit_status})"

    @property
    def cases(self) -> int:
        return sum(self.statuses.values())

    @property
    def failed(self) -> int:
        return sum(self.statuses.get(s, 0) for s in FAILING)


@dataclass(frozen=True)
class CasePoint:
    """One case's result in one run."""

    run_id: int
    started_at: dt.datetime
    git_commit: str | None
    value: float | None
    n: int
    status: str
    from_cache: bool


@dataclass(frozen=True)
class Step:
    """The recent runs' median is worse than the earlier runs' median by more than the tolerance allows.

    ``earlier_start`` and ``recent_start`` index the series the step was found in.
    """

    earlier: float
    recent: float
    drop: float
    allowed: float
    earlier_start: int
    recent_start: int


def detect_step(values: Sequence[float], higher_is_better: bool, tolerance: Tolerance,
                window: int = DEFAULT_WINDOW) -> Step | None:
    """Compare the median of the recent runs with the median of the runs before them.

    The recent window is the last ``window`` values, shrunk to the largest odd size that
    leaves at least one earlier value (an odd window keeps its median robust to a single
    outlier); the earlier window is up to ``window`` values before it. A step is reported
    when the recent median is worse than the earlier one by more than
    ``tolerance.allowed_drop(earlier median)``.
    """
    if window < 1:
        raise ValueError(f"window must be >= 1, got {window}")
    if len(values) < 2:
        return None
    recent_size = min(window, len(values) - 1)
    if recent_size % 2 == 0:
        recent_size -= 1
    earlier_size = min(window, len(values) - recent_size)
    recent_start = len(values) - recent_size
    earlier_start = recent_start - earlier_size
    earlier = statistics.median(values[earlier_start:recent_start])
    recent = statistics.median(values[recent_start:])
    drop = worsening(recent, earlier, higher_is_better)
    allowed = tolerance.allowed_drop(earlier)
    if drop <= allowed + EPSILON:
        return None
    return Step(earlier, recent, drop, allowed, earlier_start, recent_start)


@dataclass(frozen=True)
class CaseSeries:
    """One case's results over runs, oldest first."""

    suite: str
    case_id: str
    model: str
    method: str
    ratio: float | None
    benchmark: str
    metric: str
    higher_is_better: bool
    tolerance: Tolerance | None
    points: tuple[CasePoint, ...]

    @property
    def measured(self) -> tuple[CasePoint, ...]:
        """The points with a value (errors have none); a ``Step`` indexes these."""
        return tuple(p for p in self.points if p.value is not None)

    def step(self, window: int = DEFAULT_WINDOW) -> Step | None:
        """A step down over recent runs; without a stored tolerance any worsening counts."""
        values = [p.value for p in self.measured]
        return detect_step(values, self.higher_is_better, self.tolerance or Tolerance(), window)  # type: ignore[arg-type]


@dataclass(frozen=True)
class CaseDelta:
    """One case compared between two runs."""

    suite: str
    case_id: str
    metric: str
    higher_is_better: bool
    before: float | None
    after: float | None
    allowed: float | None
    verdict: str  # regressed, improved, same, error, recovered, changed-metric, added, removed

    @property
    def delta(self) -> float | None:
        return None if self.before is None or self.after is None else self.after - self.before

    @property
    def regressed(self) -> bool:
        return self.verdict in ("regressed", "error")


def _tolerance(row: Any) -> Tolerance | None:
    if row.tol_abs is None:
        return None
    return Tolerance(row.tol_abs, row.tol_rel, row.tol_min_retention)


def _compare_rows(a: Any, b: Any) -> CaseDelta:
    row = b if b is not None else a
    tolerance = _tolerance(row) or Tolerance()
    before = a.current if a is not None else None
    after = b.current if b is not None else None
    common = dict(suite=row.suite, case_id=row.case_id, metric=row.metric, higher_is_better=row.higher_is_better,
                  before=before, after=after)
    if a is None:
        return CaseDelta(**common, allowed=None, verdict="added")
    if b is None:
        return CaseDelta(**common, allowed=None, verdict="removed")
    if after is None:
        return CaseDelta(**common, allowed=None, verdict="error")
    if before is None:
        return CaseDelta(**common, allowed=None, verdict="recovered")
    if a.metric != b.metric:
        return CaseDelta(**common, allowed=None, verdict="changed-metric")
    allowed = tolerance.allowed_drop(before)
    drop = worsening(after, before, row.higher_is_better)
    verdict = "regressed" if drop > allowed + EPSILON else "improved" if -drop > allowed + EPSILON else "same"
    return CaseDelta(**common, allowed=allowed, verdict=verdict)


# -- the store ---------------------------------------------------------------------------


class RunWriter:
    """Adds one run's cases as they arrive; each ``add`` is its own transaction."""

    def __init__(self, store: HistoryStore, run_id: int, meta: RunMeta):
        self.store = store
        self.id = run_id
        self.meta = meta

    def add(self, records: Iterable[Record]) -> None:
        rows = [self._row(r) for r in records]
        if rows:
            with self.store.engine.begin() as conn:
                conn.execute(sa.insert(cases_table), rows)

    def _row(self, record: Record) -> dict[str, Any]:
        row = {name: getattr(record, name) for name in RECORD_COLUMNS}
        tolerance = self.meta.tolerances.get((record.suite, record.case_id))
        row.update(
            run_id=self.id,
            from_cache=bool(getattr(record, "from_cache", False)),
            fingerprint=(record.entry or {}).get("fingerprint"),
            tol_abs=tolerance.abs if tolerance else None,
            tol_rel=tolerance.rel if tolerance else None,
            tol_min_retention=tolerance.min_retention if tolerance else None,
        )
        return row

    def finish(self, exit_status: int | None = None) -> None:
        """Mark the run complete with pytest's exit status; a run without a finish time was interrupted."""
        with self.store.engine.begin() as conn:
            conn.execute(sa.update(runs_table).where(runs_table.c.id == self.id)
                         .values(finished_at=_now(), exit_status=exit_status))


class HistoryStore:
    """The history database behind a SQLAlchemy URL.

    With ``create=False`` a missing database is an error instead of being created, so a
    command that only reads does not leave an empty file behind.
    """

    def __init__(self, url: str, *, create: bool = True):
        try:
            parsed = make_url(url)
        except sa.exc.ArgumentError as error:
            raise HistoryError(f"history URL {url!r}: {error}") from None
        self.url = parsed.render_as_string(hide_password=True)
        options: dict[str, Any] = {}
        path: Path | None = None
        if parsed.get_backend_name() == "sqlite" and parsed.database not in (None, "", ":memory:"):
            path = Path(parsed.database)
            if not create and not path.exists():
                raise HistoryError(f"no history database at {path}; a knowledge session creates it")
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
            except OSError as error:
                raise HistoryError(f"cannot create the folder of history database {path}: {error}") from None
            options["connect_args"] = {"timeout": 30}  # another session may be writing
        try:
            self.engine = sa.create_engine(parsed, **options)
        except (sa.exc.ArgumentError, ImportError) as error:  # unknown dialect, driver not installed
            raise HistoryError(f"cannot use history database {self.url}: {error}") from None
        try:
            if path is not None and path.exists():
                self._check_integrity(path)
            self._open_schema(create)
        except sa.exc.DBAPIError as error:
            detail = "; move it away to start a new history" if path is not None else ""
            raise HistoryError(f"cannot use history database {path or self.url}: {error.orig}{detail}") from None

    def _check_integrity(self, path: Path) -> None:
        """SQLite reads a damaged page only when a query reaches it, which may be mid-session; check
        every page now, so a damaged file is refused before anything runs."""
        with self.engine.connect() as conn:
            problems = [row[0] for row in conn.exec_driver_sql("PRAGMA quick_check").fetchall()]
        if problems != ["ok"]:
            raise HistoryError(f"cannot use history database {path}: it is damaged ({problems[0]}); "
                               "move it away to start a new history")

    def _open_schema(self, create: bool) -> None:
        """Create the tables on first use and refuse a database written with another schema version."""
        if create:
            try:
                self._create_schema()
            except sa.exc.DBAPIError:  # another CI job created it at the same moment
                self._create_schema()
        with self.engine.connect() as conn:
            if not sa.inspect(conn).has_table(schema_table.name):
                raise HistoryError(f"{self.url} holds no knowledge history; a knowledge session creates it")
            stored = conn.execute(
                sa.select(schema_table.c.value).where(schema_table.c.key == "schema_version")
            ).scalar_one_or_none()
        if stored != str(SCHEMA_VERSION):
            raise HistoryError(
                f"{self.url} has history schema version {stored}, this pytest-knowledge reads version "
                f"{SCHEMA_VERSION}; use a matching pytest-knowledge or another database"
            )
        try:
            self._add_columns()
        except sa.exc.DBAPIError:  # another job added them at the same moment
            self._add_columns()

    def _add_columns(self) -> None:
        """Add the nullable columns a newer release introduced to tables an older one created;
        old rows read them as empty, so the schema version stays."""
        with self.engine.begin() as conn:
            inspector = sa.inspect(conn)
            for table in metadata.sorted_tables:
                present = {c["name"] for c in inspector.get_columns(table.name)}
                for column in table.columns:
                    if column.name not in present and column.nullable:
                        conn.exec_driver_sql(f"ALTER TABLE {table.name} ADD COLUMN {column.name} "
                                             f"{column.type.compile(dialect=conn.dialect)}")

    def _create_schema(self) -> None:
        """Tables and version row in one transaction, so a racing job sees both or neither."""
        with self.engine.begin() as conn:
            metadata.create_all(conn)
            present = conn.execute(sa.select(schema_table.c.key).where(schema_table.c.key == "schema_version"))
            if present.first() is None:
                conn.execute(sa.insert(schema_table).values(key="schema_version", value=str(SCHEMA_VERSION)))

    def close(self) -> None:
        self.engine.dispose()

    def __enter__(self) -> HistoryStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- writing -------------------------------------------------------------------------
    def start_run(self, meta: RunMeta) -> RunWriter:
        """Write the run row now, so even a run that dies before its first case is on record."""
        values = dict(
            started_at=meta.started_at, suites=list(meta.suites), git_commit=meta.git_commit,
            git_branch=meta.git_branch, git_dirty=meta.git_dirty, host=meta.host, platform=meta.platform,
            device=meta.device, versions=dict(meta.versions),
        )
        with self.engine.begin() as conn:
            run_id: int = conn.execute(sa.insert(runs_table).values(**values)).inserted_primary_key[0]  # type: ignore[index]
        return RunWriter(self, run_id, meta)

    def record_run(self, meta: RunMeta, records: Iterable[Record], exit_status: int | None = None) -> int:
        """A whole run at once: run row, cases, finish time."""
        run = self.start_run(meta)
        run.add(records)
        run.finish(exit_status)
        return run.id

    # -- reading -------------------------------------------------------------------------
    def runs(self, last: int | None = None, only: int | None = None) -> list[RunInfo]:
        """Runs oldest first (only the ``last`` newest, or only run ``only``, when given)."""
        query = sa.select(runs_table).order_by(runs_table.c.id.desc())
        if last is not None:
            query = query.limit(last)
        if only is not None:
            query = query.where(runs_table.c.id == only)
        with self.engine.connect() as conn:
            rows = list(reversed(conn.execute(query).all()))
            ids = [r.id for r in rows]
            statuses: dict[int, dict[str, int]] = defaultdict(dict)
            counted = sa.select(cases_table.c.run_id, cases_table.c.status, sa.func.count()).where(
                cases_table.c.run_id.in_(ids)).group_by(cases_table.c.run_id, cases_table.c.status)
            for run_id, status, count in conn.execute(counted):
                statuses[run_id][status] = count
            models: dict[int, dict[str, set[str]]] = defaultdict(lambda: defaultdict(set))
            fingerprints = sa.select(cases_table.c.run_id, cases_table.c.model, cases_table.c.fingerprint).where(
                cases_table.c.run_id.in_(ids), cases_table.c.fingerprint.is_not(None)).distinct()
            for run_id, model, fingerprint in conn.execute(fingerprints):
                models[run_id][model].add(fingerprint)
        return [
            RunInfo(
                id=r.id, started_at=_utc(r.started_at),
                finished_at=_utc(r.finished_at) if r.finished_at else None, suites=tuple(r.suites),
                git_commit=r.git_commit, git_branch=r.git_branch, git_dirty=r.git_dirty, host=r.host,
                platform=r.platform, device=r.device, versions=dict(r.versions), statuses=dict(statuses[r.id]),
                models={m: tuple(sorted(f)) for m, f in sorted(models[r.id].items())},
                exit_status=r.exit_status,
            )
            for r in rows
        ]

    def resolve(self, ref: str | int) -> int:
        """A run id from ``12``, ``latest`` or ``latest~N`` (the N-th run before the latest)."""
        text = str(ref).strip()
        with self.engine.connect() as conn:
            if text.isdigit():
                found = conn.execute(sa.select(runs_table.c.id).where(runs_table.c.id == int(text))).scalar()
                if found is None:
                    raise HistoryError(f"no run {text} in {self.url}")
                return found
            base, _, back = text.partition("~")
            if base != "latest" or not (back.isdigit() or back == ""):
                raise HistoryError(f"run reference {text!r}: expected a run id, 'latest' or 'latest~N'")
            offset = int(back or 0)
            found = conn.execute(
                sa.select(runs_table.c.id).order_by(runs_table.c.id.desc()).offset(offset).limit(1)).scalar()
        if found is None:
            raise HistoryError(f"no run {text} in {self.url} (it holds fewer runs)")
        return found

    def run_records(self, run_id: int) -> list[Record]:
        """A run's cases as ``Record`` objects again, in the order they were recorded."""
        names = {f.name for f in fields(Record)}
        query = sa.select(cases_table).where(cases_table.c.run_id == run_id).order_by(cases_table.c.id)
        with self.engine.connect() as conn:
            rows = conn.execute(query).mappings().all()
        return [Record(**{k: v for k, v in row.items() if k in names}) for row in rows]

    def case_history(self, *, suite: str | None = None, model: str | None = None, method: str | None = None,
                     benchmark: str | None = None, case_id: str | None = None, last: int | None = None,
                     until_run: int | None = None) -> list[CaseSeries]:
        """Each matching case's results over runs (``last`` newest only), sorted by suite and case id.

        A case whose metric changed starts a new series, as old and new values do not compare.
        """
        c = cases_table.c
        query = (sa.select(cases_table, runs_table.c.started_at, runs_table.c.git_commit)
                 .join(runs_table, runs_table.c.id == c.run_id).order_by(c.run_id, c.id))
        for column, wanted in ((c.suite, suite), (c.model, model), (c.method, method), (c.benchmark, benchmark),
                               (c.case_id, case_id)):
            if wanted is not None:
                query = query.where(column == wanted)
        if until_run is not None:
            query = query.where(c.run_id <= until_run)
        grouped: dict[tuple[str, str, str], list[Any]] = defaultdict(list)
        with self.engine.connect() as conn:
            for row in conn.execute(query):
                grouped[(row.suite, row.case_id, row.metric)].append(row)
        series = []
        for key in sorted(grouped):
            rows = grouped[key][-last:] if last else grouped[key]
            newest = rows[-1]
            series.append(CaseSeries(
                suite=newest.suite, case_id=newest.case_id, model=newest.model, method=newest.method,
                ratio=newest.ratio, benchmark=newest.benchmark, metric=newest.metric,
                higher_is_better=newest.higher_is_better, tolerance=_tolerance(newest),
                points=tuple(CasePoint(r.run_id, _utc(r.started_at), r.git_commit, r.current, r.n, r.status,
                                       r.from_cache) for r in rows),
            ))
        return series

    def compare(self, run_a: int, run_b: int) -> list[CaseDelta]:
        """Every case of either run; tolerances are run B's (A's for a case B lacks)."""
        rows: dict[int, dict[tuple[str, str], Any]] = {run_a: {}, run_b: {}}
        query = sa.select(cases_table).where(cases_table.c.run_id.in_([run_a, run_b])).order_by(cases_table.c.id)
        with self.engine.connect() as conn:
            for row in conn.execute(query):
                rows[row.run_id][(row.suite, row.case_id)] = row
        keys = sorted(set(rows[run_a]) | set(rows[run_b]))
        return [_compare_rows(rows[run_a].get(k), rows[run_b].get(k)) for k in keys]
