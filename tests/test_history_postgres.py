"""The history store on a real PostgreSQL server, started for these tests and stopped after.

Skipped where PostgreSQL's server programs (Debian: ``apt-get install postgresql``) or the
psycopg driver are missing. As root, the server runs as the ``postgres`` user, since
PostgreSQL refuses to run as root.
"""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from pytest_knowledge.gate.record import Record
from pytest_knowledge.stores.history import HistoryStore, RunMeta
from pytest_knowledge.suite.tolerance import Tolerance


def _server_bin() -> Path | None:
    """The folder of ``pg_ctl``: on PATH, else the newest Debian install under /usr/lib/postgresql."""
    found = shutil.which("pg_ctl")
    if found:
        return Path(found).resolve().parent
    installed = sorted(Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"), key=lambda p: int(p.parts[-3]))
    return installed[-1].parent if installed else None


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="module")
def postgres_server() -> Iterator[str]:
    """A throwaway cluster on a free port; yields a URL without a database name."""
    pytest.importorskip("psycopg", reason="the psycopg driver is not installed")
    bindir = _server_bin()
    if bindir is None:
        pytest.skip("PostgreSQL server programs (initdb, pg_ctl) are not installed")
    as_user: list[str] = []
    if os.geteuid() == 0:
        try:
            account = pwd.getpwnam("postgres")
        except KeyError:
            pytest.skip("running as root and there is no 'postgres' user to run the server as")
        as_user = ["runuser", "-u", "postgres", "--"]
    folder = Path(tempfile.mkdtemp(prefix="knowledge-pg-"))
    if as_user:
        os.chown(folder, account.pw_uid, account.pw_gid)
    data, log, port = folder / "data", folder / "server.log", _free_port()

    def run(*command: str) -> None:
        done = subprocess.run([*as_user, *command], capture_output=True, text=True, timeout=120)
        if done.returncode != 0:
            server_log = log.read_text() if log.exists() else ""
            pytest.fail(f"{' '.join(command)} failed:\n{done.stdout}{done.stderr}{server_log}")

    try:
        run(str(bindir / "initdb"), "-D", str(data), "-U", "knowledge", "--auth=trust", "--no-sync", "-E", "UTF8")
        options = f"-p {port} -k {folder} -c listen_addresses=127.0.0.1 -c fsync=off"
        run(str(bindir / "pg_ctl"), "-D", str(data), "-l", str(log), "-o", options, "-w", "-t", "60", "start")
        try:
            yield f"postgresql+psycopg://knowledge@127.0.0.1:{port}"
        finally:
            run(str(bindir / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop")
    finally:
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
def postgres_url(postgres_server: str) -> str:
    """A fresh, empty database per test."""
    name = f"history_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(f"{postgres_server}/postgres", isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    return f"{postgres_server}/{name}"


def record(case: str, current: float | None, status: str = "pass") -> Record:
    return Record(
        suite="s", case_id=case, model="m", method="magnitude", ratio=0.5, benchmark="facts", metric="p_at_1",
        higher_is_better=True, n=140, dense=0.4, baseline=0.3, current=current, delta=None, retention=None,
        status=status, message="", method_report="", seconds=2.0, entry={"fingerprint": "f1", "outcomes": "01"},
    )


def meta(host: str) -> RunMeta:
    return RunMeta(suites=("s",), device="cuda:0", host=host, platform="Linux", versions={"torch": "2.13.0"},
                   tolerances={("s", "m-a-facts"): Tolerance(abs=0.02)})


def test_runs_round_trip_and_compare(postgres_url: str) -> None:
    with HistoryStore(postgres_url) as store:
        first = store.record_run(meta("ci-1"), [record("m-a-facts", 0.40), record("m-b-facts", None, "error")])
        second = store.record_run(meta("ci-2"), [record("m-a-facts", 0.35), record("m-b-facts", 0.2)])
    with HistoryStore(postgres_url, create=False) as store:
        assert [(r.id, r.host, r.device, r.statuses) for r in store.runs()] == [
            (first, "ci-1", "cuda:0", {"pass": 1, "error": 1}), (second, "ci-2", "cuda:0", {"pass": 2})]
        assert store.run_records(first)[0] == record("m-a-facts", 0.40)
        assert {d.case_id: d.verdict for d in store.compare(first, second)} == {
            "m-a-facts": "regressed", "m-b-facts": "recovered"}
        assert store.runs()[0].started_at.tzinfo is not None


def test_ci_jobs_sharing_a_new_database_all_record_their_runs(postgres_url: str) -> None:
    """Several jobs open the same empty database at once: one creates the schema, none fails."""
    jobs = 4
    start = threading.Barrier(jobs)
    errors: list[BaseException] = []

    def job(index: int) -> None:
        try:
            start.wait()
            with HistoryStore(postgres_url) as store:
                store.record_run(meta(f"ci-{index}"), [record("m-a-facts", 0.4)])
        except BaseException as error:  # reported below, with the others
            errors.append(error)

    threads = [threading.Thread(target=job, args=(i,)) for i in range(jobs)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    with HistoryStore(postgres_url) as store:
        assert sorted(r.host for r in store.runs()) == [f"ci-{i}" for i in range(jobs)]
