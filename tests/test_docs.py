"""The documentation runs: every shell command in README.md and docs/*.md, and every link.

Commands are the ``$ ``-prefixed lines of ```console blocks and the non-comment lines of
```bash / ```sh blocks. Each document's commands run in order, in a fresh copy of the
repository's working tree (a git repository with one commit, as after a clone) with this
environment's ``.venv`` and the repository's result cache (``.knowledge/cache``) linked in,
so repeated suite runs are served from the cache. A trailing ``# exits N`` comment on a
command declares its expected exit status (default 0); ``cd DIR`` changes the folder of
the commands after it. Commands in ``NOT_RUNNABLE`` are skipped, each with its reason.
With ``KNOWLEDGE_DOCS_LOG=DIR`` every command's output and time go to ``DIR/<doc>.log``.

Command-like inline code (`pytest ...`, `pytest-knowledge ...`, `make ...`) must either
be a usage pattern (with a placeholder such as ``SUITE`` or ``[--flag]``) or appear in a
fenced block, so it runs too; a fenced block in another language holding a command fails.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
SHELL_LANGUAGES = {"console", "bash", "sh", "shell"}
COMMAND_WORDS = ("pytest", "pytest-knowledge", "make", "pip", "python", "git", "cd", "source", "sed", "bash")

NOT_RUNNABLE = {
    "make test": "runs the project's whole test suite, this test included",
    "make test-fast": "runs the project's unit tests, this test file included",
    "python -m pytest_knowledge.testing": "rewrites the shipped fixture checkpoints; the --check form is tested",
    "python -m pytest_knowledge.testing --check":
        "trains both fixtures again; tests/test_bench_fixtures.py runs the same check",
    "pytest tests/gpu": "part of the project's test suite, which runs it (make test)",
    'pip install "psycopg[binary]"': "installs a package (no network here); the driver ships with the plugin's dependencies",
    "python benchmarks/bench_pruning.py": "a timing benchmark that takes minutes; tests/test_methods.py checks the pruning",
    "pytest --knowledge-suite --knowledge-history=postgresql+psycopg://ci@db.internal/knowledge":
        "needs a PostgreSQL server; tests/test_history_postgres.py covers it where one is available",
    'pytest-knowledge --history "$KNOWLEDGE_DB" compare latest~1 latest':
        "needs $KNOWLEDGE_DB, a team's shared history; the same compare runs on SQLite in docs/quickstart.md",
    "pytest --knowledge-suite=suites/paper-encoders.yaml": "needs the Hugging Face hub, LAMA data and a GPU",
    "pytest --knowledge-suite=suites/paper-decoders.yaml": "needs the Hugging Face hub and a GPU with about 40 GB",
}
# Commands run in an equivalent form: `make suite` would first install into .venv when
# its stamp is missing; -o keeps the linked, already installed environment as it is.
RUN_AS = {"make suite": "make -o .venv/.installed suite"}

FENCE = re.compile(r"^```([\w+-]*)[^\n]*\n(.*?)^```[ \t]*$", re.M | re.S)
EXITS = re.compile(r"\s+#\s*exits\s+(\d+)\s*$")
COMMENT = re.compile(r"\s+#\s.*$")
INLINE = re.compile(r"(?<!`)`((?:pytest|pytest-knowledge|make|pip|python|git) [^`]+)`(?!`)")
PLACEHOLDER = re.compile(r"\b[A-Z][A-Z0-9_]*\b|\.\.\.| \[")
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)|<img [^>]*src=\"([^\"]+)\"")


@dataclass(frozen=True)
class Command:
    doc: str
    line: int
    text: str
    exits: int = 0


def fenced_blocks(text: str) -> list[tuple[str, int, str]]:
    """(language, first line number of the body, body) of each fenced block."""
    return [(m.group(1), text.count("\n", 0, m.start(2)) + 1, m.group(2)) for m in FENCE.finditer(text)]


def commands(path: Path) -> list[Command]:
    found = []
    for language, first, body in fenced_blocks(path.read_text(encoding="utf-8")):
        if language not in SHELL_LANGUAGES:
            continue
        lines = body.splitlines()
        i = 0
        while i < len(lines):
            start, line = i, lines[i]
            i += 1
            if language == "console":
                if not line.startswith("$ "):
                    continue  # output shown under a command
                line = line[2:]
            elif not line.strip() or line.lstrip().startswith("#"):
                continue
            while line.endswith("\\") and i < len(lines):
                line = line[:-1] + lines[i].removeprefix("> ")
                i += 1
            exits = EXITS.search(line)
            text = COMMENT.sub("", EXITS.sub("", line)).strip()
            found.append(Command(path.name, first + start, text, int(exits.group(1)) if exits else 0))
    return found


def strip_fences(text: str) -> str:
    return FENCE.sub("", text)


def documents_with_commands() -> list[Path]:
    return [p for p in DOCS if commands(p)]


# -- the working copy -----------------------------------------------------------------------------


def _tree_files() -> list[str]:
    """The working tree as a clone plus uncommitted changes would have it."""
    try:
        listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=ROOT,
                                capture_output=True, check=True).stdout.decode()
    except (OSError, subprocess.CalledProcessError):
        pytest.skip("needs git and a git checkout of the repository")
    return sorted({f for f in listed.split("\0") if f and (ROOT / f).is_file()})


GIT_ENV = {"GIT_AUTHOR_NAME": "docs", "GIT_AUTHOR_EMAIL": "docs@example.invalid",
           "GIT_COMMITTER_NAME": "docs", "GIT_COMMITTER_EMAIL": "docs@example.invalid",
           "GIT_CONFIG_GLOBAL": os.devnull, "GIT_CONFIG_NOSYSTEM": "1"}


def clone(target: Path) -> Path:
    for name in _tree_files():
        (target / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / name, target / name)
    (target / ".venv").symlink_to(Path(sys.prefix))
    cache = ROOT / ".knowledge" / "cache"
    cache.mkdir(parents=True, exist_ok=True)
    for project in [target, *(ini.parent for ini in target.rglob("pytest.ini"))]:  # each rootdir's cache
        (project / ".knowledge").mkdir(exist_ok=True)
        (project / ".knowledge" / "cache").symlink_to(cache)
    env = {**os.environ, **GIT_ENV}
    for git in (["init", "-q"], ["add", "-A"], ["commit", "-q", "-m", "clone"]):
        subprocess.run(["git", *git], cwd=target, env=env, check=True, capture_output=True)
    return target


def environment() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "COV_"))}
    env.update(GIT_ENV)
    env["PATH"] = f"{Path(sys.prefix) / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    env["VIRTUAL_ENV"] = sys.prefix
    env["HF_HUB_OFFLINE"] = env["HF_DATASETS_OFFLINE"] = "1"
    env.pop("PYTEST_ADDOPTS", None)
    return env


# -- the tests ------------------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("doc", documents_with_commands(), ids=lambda p: p.name)
def test_commands_run(doc: Path, tmp_path: Path) -> None:
    """Each command of the document, in order, exits as the document says."""
    work = clone(tmp_path / "repo")
    env = environment()
    cwd = work
    skipped = []
    log = Path(os.environ["KNOWLEDGE_DOCS_LOG"]) if os.environ.get("KNOWLEDGE_DOCS_LOG") else None
    if log:  # for updating the outputs shown in the documents
        log.mkdir(parents=True, exist_ok=True)
        (log / f"{doc.stem}.log").write_text("", encoding="utf-8")
    for command in commands(doc):
        where = f"{command.doc}:{command.line}: {command.text}"
        if command.text in NOT_RUNNABLE:
            skipped.append(f"{where} ({NOT_RUNNABLE[command.text]})")
            continue
        if re.fullmatch(r"cd \S+", command.text):
            cwd = (cwd / command.text[3:]).resolve()
            assert cwd.is_dir(), where
            continue
        started = time.monotonic()
        done = subprocess.run(["bash", "-c", RUN_AS.get(command.text, command.text)], cwd=cwd, env=env,
                              capture_output=True, text=True, timeout=1200)
        if log:
            with (log / f"{doc.stem}.log").open("a", encoding="utf-8") as out:
                out.write(f"$ {command.text}  # line {command.line}, exit {done.returncode}, "
                          f"{time.monotonic() - started:.1f} s\n{done.stdout}{done.stderr}\n")
        output = (done.stdout + done.stderr)[-6000:]
        assert done.returncode == command.exits, (
            f"{where}\nexited {done.returncode}, the document says {command.exits}\n{output}")
    for line in skipped:
        print(f"not run: {line}")


def test_every_command_is_runnable_or_has_a_reason() -> None:
    """Inline commands appear in a fenced block (so they run) unless they are usage patterns, and
    commands are not hidden in fenced blocks of other languages."""
    fenced = {c.text for doc in DOCS for c in commands(doc)}
    problems = []
    for doc in DOCS:
        text = doc.read_text(encoding="utf-8")
        for language, first, body in fenced_blocks(text):
            if language in SHELL_LANGUAGES or language in ("yaml", "json", "python", "text", "diff"):
                continue
            for offset, line in enumerate(body.splitlines()):
                if line.startswith("$ ") or line.split(" ", 1)[0] in COMMAND_WORDS:
                    problems.append(f"{doc.name}:{first + offset}: command in a ```{language} block: {line}")
        for match in INLINE.finditer(strip_fences(text)):
            inline = " ".join(match.group(1).split())
            if PLACEHOLDER.search(inline) or inline in fenced or inline in NOT_RUNNABLE:
                continue
            problems.append(f"{doc.name}: `{inline}` is shown but never run: add it to a ```console block")
    assert not problems, "\n".join(problems)


def test_relative_links_point_to_files() -> None:
    broken = []
    for doc in DOCS:
        for match in LINK.finditer(strip_fences(doc.read_text(encoding="utf-8"))):
            target = (match.group(1) or match.group(2)).split("#", 1)[0]
            if not target or re.match(r"[a-z][a-z0-9+.-]*:", target):
                continue  # an anchor in the same page, or an absolute URL
            if not (doc.parent / target).exists():
                broken.append(f"{doc.relative_to(ROOT)}: {target}")
    assert not broken, "broken links:\n" + "\n".join(broken)


def test_code_shown_from_a_file_is_that_file() -> None:
    """A fenced block whose first line is ``# examples/...`` shows that file, verbatim."""
    shown = 0
    for doc in DOCS:
        for _language, first, body in fenced_blocks(doc.read_text(encoding="utf-8")):
            head, _, rest = body.partition("\n")
            match = re.fullmatch(r"# (examples/\S+)", head)
            if match:
                shown += 1
                path = ROOT / match.group(1)
                assert path.is_file(), f"{doc.name}:{first}: no file {match.group(1)}"
                assert rest == path.read_text(encoding="utf-8"), f"{doc.name}:{first}: differs from {match.group(1)}"
    assert shown >= 5


def test_the_quickstart_journey_fails_then_recovers() -> None:
    """docs/quickstart.md walks from a passing run to a failing gate and back to green."""
    steps = [c for c in commands(ROOT / "docs" / "quickstart.md")]
    failing = [i for i, c in enumerate(steps) if c.exits == 1 and c.text.startswith("pytest --knowledge-suite")]
    update = [i for i, c in enumerate(steps) if "--knowledge-update-baselines" in c.text]
    green = [i for i, c in enumerate(steps) if c.text == "pytest --knowledge-suite" and c.exits == 0]
    assert failing and update and green
    assert failing[0] < update[0] < max(green), "run, fail, update baselines, pass again"
