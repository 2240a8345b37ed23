"""Result files: every record of a session as JSON, so shards run on separate hosts can be merged.

``--knowledge-results=PATH`` writes one per session (controller only); ``pytest-knowledge
merge`` combines several into one report and one baseline update. A case reported by two
files with different measurements is a conflict: reported, never silently dropped. Given
the suites the shards ran, a case no file reports (a crashed or cancelled shard) becomes
an error record, so an incomplete merge cannot pass.
"""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pytest_knowledge.core.errors import KnowledgeError
from pytest_knowledge.core.files import dump_json, write_atomic
from pytest_knowledge.gate.record import Record, error_record
from pytest_knowledge.stores.baselines import BaselineStore
from pytest_knowledge.suite.parse import Suite

FORMAT = 1


def write_results(path: Path, records: list[Record], meta: dict[str, Any]) -> None:
    write_atomic(path, dump_json({"format": FORMAT, "meta": meta, "records": [r.to_json() for r in records]}))


def read_results(path: Path) -> list[Record]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        if data.get("format") != FORMAT:
            raise KnowledgeError(f"{path}: results format {data.get('format')!r}, expected {FORMAT}")
        return [Record(**r) for r in data["records"]]
    except (OSError, ValueError, TypeError, KeyError, AttributeError) as error:
        raise KnowledgeError(f"{path}: not a pytest-knowledge results file ({error})") from None


@dataclass
class Merged:
    records: list[Record] = field(default_factory=list)
    conflicts: list[str] = field(default_factory=list)


def merge(paths: list[Path]) -> Merged:
    """Union of the files' records by (suite, case id); differing duplicates are conflicts."""
    merged = Merged()
    seen: dict[tuple[str, str], tuple[Path, Record]] = {}
    for path in paths:
        for record in read_results(path):
            key = (record.suite, record.case_id)
            if key not in seen:
                seen[key] = (path, record)
                merged.records.append(record)
            elif not seen[key][1].measures_the_same_as(record):
                first_path, first = seen[key]
                merged.conflicts.append(
                    f"{record.suite}/{record.case_id}: {first.current} in {first_path} but {record.current} in {path}"
                )
    return merged


@dataclass
class BaselineUpdate:
    """Files an update wrote, and why the others could not be written."""

    written: list[Path] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)


def update_baselines(store: BaselineStore, records: list[Record]) -> BaselineUpdate:
    """Write the entries of new and updated records, one atomic write per baseline file; a file
    that cannot be written is reported and the others are still written."""
    grouped: dict[tuple[str, str], dict[str, dict]] = defaultdict(dict)
    for record in records:
        if record.entry is not None and record.status in ("new", "updated"):
            grouped[(record.suite, record.model)][record.case_id] = record.entry
    update = BaselineUpdate()
    for (suite, model), entries in sorted(grouped.items()):
        try:
            update.written.append(store.write(suite, model, entries))
        except KnowledgeError as error:
            update.failed.append(str(error))
    return update


def missing_records(records: list[Record], suites: list[Suite]) -> list[Record]:
    """An error record for every case of ``suites`` that none of ``records`` reports."""
    seen = {(r.suite, r.case_id) for r in records}
    return [
        error_record(case, f"no results file reports {case.id} of suite {suite.name!r} ({suite.path}): the shard "
                           "that owns it did not finish, or its results file was left out of the merge")
        for suite in suites for case in suite.cases() if (suite.name, case.id) not in seen
    ]
