"""What is recorded about a run besides its cases: when, which commit and branch, which host and versions."""

from __future__ import annotations

import datetime as dt
import os
import platform
import socket
import subprocess
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from pytest_knowledge.core.versions import describe_versions
from pytest_knowledge.suite.parse import Suite
from pytest_knowledge.suite.tolerance import Tolerance

# Branch names CI systems set when they check out a detached commit.
CI_BRANCH_VARIABLES = ("GITHUB_HEAD_REF", "GITHUB_REF_NAME", "CI_COMMIT_REF_NAME", "BRANCH_NAME")


def utc(moment: dt.datetime) -> dt.datetime:
    """SQLite hands back naive datetimes; everything stored is UTC."""
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=dt.timezone.utc)


def now() -> dt.datetime:
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
    started_at: dt.datetime = field(default_factory=now)
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


