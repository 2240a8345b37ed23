"""Hooks through which the knowledge session feeds its outputs, the way pytest feeds junitxml and
its terminal reporter. The built-in outputs (baselines, results file, facts export, reports, run
history) are plugins implementing them (``outputs``); a conftest.py or installed pytest plugin
can add one the same way."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pluggy

if TYPE_CHECKING:
    from pytest_knowledge.gate.record import Record
    from pytest_knowledge.run.session import KnowledgeSession

hookspec = pluggy.HookspecMarker("pytest")


@hookspec
def pytest_knowledge_record(session: KnowledgeSession, record: Record) -> None:
    """A case's record reached the controller (once per collected case, crashed and never-run
    cases included, at the end of the session for those)."""


@hookspec
def pytest_knowledge_finish(session: KnowledgeSession) -> None:
    """Every collected case has its record in ``session.records``: write the output. Report a
    failure with ``session.output_failed(message)``, which fails the session; ``session.status()``
    is pytest's exit status so far, including earlier outputs' failures."""
