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
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import make_url

from pytest_knowledge.core.errors import KnowledgeError
from pytest_knowledge.gate.record import Record
from pytest_knowledge.stores.history.drift import (
    FAILING,
    CaseDelta,
    CasePoint,
    CaseSeries,
    compare_rows,
    row_tolerance,
)
from pytest_knowledge.stores.history.run_meta import RunMeta, now, utc
from pytest_knowledge.stores.history.schema import (
    RECORD_COLUMNS,
    SCHEMA_VERSION,
    cases_table,
    metadata,
    runs_table,
    schema_table,
)

DEFAULT_PATH = Path(".knowledge") / "history.db"


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
                         .values(finished_at=now(), exit_status=exit_status))


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
                id=r.id, started_at=utc(r.started_at),
                finished_at=utc(r.finished_at) if r.finished_at else None, suites=tuple(r.suites),
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
                higher_is_better=newest.higher_is_better, tolerance=row_tolerance(newest),
                points=tuple(CasePoint(r.run_id, utc(r.started_at), r.git_commit, r.current, r.n, r.status,
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
        return [compare_rows(rows[run_a].get(k), rows[run_b].get(k)) for k in keys]
