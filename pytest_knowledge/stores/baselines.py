"""Baselines: one readable JSON file per suite and model under ``baselines/``.

``baselines/<suite>/<model>.json`` holds ``{"format": 1, "suite", "model", "entries":
{case_id: entry}}``. An entry records the metric, value, number of examples, the
per-example outcomes, ranks and example ids (see docs/benchmarks.md; entries recorded
before ranks existed load without them), the model fingerprint, library versions and
the date, so a reviewer can read a baseline diff in a pull request.

Several processes may update one file at once (sharded CI jobs merging into one checkout,
``pytest-knowledge baselines prune`` beside a session): each read-modify-write holds a
lock file beside the baseline, and the new text replaces the old one atomically.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from filelock import FileLock, Timeout

from pytest_knowledge.core.errors import BaselineError, KnowledgeError
from pytest_knowledge.core.files import dump_json, write_atomic

if TYPE_CHECKING:
    from pytest_knowledge.suite.parse import Suite

FORMAT = 1
REQUIRED = ("metric", "value", "n", "higher_is_better", "fingerprint")
LOCK_TIMEOUT = 120.0  # seconds; a writer holds the lock only while it rewrites one file


class BaselineStore:
    """Baseline files, one per (suite, model): read, locked updates, and the entries no case uses."""

    def __init__(self, root: Path):
        self.root = root
        self._files: dict[tuple[str, str], dict[str, Any]] = {}

    def path(self, suite: str, model: str) -> Path:
        return self.root / suite / f"{model}.json"

    def entries(self, suite: str, model: str) -> dict[str, Any]:
        """All entries of one file (empty when the file does not exist yet)."""
        key = (suite, model)
        if key not in self._files:
            self._files[key] = self._read(self.path(suite, model), suite, model)
        return self._files[key]

    def _read(self, path: Path, suite: str, model: str) -> dict[str, Any]:
        if not path.exists():
            return {}
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
            raise BaselineError(
                f"{path}: unreadable baseline file ({error}); restore it from version control "
                "or delete it and rerun with --knowledge-update-baselines"
            ) from None
        if not isinstance(data, dict) or not isinstance(data.get("entries"), dict):
            raise BaselineError(f"{path}: expected an object with 'entries' mapping case ids to results")
        if data.get("format") != FORMAT:
            raise BaselineError(f"{path}: format {data.get('format')!r}, expected {FORMAT}")
        for case_id, entry in data["entries"].items():
            missing = [k for k in REQUIRED if not isinstance(entry, dict) or k not in entry]
            if missing:
                raise BaselineError(f"{path}: entries.{case_id}: missing {', '.join(missing)}")
        return data["entries"]

    def get(self, suite: str, model: str, case_id: str) -> dict[str, Any] | None:
        return self.entries(suite, model).get(case_id)

    def write(self, suite: str, model: str, updates: dict[str, dict[str, Any]], remove: set[str] = frozenset()) -> Path:
        """Merge ``updates`` into the file and replace it atomically, under the file's lock, so an
        entry another process wrote between our read and our write is never dropped."""
        path = self.path(suite, model)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            with FileLock(lock_path(path), timeout=LOCK_TIMEOUT):
                entries = dict(self._read(path, suite, model))
                entries.update(updates)
                for case_id in remove:
                    entries.pop(case_id, None)
                write_atomic(path, dump_json({"format": FORMAT, "suite": suite, "model": model, "entries": entries}))
        except Timeout:
            raise BaselineError(f"{path}: another process held {lock_path(path)} for {LOCK_TIMEOUT:g} s; "
                                "if none is running, delete that lock file") from None
        except OSError as error:
            raise BaselineError(f"cannot write baselines under {self.root}: {error}; make the folder writable "
                                "or choose another baseline folder") from None
        self._files[(suite, model)] = entries
        return path


    def stale(self, suite: Suite) -> dict[str, set[str]]:
        """Entries of ``suite``'s baseline files that no case of the suite uses, per model
        (unreadable files are skipped here: reading them for a case reports them)."""
        used = {case.id for case in suite.cases()}
        found = {}
        for model in suite.models:
            try:
                unused = set(self.entries(suite.name, model.name)) - used
            except KnowledgeError:
                continue
            if unused:
                found[model.name] = unused
        return found

    def prune(self, suite: Suite) -> dict[str, set[str]]:
        """Remove ``stale(suite)`` entries (under the lock, like any update); returns what was removed."""
        stale = self.stale(suite)
        for model, case_ids in stale.items():
            self.write(suite.name, model, {}, remove=case_ids)
        return stale


def lock_path(path: Path) -> Path:
    """The lock beside a baseline file (the baseline itself is replaced on write, so it cannot hold a lock)."""
    return path.with_name(f".{path.name}.lock")
