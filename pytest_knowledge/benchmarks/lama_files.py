"""Read LAMA probe files — the original layout and Hugging Face ``lama`` rows — into cloze examples.

Original layout (Petroni et al. 2019): ``relations.jsonl`` with templates,
``TREx/P*.jsonl``, ``Google_RE/*_test.jsonl``, ``ConceptNet/test.jsonl`` and
``Squad/test.jsonl``. Hugging Face rows (``datasets.load_dataset("lama", ...)`` written
with ``to_json``) carry one ``masked_sentence`` each. Every problem names the file, the
line, the field and what was expected.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

from pytest_knowledge.core.errors import KnowledgeError

MASK = "[MASK]"
ORIGINAL_FILES = ("TREx/P*.jsonl", "Google_RE/*_test.jsonl", "ConceptNet/test.jsonl", "Squad/test.jsonl")


@dataclass(frozen=True)
class LamaExample:
    relation: str
    subject: str  # "" where the row names no subject (ConceptNet, and Squad's placeholder "Squad")
    object: str
    prefix: str
    suffix: str
    id: str  # the row's uuid or id, else folder/file:line; unique within the data read


@dataclass
class LamaData:
    examples: list[LamaExample]
    skipped_masks: int  # sentences without exactly one [MASK]


def _problem(where: str, field: str, expected: str, row: dict) -> KnowledgeError:
    if field not in row:
        return KnowledgeError(f"{where}: field {field!r} is missing (expected {expected})")
    return KnowledgeError(f"{where}: field {field!r}: expected {expected}, got {row[field]!r}")


def _text(row: dict, field: str, where: str, required: bool = True) -> str:
    value = row.get(field)
    if isinstance(value, str) and value.strip():
        return value
    if required or (field in row and not isinstance(value, str)):
        raise _problem(where, field, "a non-empty string", row)
    return ""


def _rows(path: Path) -> Iterator[tuple[str, dict]]:
    """('path:line', row) for every non-blank line; a line that is not a JSON object is an error."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as error:
        raise KnowledgeError(f"{path}: cannot read LAMA file ({error})") from None
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        where = f"{path}:{number}"
        try:
            row = json.loads(line)
        except json.JSONDecodeError as error:
            raise KnowledgeError(f"{where}: expected one JSON object per line ({error.msg})") from None
        if not isinstance(row, dict):
            raise KnowledgeError(f"{where}: expected a JSON object, got {type(row).__name__}")
        yield where, row


def check_template(template: Any, where: str, field: str = "template") -> str:
    if not isinstance(template, str) or template.count("[X]") != 1 or template.count("[Y]") != 1:
        raise KnowledgeError(f"{where}: field {field!r}: expected a string with one [X] and one [Y], got {template!r}")
    return template


def read_templates(path: Path) -> dict[str, str]:
    """``relations.jsonl``: relation id → template with [X] (subject) and [Y] (object)."""
    templates = {}
    for where, row in _rows(path):
        templates[_text(row, "relation", where)] = check_template(row.get("template"), where)
    return templates


def read_vocabulary(path: Path) -> list[str]:
    """A common-vocabulary file: one token per line, as LAMA ships it."""
    try:
        words = [w.strip() for w in path.read_text(encoding="utf-8").splitlines()]
    except (OSError, UnicodeDecodeError) as error:
        raise KnowledgeError(f"{path}: cannot read vocabulary file ({error})") from None
    words = sorted({w for w in words if w})
    if not words:
        raise KnowledgeError(f"{path}: vocabulary file has no words (expected one token per line)")
    return words


def find_files(path: Path) -> list[Path]:
    """The probe files under ``path``: the original layout, else every ``*.jsonl`` in it."""
    if path.is_file():
        return [path]
    found = [f for pattern in ORIGINAL_FILES for f in sorted(path.glob(pattern))]
    found = found or sorted(p for p in path.glob("*.jsonl") if p.name != "relations.jsonl")
    if not found:
        raise KnowledgeError(
            f"{path}: no LAMA files (expected {', '.join(ORIGINAL_FILES)} or *.jsonl rows of the Hugging Face lama dataset)"
        )
    return found


def default_templates(path: Path) -> Path | None:
    """``relations.jsonl`` next to the data: in the folder given or its parent, as LAMA lays it out."""
    folder = path if path.is_dir() else path.parent
    for candidate in (folder / "relations.jsonl", folder.parent / "relations.jsonl"):
        if candidate.is_file():
            return candidate
    return None


def _file_relation(path: Path) -> str | None:
    """The relation an original-layout file holds, from its name and folder."""
    if re.fullmatch(r"P\d+", path.stem):
        return path.stem
    if path.stem.endswith("_test"):
        return path.stem[: -len("_test")]
    return {"conceptnet": "ConceptNet", "squad": "Squad"}.get(path.parent.name.lower())


def _row_relation(row: dict, file_relation: str | None, where: str) -> str:
    """T-REx: predicate_id; Google_RE: the last part of ``pred``; else ConceptNet / Squad / the file's."""
    if "predicate_id" in row:
        return _text(row, "predicate_id", where)
    if file_relation:
        return file_relation
    pred = row.get("pred")
    if isinstance(pred, str) and pred.startswith("/"):
        return pred.rstrip("/").rsplit("/", 1)[-1]
    if isinstance(pred, str) and pred:
        return "ConceptNet"
    if row.get("sub_label") == "Squad" or "id" in row:
        return "Squad"
    raise KnowledgeError(f"{where}: cannot tell the relation "
                         "(expected a field 'predicate_id' or 'pred', or a LAMA file name)")


def _masked_sentence(row: dict, where: str) -> str:
    """HF rows: ``masked_sentence``; original: first of ``masked_sentences``, else of T-REx ``evidences``."""
    if "masked_sentence" in row:
        return _text(row, "masked_sentence", where)
    if "masked_sentences" in row:
        sentences = row["masked_sentences"]
        if not isinstance(sentences, list) or not sentences or not isinstance(sentences[0], str):
            raise _problem(where, "masked_sentences", "a non-empty list of strings", row)
        return sentences[0]
    evidences = row.get("evidences")
    if isinstance(evidences, list) and evidences and isinstance(evidences[0], dict):
        return _text(evidences[0], "masked_sentence", f"{where}: evidences[0]")
    raise _problem(where, "masked_sentences", "a non-empty list of strings with one [MASK] each", row)


def _is_trex(row: dict, file_relation: str | None) -> bool:
    """T-REx rows are facts meant to be read through their relation's template."""
    return "predicate_id" in row or bool(file_relation and re.fullmatch(r"P\d+", file_relation))


def _row_id(row: dict, file: Path, where: str) -> str:
    """The row's own ``uuid`` (T-REx, Google-RE, ConceptNet) or ``id`` (Squad), else folder/file:line."""
    for field in ("uuid", "id"):
        if isinstance(row.get(field), (str, int)) and str(row[field]).strip():
            return str(row[field]).strip()
    return f"{file.parent.name}/{file.name}:{where.rsplit(':', 1)[1]}"


def read_lama(path: Path, templates: dict[str, str], use_templates: bool, templates_file: Path | None = None,
              evidence_fallback: bool = False) -> LamaData:
    """All examples under ``path``; with templates, T-REx-style facts become one sentence each (de-duplicated).

    A T-REx relation without a template (in ``templates_file`` or on the row) is an error:
    its evidence sentences are a different probe. ``evidence_fallback`` reads them anyway.
    """
    examples: list[LamaExample] = []
    seen: set[tuple[str, str, str, str]] = set()
    ids: Counter[str] = Counter()
    skipped = 0
    for file in find_files(path):
        file_relation = _file_relation(file)
        count = 0
        for where, row in _rows(file):
            count += 1
            relation = _row_relation(row, file_relation, where)
            obj = _text(row, "obj_label", where).strip()
            template = (templates.get(relation) or row.get("template")) if use_templates else None
            if use_templates and not template and not evidence_fallback and _is_trex(row, file_relation):
                source = f"in {templates_file}" if templates_file else "(no relations.jsonl found next to the data)"
                raise KnowledgeError(
                    f"{file}: relation {relation} has no template {source} nor on its rows (expected a relations.jsonl "
                    "line for it, or relations_file; set missing_template: evidence to read its evidence sentences "
                    "instead, or templates: false for all relations)")
            if template:
                template = check_template(template, where)
                subject = _text(row, "sub_label", where).strip()
                prefix, suffix = template.replace("[X]", subject).split("[Y]")
            else:
                subject = _text(row, "sub_label", where, required=False).strip()
                sentence = _masked_sentence(row, where)
                if sentence.count(MASK) != 1:
                    skipped += 1
                    continue
                prefix, suffix = sentence.split(MASK)
            if subject.casefold() == relation.casefold():  # Squad's rows all say sub_label "Squad"
                subject = ""
            key = (relation, prefix, suffix, obj)
            if key not in seen:
                seen.add(key)
                row_id = _row_id(row, file, where)
                ids[row_id] += 1
                unique = row_id if ids[row_id] == 1 else f"{row_id}#{ids[row_id]}"
                examples.append(LamaExample(relation, subject, obj, prefix, suffix, unique))
        if count == 0:
            raise KnowledgeError(f"{file}: no rows (expected one JSON object per line)")
    return LamaData(examples, skipped)
