"""Baselines: one readable JSON file per suite and model under ``baselines/``.

``baselines/<suite>/<model>.json`` holds ``{"format": 1, "suite", "model", "entries":
{case_id: entry}}``. An entry records the metric, value, number of examples, the
per-example outcomes, ranks and example ids (see docs/benchmarks.md; entries recorded
before ranks existed load without them), the model fingerprint, library versions and
the date, so a reviewer can read a baseline diff in a pull request.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pytest_knowledge.core.errors import BaselineError
from pytest_knowledge.core.files import dump_json, write_atomic

FORMAT = 1
REQUIRED = ("metric", "value", "n", "higher_is_better", "fingerprint")


class BaselineStore:
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
        """Merge ``updates`` into the file (re-read from disk, so nothing stored is dropped) and write it atomically."""
        path = self.path(suite, model)
        entries = dict(self._read(path, suite, model))
        entries.update(updates)
        for case_id in remove:
            entries.pop(case_id, None)
        write_atomic(path, dump_json({"format": FORMAT, "suite": suite, "model": model, "entries": entries}))
        self._files[(suite, model)] = entries
        return path
