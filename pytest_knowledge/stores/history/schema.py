"""The history database's tables; a version row lets a newer plugin refuse an older layout."""

from __future__ import annotations

from dataclasses import fields

import sqlalchemy as sa

from pytest_knowledge.gate.record import Record

SCHEMA_VERSION = 1


metadata = sa.MetaData()

schema_table = sa.Table(
    "knowledge_schema", metadata,
    sa.Column("key", sa.String(64), primary_key=True),
    sa.Column("value", sa.String(256), nullable=False),
)

runs_table = sa.Table(
    "knowledge_runs", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("finished_at", sa.DateTime(timezone=True)),
    sa.Column("suites", sa.JSON, nullable=False),
    sa.Column("git_commit", sa.String(64)),
    sa.Column("git_branch", sa.String(256)),
    sa.Column("git_dirty", sa.Boolean),
    sa.Column("host", sa.String(256), nullable=False),
    sa.Column("platform", sa.String(256), nullable=False),
    sa.Column("device", sa.String(256), nullable=False),
    sa.Column("versions", sa.JSON, nullable=False),
    sa.Column("exit_status", sa.Integer),  # pytest's exit status; empty for an interrupted run
)

cases_table = sa.Table(
    "knowledge_cases", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("run_id", sa.Integer, sa.ForeignKey("knowledge_runs.id"), nullable=False, index=True),
    sa.Column("suite", sa.String(256), nullable=False),
    sa.Column("case_id", sa.String(512), nullable=False),
    sa.Column("model", sa.String(256), nullable=False),
    sa.Column("method", sa.String(256), nullable=False),
    sa.Column("ratio", sa.Float),
    sa.Column("benchmark", sa.String(256), nullable=False),
    sa.Column("metric", sa.String(128), nullable=False),
    sa.Column("higher_is_better", sa.Boolean, nullable=False),
    sa.Column("n", sa.Integer, nullable=False),
    sa.Column("dense", sa.Float),
    sa.Column("baseline", sa.Float),
    sa.Column("current", sa.Float),
    sa.Column("delta", sa.Float),
    sa.Column("retention", sa.Float),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("from_cache", sa.Boolean, nullable=False),
    sa.Column("message", sa.Text, nullable=False),
    sa.Column("method_report", sa.Text, nullable=False),
    sa.Column("seconds", sa.Float, nullable=False),
    sa.Column("fingerprint", sa.String(64)),
    sa.Column("entry", sa.JSON),
    sa.Column("tol_abs", sa.Float),
    sa.Column("tol_rel", sa.Float),
    sa.Column("tol_min_retention", sa.Float),
    sa.Index("ix_knowledge_cases_case", "suite", "case_id"),
)

# Record fields stored one-to-one as columns of the same name: derived, so a field added to the
# record and to the table is stored without a third list to update.
RECORD_COLUMNS = tuple(c.name for c in cases_table.columns if c.name in {f.name for f in fields(Record)})


