"""The ``pytest-knowledge`` command line, driven through ``main([...])``."""

from __future__ import annotations

import json
import random
import shutil
from pathlib import Path

import pytest

from pytest_knowledge.cli import main
from pytest_knowledge.gate.record import Record
from pytest_knowledge.stores.history import HistoryStore, RunMeta
from pytest_knowledge.suite.parse import load_suite

ROOT = Path(__file__).resolve().parents[1]
SUITE = ROOT / "suites" / "default.yaml"
BASELINE = ROOT / "baselines" / "default" / "smollm2-135m.json"
DRIFTING = "smollm2-135m-magnitude_all-0.20-facts_capital"


def stored_entries() -> dict[str, dict]:
    return json.loads(BASELINE.read_text())["entries"]


def records(drift: float = 0.0, error: str | None = None) -> list[Record]:
    """The default suite's SmolLM2 grid with its stored baseline values; DRIFTING lowered by ``drift``."""
    entries = stored_entries()
    dense = entries["smollm2-135m-dense-facts_capital"]["value"]
    result = []
    for case in (c for c in load_suite(SUITE).cases() if c.model.name == "smollm2-135m"):
        entry = entries[case.id]
        value = entry["value"] - (drift if case.id == DRIFTING else 0.0)
        failed = case.id == error
        result.append(Record(
            suite="default", case_id=case.id, model=case.model.name, method=case.method_name, ratio=case.ratio,
            benchmark=case.benchmark.name, metric=entry["metric"], higher_is_better=True, n=entry["n"],
            dense=dense, baseline=entry["value"], current=None if failed else value,
            delta=None if failed else value - entry["value"],
            retention=None if failed or not case.method else value / dense,
            status="error" if failed else "pass", message="cannot load" if failed else "", method_report="",
            seconds=1.0, entry=None if failed else {**entry, "value": value},
        ))
    return result


@pytest.fixture
def history(tmp_path: Path) -> Path:
    """Five runs of the default suite; one case loses 0.01 per run, each run within the 0.02 tolerance."""
    path = tmp_path / "history.db"
    meta = RunMeta.collect([load_suite(SUITE)], device="cpu", root=tmp_path)
    with HistoryStore(f"sqlite:///{path}") as store:
        for run in range(5):
            store.record_run(meta, records(drift=0.01 * run))
    return path


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_runs_lists_recorded_runs(history: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "--history", str(history), "runs", "--last", "2")
    lines = out.splitlines()
    assert code == 0
    assert lines[0].split()[:2] == ["run", "started"]
    assert [line.split()[0] for line in lines[2:]] == ["4", "5"]
    assert all("default" in line and "complete" in line for line in lines[2:])


def test_history_flags_a_step_down_although_each_run_passed(history: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "--history", str(history), "history", "--method", "magnitude_all")
    assert code == 0
    rows = [line for line in out.splitlines() if line.startswith("smollm2-135m-")]
    assert len(rows) == 4 and all("magnitude_all" in row for row in rows)
    assert rows[0].startswith(DRIFTING)  # flagged cases first
    assert "STEP DOWN 0.3164 -> 0.2914" in rows[0]
    assert not any("STEP DOWN" in row for row in rows[1:])
    assert "1 case(s) step down" in out

    code, out, _ = run(capsys, "--history", str(history), "history", "--method", "magnitude_all", "--check")
    assert code == 1
    code, out, _ = run(capsys, "--history", str(history), "history", "--method", "int8", "--check")
    assert code == 0 and "STEP DOWN" not in out


def test_history_shows_the_last_runs_and_marks_failures(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "history.db"
    with HistoryStore(f"sqlite:///{path}") as store:
        for run_index in range(4):
            failing = run_index == 3
            store.record_run(RunMeta(suites=("default",), device="cpu"),
                             [r if not failing or r.case_id != DRIFTING else
                              Record(**{**r.to_json(), "status": "fail"}) for r in records()])
    code, out, _ = run(capsys, "--history", str(path), "history", "--case", DRIFTING, "--last", "2")
    header, _, row = out.splitlines()[:3]
    assert header.split()[2:4] == ["#3", "#4"]
    assert row.split()[2:4] == ["0.3214", "0.3214*"]
    assert "* the case failed in that run" in out


def test_compare_exits_non_zero_on_a_regression(history: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "--history", str(history), "compare", "1", "latest")
    assert code == 1
    first = out.splitlines()[2]
    assert first.startswith(DRIFTING) and first.split()[-1] == "regressed"
    assert "-0.0400" in first and "0.0200" in first
    assert "1 regressed, 5 same" in out

    code, out, _ = run(capsys, "--history", str(history), "compare", "latest~1", "latest")
    assert code == 0 and "6 same" in out


def test_compare_counts_a_case_that_stopped_working(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "history.db"
    meta = RunMeta.collect([load_suite(SUITE)], device="cpu", root=tmp_path)
    with HistoryStore(f"sqlite:///{path}") as store:
        store.record_run(meta, records())
        store.record_run(meta, records(error="smollm2-135m-int8-facts_capital"))
    code, out, _ = run(capsys, "--history", str(path), "compare", "1", "2")
    assert code == 1 and "1 error, 5 same" in out


def test_report_writes_html_and_markdown_from_the_store(history: Path, tmp_path: Path,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "--history", str(history), "report", str(tmp_path / "r.html"))
    assert code == 0 and "6 cases from run 5" in out
    page = (tmp_path / "r.html").read_text()
    assert "Knowledge report, run 5" in page and page.count("data:image/png;base64,") == 4
    assert "1 stepping down" in page

    code, out, _ = run(capsys, "--history", str(history), "report", str(tmp_path / "r.md"), "--run", "2")
    text = (tmp_path / "r.md").read_text()
    assert code == 0 and "run 2" in text and "Stepping down" not in text  # runs after 2 are not its history


def test_baselines_list(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "baselines", "--dir", str(ROOT / "baselines"), "list")
    assert code == 0
    rows = {line.split()[1]: line.split() for line in out.splitlines() if line.startswith("default")}
    assert rows["smollm2-135m"][:3] == ["default", "smollm2-135m", str(len(stored_entries()))]
    suite = load_suite(SUITE)
    for model in suite.models:
        assert rows[model.name][2] == str(sum(c.model == model for c in suite.cases()))


def test_baselines_diff_against_the_latest_run(history: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "--history", str(history), "baselines", "--dir", str(ROOT / "baselines"), "diff")
    assert code == 0
    rows = {line.split()[0]: line.split() for line in out.splitlines() if line.startswith("smollm2-135m-")}
    assert rows[DRIFTING][1:4] == ["0.3214", "0.2814", "-0.0400"] and rows[DRIFTING][-1] == "differs"
    assert rows["smollm2-135m-int8-facts_capital"][-1] == "same"
    assert rows["smollm2-135m-int8-facts_capital"][4] == "0"


def test_baselines_prune_removes_entries_no_case_uses(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folder = tmp_path / "baselines" / "default"
    folder.mkdir(parents=True)
    data = json.loads(BASELINE.read_text())
    kept = dict(data["entries"])
    data["entries"]["smollm2-135m-magnitude_all-0.90-facts_capital"] = kept[DRIFTING]
    (folder / "smollm2-135m.json").write_text(json.dumps(data))
    shutil.copy(BASELINE, folder / "retired-model.json")
    args = ("baselines", "--dir", str(tmp_path / "baselines"), "prune", str(SUITE))

    code, out, _ = run(capsys, *args, "--dry-run")
    assert code == 0 and "would remove" in out and "magnitude_all-0.90" in out
    assert "0.90" in (folder / "smollm2-135m.json").read_text()

    code, out, _ = run(capsys, *args)
    assert code == 0 and "1 stale entry" in out
    assert "left alone" in out and "retired-model" in out
    assert json.loads((folder / "smollm2-135m.json").read_text())["entries"] == kept
    assert (folder / "retired-model.json").exists()

    code, out, _ = run(capsys, *args)
    assert "0 stale entries" in out


@pytest.mark.parametrize("how", ["random", "overwritten"])
@pytest.mark.parametrize("command", [["runs"], ["history"], ["compare", "1", "2"], ["report", "r.md"]])
def test_a_damaged_database_is_one_line_not_a_traceback(tmp_path: Path, history: Path, how: str, command: list[str],
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    """Random bytes throughout, or the good file overwritten past byte 12288 (its schema still reads)."""
    data = history.read_bytes()
    assert len(data) > 2 * 12288
    noise = random.Random(0).randbytes(len(data))
    history.write_bytes(noise if how == "random" else data[:12288] + noise[12288:])
    code, out, err = run(capsys, "--history", str(history), *command)
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and err.startswith(f"pytest-knowledge: cannot use history database {history}: ")


def test_runs_shows_a_failed_session(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "history.db"
    meta = RunMeta.collect([load_suite(SUITE)], device="cpu", root=tmp_path)
    with HistoryStore(f"sqlite:///{path}") as store:
        store.record_run(meta, records(), exit_status=1)
    code, out, _ = run(capsys, "--history", str(path), "runs")
    assert code == 0 and out.splitlines()[2].endswith("failed (exit 1)")


def test_input_errors_exit_2_with_a_message(tmp_path: Path, history: Path, capsys: pytest.CaptureFixture[str]) -> None:
    missing = tmp_path / "none.db"
    code, _, err = run(capsys, "--history", str(missing), "runs")
    assert code == 2 and "no history database" in err and not missing.exists()
    code, _, err = run(capsys, "--history", str(history), "compare", "1", "latest~9")
    assert code == 2 and "fewer runs" in err
    code, _, err = run(capsys, "--history", str(history), "report", str(tmp_path / "r.pdf"))
    assert code == 2 and ".html, .htm or .md" in err
    code, _, err = run(capsys, "baselines", "prune", str(tmp_path / "missing.yaml"))
    assert code == 2 and "missing.yaml" in err
    code, _, err = run(capsys, "frobnicate")
    assert code == 2 and "invalid choice" in err
    code, _, err = run(capsys, "runs", "--last", "0")
    assert code == 2 and "expected a number >= 1" in err
