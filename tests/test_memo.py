"""Remembered digests: weight files and generated benchmark data are fingerprinted once per machine."""

from __future__ import annotations

import hashlib
import os
import time
from pathlib import Path

import pytest

from pytest_knowledge.benchmarks.base import digest
from pytest_knowledge.benchmarks.facts import FactsBenchmark, FactsConfig
from pytest_knowledge.core.remembered import cache_home, remembered
from pytest_knowledge.engine import loading as models


@pytest.fixture(autouse=True)
def own_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.delenv(models.CONVERTED_VARIABLE, raising=False)
    models._digest_files.cache_clear()
    return tmp_path / "cache"


def test_a_digest_is_computed_once_then_read_back():
    calls = []

    def compute() -> str:
        calls.append(1)
        return "0123456789abcdef"

    assert remembered("n", "key", compute) == remembered("n", "key", compute) == "0123456789abcdef"
    assert len(calls) == 1
    assert (cache_home() / "digests" / "n" / "key").read_text() == "0123456789abcdef\n"


def test_a_damaged_entry_is_computed_again():
    entry = cache_home() / "digests" / "n" / "key"
    entry.parent.mkdir(parents=True)
    entry.write_text("not a digest")
    assert remembered("n", "key", lambda: "fedcba9876543210") == "fedcba9876543210"
    assert entry.read_text() == "fedcba9876543210\n"


def test_an_unwritable_cache_only_means_computing_again(own_cache: Path, monkeypatch: pytest.MonkeyPatch):
    own_cache.parent.joinpath("blocked").write_text("a file where the cache folder would be")
    monkeypatch.setenv("XDG_CACHE_HOME", str(own_cache.parent / "blocked"))
    assert remembered("n", "key", lambda: "0123456789abcdef") == "0123456789abcdef"


def _weights(folder: Path, content: bytes, age_s: float) -> Path:
    folder.mkdir(exist_ok=True)
    path = folder / "model.safetensors"
    path.write_bytes(content)
    stamp = time.time() - age_s
    os.utime(path, (stamp, stamp))
    return path


def test_weight_digests_are_remembered_unless_the_file_just_changed(tmp_path: Path):
    path = _weights(tmp_path / "m", b"weights-1", age_s=60)
    expected = hashlib.sha256(b"model.safetensors" + b"weights-1").hexdigest()[:16]
    assert models.file_fingerprint(models.Weights(str(path.parent))) == expected
    assert len(list((cache_home() / "digests" / "files").iterdir())) == 1

    fresh = _weights(tmp_path / "n", b"weights-2", age_s=0)
    assert models.file_fingerprint(models.Weights(str(fresh.parent))) != expected
    assert len(list((cache_home() / "digests" / "files").iterdir())) == 1  # too recent to trust its stamp

    models._digest_files.cache_clear()
    _weights(tmp_path / "m", b"weights-3", age_s=30)  # same size, new modification time
    assert models.file_fingerprint(models.Weights(str(path.parent))) != expected


def test_facts_fingerprint_is_the_content_hash_and_a_remembered_one_needs_no_facts():
    config = FactsConfig(relations=("capital", "continent"), limit=20)
    built = FactsBenchmark(config)
    assert built.data_fingerprint() == digest(built.clozes)

    again = FactsBenchmark(config)
    assert again.data_fingerprint() == built.data_fingerprint()
    assert "_examples" not in again.__dict__  # served from the memo: nothing was built
    assert FactsBenchmark(FactsConfig(relations=("capital", "continent"), limit=21)).data_fingerprint() != \
        built.data_fingerprint()
