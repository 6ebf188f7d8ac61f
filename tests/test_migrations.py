"""The trace store's schema: numbered migrations, exact columns, old and newer databases."""

from __future__ import annotations

import duckdb
import pytest

from tests.conftest import run_cli
from workbench.core.errors import TraceStoreError
from workbench.core.tracing import TraceStore
from workbench.core.tracing.migrations import LATEST, MIGRATIONS, migrate

SPAN_COLUMNS = [
    ("trace_id", "VARCHAR"),
    ("span_id", "VARCHAR"),
    ("parent_id", "VARCHAR"),
    ("name", "VARCHAR"),
    ("kind", "VARCHAR"),
    ("start_ns", "BIGINT"),
    ("end_ns", "BIGINT"),
    ("status", "VARCHAR"),
    ("error", "VARCHAR"),
    ("operation", "VARCHAR"),
    ("provider", "VARCHAR"),
    ("model", "VARCHAR"),
    ("input_tokens", "BIGINT"),
    ("output_tokens", "BIGINT"),
    ("ttft_s", "DOUBLE"),
    ("cost_usd", "DOUBLE"),
    ("template_id", "VARCHAR"),
    ("template_version", "VARCHAR"),
    ("attributes", "JSON"),
    ("payload", "JSON"),
    ("process", "VARCHAR"),
    ("hardware", "VARCHAR"),
    ("key_name", "VARCHAR"),
    ("queue_wait_s", "DOUBLE"),
    ("workflow", "VARCHAR"),
    ("node_type", "VARCHAR"),
    ("route", "VARCHAR"),
    ("escalation_reason", "VARCHAR"),
    ("escalation_refused", "VARCHAR"),
    ("escalated_to", "VARCHAR"),
    ("refused", "VARCHAR"),
]


def columns(con, table):
    return [(r[0], r[1]) for r in con.execute(f"DESCRIBE {table}").fetchall()]


def test_blank_database_gets_every_migration(tmp_path):
    con = duckdb.connect(str(tmp_path / "t.duckdb"))
    assert migrate(con) == [v for v, _, _ in MIGRATIONS]
    assert columns(con, "spans") == SPAN_COLUMNS
    assert [c for c, _ in columns(con, "segments")] == ["name", "spans", "ingested_at"]
    assert "duration_ms" in [c for c, _ in columns(con, "traces")]
    assert [c for c, _ in columns(con, "eval_runs")] == [
        "run_id",
        "dataset",
        "dataset_sha256",
        "subjects",
        "settings",
        "reproducibility",
        "status",
        "created_ns",
        "finished_ns",
        "wall_s",
    ]
    assert [c for c, _ in columns(con, "eval_results")] == [
        "run_id",
        "subject",
        "case_id",
        "output",
        "error",
        "metrics",
        "judge",
        "retrieved",
        "latency_s",
        "model_s",
        "ttft_s",
        "input_tokens",
        "output_tokens",
        "cost_usd",
        "judge_failures",
        "trace_id",
        "finished_ns",
    ]
    assert columns(con, "scores") == [
        ("trace_id", "VARCHAR"),
        ("name", "VARCHAR"),
        ("value", "DOUBLE"),
        ("note", "VARCHAR"),
        ("source", "VARCHAR"),
        ("author", "VARCHAR"),
        ("created_ns", "BIGINT"),
        ("subject", "VARCHAR"),
    ]
    assert [c for c, _ in columns(con, "traces")][-2:] == ["feedback_up", "feedback_down"]
    recorded = con.execute("SELECT version, name FROM schema_migrations ORDER BY 1").fetchall()
    assert recorded == [(v, n) for v, n, _ in MIGRATIONS]
    assert migrate(con) == []  # idempotent


def test_old_database_is_migrated_and_keeps_its_rows(tmp_path):
    path = tmp_path / "traces.duckdb"
    con = duckdb.connect(str(path))
    con.execute(
        "CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, name VARCHAR NOT NULL, "
        "applied_at TIMESTAMP NOT NULL DEFAULT current_timestamp)"
    )
    con.execute(MIGRATIONS[0][2])
    con.execute("INSERT INTO schema_migrations (version, name) VALUES (1, 'spans and segment ledger')")
    con.execute(
        "INSERT INTO spans (trace_id, span_id, name, kind, start_ns, end_ns, status) "
        "VALUES ('ab', 'cd', 'old', 'internal', 1, 2, 'ok')"
    )
    con.close()
    store = TraceStore(tmp_path)
    (tmp_path / "spool").mkdir()
    assert store.compact() == 0
    assert store.schema_version() == LATEST
    rows, total = store.list_traces()
    assert total == 1 and rows[0]["name"] == "old" and rows[0]["feedback_up"] == 0
    store.add_score("ab", "feedback", 1.0, "kept from before", "cli", "tester")  # migrated: scores exist
    assert store.list_traces()[0][0]["feedback_up"] == 1


def test_usage_attributes_of_old_spans_become_columns(tmp_path):
    """Migration 5 fills the new columns from the attributes of the spans already stored."""
    con = duckdb.connect(str(tmp_path / "traces.duckdb"))
    con.execute(
        "CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, name VARCHAR NOT NULL, "
        "applied_at TIMESTAMP NOT NULL DEFAULT current_timestamp)"
    )
    for version, name, sql in MIGRATIONS[:4]:
        con.execute(sql)
        con.execute("INSERT INTO schema_migrations (version, name) VALUES (?, ?)", [version, name])
    con.execute(
        "INSERT INTO spans (trace_id, span_id, name, kind, start_ns, end_ns, status, attributes) VALUES "
        """('ab', 'cd', 'router.ask', 'router', 1, 2, 'ok', '{"workbench.route": "cloud", '
        '"workbench.escalation_reason": "the local answer was empty", "workbench.queue_wait_s": 0.25}')"""
    )
    con.close()
    store = TraceStore(tmp_path)
    (tmp_path / "spool").mkdir()
    assert store.schema_version() == LATEST
    with store.reader() as con:
        row = con.execute("SELECT route, escalation_reason, queue_wait_s, hardware FROM spans").fetchone()
    assert row == ("cloud", "the local answer was empty", 0.25, None)


def test_newer_schema_is_refused_clearly(workspace):
    con = duckdb.connect(str(workspace.traces_path))
    migrate(con)
    con.execute("INSERT INTO schema_migrations (version, name) VALUES (?, 'from the future')", [LATEST + 1])
    con.close()
    with pytest.raises(TraceStoreError, match="newer workbench"):
        TraceStore(workspace.root).stats()
    result = run_cli("traces", "list")
    assert result.returncode == 4
    assert "written by a newer workbench" in result.stderr
    assert "Traceback" not in result.stderr
    # and it was not touched
    con = duckdb.connect(str(workspace.traces_path), read_only=True)
    assert con.execute("SELECT max(version) FROM schema_migrations").fetchone()[0] == LATEST + 1
