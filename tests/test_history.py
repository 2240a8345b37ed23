"""The history store on real SQLite files: what a run records, reading it back, comparing runs."""

from __future__ import annotations

import dataclasses
import datetime as dt
import random
import shutil
import subprocess
from pathlib import Path

import pytest
import sqlalchemy as sa

from pytest_knowledge.gate.record import Record
from pytest_knowledge.stores.history import HistoryError, HistoryStore, RunMeta, git_state, history_url
from pytest_knowledge.stores.history.schema import SCHEMA_VERSION, schema_table
from pytest_knowledge.suite.parse import load_suite
from pytest_knowledge.suite.tolerance import Tolerance

DEFAULT_SUITE = Path(__file__).resolve().parents[1] / "suites" / "default.yaml"


@dataclasses.dataclass(frozen=True)
class CachedRecord(Record):
    """A record as it will look once results can come from a cache."""

    from_cache: bool = False


def record(case: str = "m-magnitude-0.50-facts", current: float | None = 0.3, *, status: str = "pass",
           metric: str = "p_at_1", higher_is_better: bool = True, ratio: float | None = 0.5,
           method: str = "magnitude", fingerprint: str = "f1") -> Record:
    return Record(
        suite="s", case_id=case, model="m", method=method, ratio=ratio, benchmark="facts", metric=metric,
        higher_is_better=higher_is_better, n=140, dense=0.4, baseline=0.3, current=current,
        delta=None if current is None else current - 0.3, retention=None if current is None else current / 0.4,
        status=status, message="" if status == "pass" else "it broke", method_report="sparsity 0.50",
        seconds=1.5, entry={"fingerprint": fingerprint, "outcomes": "0110", "value": current},
    )


def meta(tolerance: Tolerance | None = None, cases: tuple[str, ...] = ("m-magnitude-0.50-facts",)) -> RunMeta:
    tolerances = {("s", c): tolerance for c in cases} if tolerance else {}
    return RunMeta(suites=("s",), device="cpu", git_commit="abc123", git_branch="main", git_dirty=False,
                   host="ci-1", platform="Linux", versions={"torch": "2.13.0"}, tolerances=tolerances)


@pytest.fixture
def store(tmp_path: Path) -> HistoryStore:
    with HistoryStore(f"sqlite:///{tmp_path / 'history.db'}") as opened:
        yield opened


def test_a_run_reads_back_as_recorded(store: HistoryStore) -> None:
    records = [record(), record("m-dense-facts", 0.4, method="dense", ratio=None, fingerprint="f0"),
               record("m-magnitude-0.90-facts", None, status="error", ratio=0.9)]
    run_id = store.record_run(meta(), records)

    assert store.run_records(run_id) == records
    [run] = store.runs()
    assert (run.id, run.suites, run.git_commit, run.git_branch, run.host, run.device) == (
        run_id, ("s",), "abc123", "main", "ci-1", "cpu")
    assert run.versions == {"torch": "2.13.0"}
    assert run.statuses == {"pass": 2, "error": 1} and run.failed == 1 and run.complete
    assert run.models == {"m": ("f0", "f1")}
    assert run.started_at.tzinfo is not None


def test_an_interrupted_run_keeps_the_cases_it_recorded(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'history.db'}"
    with HistoryStore(url) as store:
        run = store.start_run(meta())
        run.add([record("m-a-facts"), record("m-b-facts")])
        broken = dataclasses.replace(record("m-c-facts"), status=None)  # the session dies mid-write
        with pytest.raises(sa.exc.IntegrityError):
            run.add([record("m-d-facts"), broken])
    with HistoryStore(url) as reopened:
        [stored] = reopened.runs()
        assert not stored.complete
        assert [r.case_id for r in reopened.run_records(stored.id)] == ["m-a-facts", "m-b-facts"]


def test_the_schema_version_is_stored_and_a_different_one_refused(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'history.db'}"
    with HistoryStore(url) as store, store.engine.begin() as conn:
        assert conn.execute(sa.select(schema_table.c.value)).scalar_one() == str(SCHEMA_VERSION)
        conn.execute(sa.update(schema_table).values(value="999"))
    with pytest.raises(HistoryError, match="schema version 999"):
        HistoryStore(url)


def test_reading_a_missing_database_does_not_create_it(tmp_path: Path) -> None:
    path = tmp_path / "nowhere" / "history.db"
    with pytest.raises(HistoryError, match="no history database"):
        HistoryStore(f"sqlite:///{path}", create=False)
    assert not path.parent.exists()


def test_unusable_urls_are_reported(tmp_path: Path) -> None:
    with pytest.raises(HistoryError, match="nosuchdialect"):
        HistoryStore("nosuchdialect://host/db")
    with pytest.raises(HistoryError, match="history URL"):
        HistoryStore("::not a url::")
    with pytest.raises(HistoryError, match="cannot use history database"):
        HistoryStore(f"sqlite:///{tmp_path}")  # a folder, not a database file


def damaged_history(path: Path, how: str) -> Path:
    """A history of 400 recorded cases, then damaged: random bytes throughout, or a good file whose
    pages past byte 12288 are overwritten (its header and schema still read fine)."""
    with HistoryStore(f"sqlite:///{path}") as store:
        store.record_run(meta(), [record(f"m-magnitude-{i}-facts") for i in range(400)])
    size = path.stat().st_size
    assert size > 4 * 12288
    noise = random.Random(0).randbytes(size)
    path.write_bytes(noise if how == "random" else path.read_bytes()[:12288] + noise[12288:])
    return path


@pytest.mark.parametrize("how", ["random", "overwritten"])
@pytest.mark.parametrize("create", [True, False])
def test_a_damaged_database_is_refused_when_it_is_opened(tmp_path: Path, how: str, create: bool) -> None:
    path = damaged_history(tmp_path / "history.db", how)
    with pytest.raises(HistoryError) as raised:
        HistoryStore(f"sqlite:///{path}", create=create)
    message = str(raised.value)
    assert str(path) in message and "move it away to start a new history" in message and "\n" not in message


def test_a_run_stores_pytest_s_exit_status(store: HistoryStore) -> None:
    passed = store.record_run(meta(), [record()], exit_status=0)
    failed = store.record_run(meta(), [record()], exit_status=1)
    interrupted = store.start_run(meta()).id
    states = {run.id: (run.exit_status, run.state) for run in store.runs()}
    assert states == {passed: (0, "complete"), failed: (1, "failed (exit 1)"), interrupted: (None, "interrupted")}


def test_a_database_from_before_the_exit_status_gets_the_column(tmp_path: Path) -> None:
    path = tmp_path / "history.db"
    with HistoryStore(f"sqlite:///{path}") as store:
        run_id = store.record_run(meta(), [record()])
        with store.engine.begin() as conn:
            conn.exec_driver_sql("ALTER TABLE knowledge_runs DROP COLUMN exit_status")
    with HistoryStore(f"sqlite:///{path}", create=False) as reopened:
        [old] = reopened.runs()
        assert (old.id, old.exit_status, old.state) == (run_id, None, "complete")
        reopened.record_run(meta(), [record()], exit_status=1)
        assert [r.exit_status for r in reopened.runs()] == [None, 1]


def test_the_default_store_is_created_with_its_folder(tmp_path: Path) -> None:
    url = history_url(None, tmp_path)
    assert url == f"sqlite:///{tmp_path / '.knowledge' / 'history.db'}"
    with HistoryStore(url) as store:
        store.record_run(meta(), [record()])
    assert (tmp_path / ".knowledge" / "history.db").is_file()


def test_history_url_takes_urls_and_paths(tmp_path: Path) -> None:
    assert history_url("postgresql+psycopg://ci@db/knowledge", tmp_path) == "postgresql+psycopg://ci@db/knowledge"
    assert history_url("runs.db", tmp_path) == f"sqlite:///{tmp_path / 'runs.db'}"
    assert history_url("/var/h.db", tmp_path) == "sqlite:////var/h.db"


def test_run_references(store: HistoryStore) -> None:
    ids = [store.record_run(meta(), [record()]) for _ in range(3)]
    assert store.resolve("latest") == ids[2]
    assert store.resolve("latest~2") == ids[0]
    assert store.resolve(str(ids[1])) == ids[1]
    for bad, message in (("latest~3", "fewer runs"), ("999", "no run 999"), ("newest", "expected a run id")):
        with pytest.raises(HistoryError, match=message):
            store.resolve(bad)


def test_compare_judges_each_case_by_its_tolerance(store: HistoryStore) -> None:
    cases = ("m-drop-facts", "m-small-facts", "m-up-facts", "m-err-facts", "m-gone-facts", "m-ppl-facts")
    tolerance = Tolerance(abs=0.02)
    before = [record("m-drop-facts", 0.40), record("m-small-facts", 0.40), record("m-up-facts", 0.30),
              record("m-err-facts", 0.30), record("m-gone-facts", 0.30),
              record("m-ppl-facts", 20.0, metric="perplexity", higher_is_better=False)]
    after = [record("m-drop-facts", 0.37), record("m-small-facts", 0.39), record("m-up-facts", 0.35),
             record("m-err-facts", None, status="error"), record("m-new-facts", 0.2),
             record("m-ppl-facts", 20.5, metric="perplexity", higher_is_better=False)]
    run_a = store.record_run(meta(tolerance, cases), before)
    run_b = store.record_run(meta(tolerance, cases), after)

    verdicts = {d.case_id: d.verdict for d in store.compare(run_a, run_b)}
    assert verdicts == {"m-drop-facts": "regressed", "m-small-facts": "same", "m-up-facts": "improved",
                        "m-err-facts": "error", "m-gone-facts": "removed", "m-new-facts": "added",
                        "m-ppl-facts": "regressed"}
    drop = next(d for d in store.compare(run_a, run_b) if d.case_id == "m-drop-facts")
    assert drop.delta == pytest.approx(-0.03) and drop.allowed == pytest.approx(0.02) and drop.regressed
    assert not any(d.regressed for d in store.compare(run_a, run_a))


def test_case_history_filters_and_orders_runs(store: HistoryStore) -> None:
    for value in (0.40, 0.38, 0.35):
        dense = record("m-dense-facts", 0.4, method="dense")
        store.record_run(meta(Tolerance(abs=0.01)), [record(current=value), dense])
    [series] = store.case_history(method="magnitude")
    assert [p.value for p in series.points] == [0.40, 0.38, 0.35]
    assert series.tolerance == Tolerance(abs=0.01)
    assert [p.run_id for p in series.points] == sorted(p.run_id for p in series.points)
    assert [p.value for p in store.case_history(method="magnitude", last=2)[0].points] == [0.38, 0.35]
    until = series.points[1].run_id
    assert [p.value for p in store.case_history(method="magnitude", until_run=until)[0].points] == [0.40, 0.38]
    assert store.case_history(model="other") == []
    assert {s.case_id for s in store.case_history(benchmark="facts")} == {"m-magnitude-0.50-facts", "m-dense-facts"}


def test_a_changed_metric_starts_a_new_series(store: HistoryStore) -> None:
    store.record_run(meta(), [record(current=0.4)])
    store.record_run(meta(), [record(current=12.0, metric="perplexity", higher_is_better=False)])
    assert sorted((s.metric, len(s.points)) for s in store.case_history()) == [("p_at_1", 1), ("perplexity", 1)]


def test_the_cache_flag_is_stored_when_records_carry_it(store: HistoryStore) -> None:
    plain = record("m-plain-facts")
    cached = CachedRecord(**{**dataclasses.asdict(record("m-cached-facts")), "from_cache": True})
    store.record_run(meta(), [plain, cached])
    flags = {s.case_id: s.points[0].from_cache for s in store.case_history()}
    assert flags == {"m-plain-facts": False, "m-cached-facts": True}


def test_steps_over_recorded_runs_use_the_stored_tolerance(store: HistoryStore) -> None:
    for value in (0.40, 0.39, 0.38, 0.37, 0.36):  # each run within 0.02 of the one before
        store.record_run(meta(Tolerance(abs=0.02)), [record(current=value)])
    [series] = store.case_history()
    step = series.step()
    assert step is not None and step.earlier == pytest.approx(0.395) and step.recent == pytest.approx(0.37)
    assert series.measured[step.recent_start].value == 0.38
    store.record_run(meta(Tolerance(abs=0.1)), [record(current=0.36)])
    assert store.case_history()[0].step() is None  # the newest run's tolerance applies


def test_run_meta_collects_suites_tolerances_and_versions(tmp_path: Path) -> None:
    suite = load_suite(DEFAULT_SUITE)
    collected = RunMeta.collect([suite], device="cuda:0", root=tmp_path)
    assert collected.suites == ("default",) and collected.device == "cuda:0"
    assert set(collected.tolerances) == {("default", c.id) for c in suite.cases()}
    assert collected.tolerances[("default", "smollm2-135m-int8-facts_capital")].min_retention == 0.8
    assert "python" in collected.versions and collected.host
    assert (collected.git_commit, collected.git_branch, collected.git_dirty) == (None, None, None)
    assert collected.started_at <= dt.datetime.now(dt.timezone.utc)


@pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")
def test_git_state_reads_commit_branch_and_changes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def git(*args: str) -> str:
        return subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@example.com", *args], cwd=tmp_path,
                              check=True, capture_output=True, text=True).stdout.strip()

    git("init", "-q", "-b", "feature")
    (tmp_path / "f.txt").write_text("one\n")
    git("add", "f.txt")
    git("commit", "-q", "-m", "one")
    commit = git("rev-parse", "HEAD")
    assert git_state(tmp_path) == (commit, "feature", False)
    (tmp_path / "f.txt").write_text("two\n")
    assert git_state(tmp_path) == (commit, "feature", True)
    git("checkout", "-q", "--detach")
    monkeypatch.setenv("GITHUB_HEAD_REF", "pr-branch")
    assert git_state(tmp_path)[1] == "pr-branch"
