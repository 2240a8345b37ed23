"""HTML and Markdown report files built from records and the run history.

The HTML report is also rendered by headless Chromium, to check what a person sees; that
test is skipped where no Chromium is installed (Debian: ``apt-get install chromium``).
"""

from __future__ import annotations

import base64
import io
import os
import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from pytest_knowledge.core.errors import KnowledgeError
from pytest_knowledge.gate.record import Record
from pytest_knowledge.reports.files import write_report
from pytest_knowledge.stores.history import HistoryStore, RunMeta
from pytest_knowledge.suite.tolerance import Tolerance

DENSE = 0.40
MAGNITUDE = {0.1: 0.36, 0.2: 0.32, 0.3: 0.05, 0.5: 0.0}
FAILING_CASE = "m-magnitude-0.50-facts"
DRIFTING_CASE = "m-magnitude-0.20-facts"


def grid(drift: float = 0.0, failing: bool = True) -> list[Record]:
    """Dense, int8 (no ratio) and magnitude pruning at four ratios; the 0.20 case lowered by ``drift``."""
    def record(method: str, ratio: float | None, value: float, status: str = "pass") -> Record:
        case = "-".join(["m", method, *([f"{ratio:.2f}"] if ratio is not None else []), "facts"])
        return Record(
            suite="s", case_id=case, model="m", method=method, ratio=ratio, benchmark="facts", metric="p_at_1",
            higher_is_better=True, n=140, dense=DENSE, baseline=value, current=value, delta=0.0,
            retention=None if method == "dense" else value / DENSE, status=status,
            message="knowledge regression in m-magnitude-0.50-facts: worse than baseline" if status == "fail" else "",
            method_report="", seconds=1.0, entry={"fingerprint": "f1", "outcomes": "01"},
        )

    records = [record("dense", None, DENSE), record("int8", None, 0.34)]
    for ratio, value in MAGNITUDE.items():
        status = "fail" if failing and ratio == 0.5 else "pass"
        records.append(record("magnitude", ratio, value - (drift if ratio == 0.2 else 0.0), status))
    return records


def drifting_history(path: Path) -> tuple[HistoryStore, list[Record]]:
    """Six runs in which one case loses 0.01 per run: each run passes, the series steps down."""
    store = HistoryStore(f"sqlite:///{path}")
    tolerances = {("s", r.case_id): Tolerance(abs=0.02) for r in grid()}
    meta = RunMeta(suites=("s",), device="cpu", tolerances=tolerances)
    for run in range(6):
        records = grid(drift=0.01 * run, failing=run == 5)
        store.record_run(meta, records)
    return store, records


class _Images(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.sources: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "img":
            self.sources.append(dict(attrs)["src"] or "")


def embedded_images(page: str) -> list[np.ndarray]:
    """Every ``<img>`` of the page, which must be an inline base64 PNG, decoded to RGB pixels."""
    parser = _Images()
    parser.feed(page)
    images = []
    for source in parser.sources:
        assert source.startswith("data:image/png;base64,"), source[:40]
        png = base64.b64decode(source.split(",", 1)[1], validate=True)
        images.append(np.asarray(Image.open(io.BytesIO(png)).convert("RGB")))
    return images


def drawn(pixels: np.ndarray) -> float:
    """Fraction of pixels that are not white."""
    return float((pixels.min(axis=2) < 250).mean())


def test_html_report_embeds_plots_and_puts_problems_first(tmp_path: Path) -> None:
    store, records = drifting_history(tmp_path / "history.db")
    with store:
        path = write_report(tmp_path / "report.html", records, store)
    page = path.read_text()

    images = embedded_images(page)
    # one figure per benchmark, one per method's history (dense, int8, magnitude)
    assert len(images) == 4
    for pixels in images:
        assert pixels.shape[0] > 100 and pixels.shape[1] > 300
        assert drawn(pixels) > 0.02
    assert "src=\"http" not in page and "<script" not in page  # self-contained

    attention = page.index("Needs attention")
    assert attention < page.index(FAILING_CASE) < page.index(DRIFTING_CASE) < page.index("Metric and retention")
    assert "1 of 6 cases failing; 1 stepping down over recent runs" in page
    assert "worse than baseline" in page
    all_cases = page[page.index("All cases"):]
    assert re.search(r"<tr class=\"fail\"><td>m</td><td>magnitude</td><td>0.50</td>", all_cases)
    assert all_cases.index('class="fail"') < all_cases.index('class="pass"')


def test_history_plots_mark_failed_runs_and_steps(tmp_path: Path) -> None:
    """The history figure of a drifting case shows the red step band that a steady one lacks."""
    store, records = drifting_history(tmp_path / "history.db")
    with store:
        steady = [r for r in records if r.method == "int8"]
        drifting = [r for r in records if r.case_id == DRIFTING_CASE]
        write_report(tmp_path / "steady.html", steady, store)
        write_report(tmp_path / "drifting.html", drifting, store)

    def reddish(path: Path) -> int:
        *_, history = embedded_images(path.read_text())
        r, g, b = (history[..., i].astype(int) for i in range(3))
        return int(((r > 200) & (g < 225) & (b < 225) & (r - g > 15)).sum())

    assert reddish(tmp_path / "steady.html") == 0
    assert reddish(tmp_path / "drifting.html") > 1000


def test_html_report_without_history(tmp_path: Path) -> None:
    path = write_report(tmp_path / "report.htm", grid(), None)
    page = path.read_text()
    assert len(embedded_images(page)) == 1
    assert "No case has two or more stored runs yet." in page


def test_markdown_report_is_a_compact_summary(tmp_path: Path) -> None:
    store, records = drifting_history(tmp_path / "history.db")
    with store:
        path = write_report(tmp_path / "summary.md", records, store, title="Knowledge check")
    text = path.read_text()
    assert text.startswith("### Knowledge check\n")
    failing = text.index("#### Failing cases")
    stepping = text.index("#### Stepping down over recent runs")
    details = text.index("<details>")
    assert failing < text.index(FAILING_CASE) < stepping < text.index(DRIFTING_CASE) < details
    assert re.search(r"\| m-magnitude-0.20-facts +\| p_at_1 +\| 0.3100 +\| 0.2800 +\| 0.0300 +\| 0.0200 +\| #4 ", text)
    assert "data:image" not in text
    assert len(text) < 4000
    assert sorted(p.name for p in tmp_path.iterdir()) == ["history.db", "summary.md"]  # no temporary files left


def test_markdown_report_when_all_is_well(tmp_path: Path) -> None:
    text = write_report(tmp_path / "summary.md", grid(failing=False), None).read_text()
    assert "**all 6 cases pass (6 pass)**" in text
    assert "Failing cases" not in text and "Stepping down" not in text


@pytest.mark.parametrize("suffix", [".md", ".html"])
def test_a_failed_session_is_never_headlined_as_a_pass(tmp_path: Path, suffix: str) -> None:
    """Every recorded case passed, but pytest exited 1 (a crash, another test, an output not written)."""
    text = write_report(tmp_path / f"summary{suffix}", grid(failing=False), None, exit_status=1).read_text()
    assert "cases pass" not in text and "pytest exit status 1" in text
    assert 'class="ok"' not in text


@pytest.mark.parametrize("suffix", [".md", ".html"])
def test_a_session_that_recorded_no_case_is_not_a_pass(tmp_path: Path, suffix: str) -> None:
    text = write_report(tmp_path / f"summary{suffix}", [], None, exit_status=1).read_text()
    assert "all 0 cases pass" not in text and "no case was recorded (pytest exit status 1)" in text


def test_an_unknown_report_suffix_is_refused(tmp_path: Path) -> None:
    with pytest.raises(KnowledgeError, match=r"\.html, \.htm or \.md"):
        write_report(tmp_path / "report.pdf", grid(), None)
    assert list(tmp_path.iterdir()) == []


# -- in a browser ----------------------------------------------------------------------

BROWSERS = ("chromium", "chromium-browser", "google-chrome")
WIDTH, HEIGHT = 1280, 3200


def browser() -> str | None:
    return next((found for name in BROWSERS if (found := shutil.which(name))), None)


def screenshot(page: Path, shot: Path) -> np.ndarray:
    command = [browser(), "--headless", "--disable-gpu", "--disable-dev-shm-usage", "--hide-scrollbars",
               f"--window-size={WIDTH},{HEIGHT}", f"--screenshot={shot}", page.as_uri()]
    if os.geteuid() == 0:
        command.insert(1, "--no-sandbox")  # Chromium's sandbox refuses root
    done = subprocess.run(command, capture_output=True, text=True, timeout=120,
                          env={**os.environ, "HOME": str(shot.parent)})
    assert shot.is_file(), f"no screenshot: {done.stdout}{done.stderr}"
    return np.asarray(Image.open(shot).convert("RGB"))


def plot_lines(pixels: np.ndarray) -> int:
    """Pixels in matplotlib's first two line colours (blue, orange); the page's own text and tables use neither."""
    r, g, b = (pixels[..., i].astype(int) for i in range(3))
    blue = (b - r > 80) & (b > 120)
    orange = (r > 200) & (g > 90) & (g < 170) & (b < 80)
    return int((blue | orange).sum())


@pytest.mark.skipif(browser() is None, reason="Chromium is not installed")
def test_the_rendered_report_shows_its_plots(tmp_path: Path) -> None:
    store, records = drifting_history(tmp_path / "history.db")
    with store:
        report = write_report(tmp_path / "report.html", records, store)
    without_images = tmp_path / "no-images.html"
    without_images.write_text(re.sub(r'src="data:image/png;base64,[^"]+"', 'src=""', report.read_text()))

    shown = screenshot(report, tmp_path / "report.png")
    bare = screenshot(without_images, tmp_path / "bare.png")

    assert shown.shape == (HEIGHT, WIDTH, 3)
    assert (shown.min(axis=2) < 250).mean() > 0.05, "the page rendered (almost) blank"
    assert plot_lines(bare) < 50
    assert plot_lines(shown) > 5000, "the plots did not render"
    assert plot_lines(shown[: HEIGHT // 3]) > 1500, "the benchmark plots are not near the top of the page"


def test_long_histories_plot_a_capped_number_of_groups_step_downs_first(tmp_path: Path, monkeypatch) -> None:
    """Up to HISTORY_FIGURES history plots, the drifting group first; the rest are named as left out."""
    from pytest_knowledge.reports import files

    monkeypatch.setattr(files, "HISTORY_FIGURES", 1)
    store, records = drifting_history(tmp_path / "h.db")
    page = write_report(tmp_path / "r.html", records, store).read_text()
    history = page.split("<h2>History</h2>")[1].split("<h2>All cases</h2>")[0]
    assert history.count("<img") == 1
    assert "2 more groups are in <code>pytest-knowledge history</code>" in history
    assert "s / m / magnitude / facts" in history and "s / m / dense / facts" not in history
