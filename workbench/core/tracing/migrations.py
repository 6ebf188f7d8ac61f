"""Numbered schema migrations of traces.duckdb, each recorded in ``schema_migrations``.

Append new migrations; never edit one that has shipped.
"""

from __future__ import annotations

MIGRATIONS: list[tuple[int, str, str]] = [
    (
        1,
        "spans and segment ledger",
        """
        CREATE TABLE spans (
            trace_id VARCHAR NOT NULL,
            span_id VARCHAR NOT NULL,
            parent_id VARCHAR,
            name VARCHAR NOT NULL,
            kind VARCHAR NOT NULL,
            start_ns BIGINT NOT NULL,
            end_ns BIGINT NOT NULL,
            status VARCHAR NOT NULL,
            error VARCHAR,
            operation VARCHAR,
            provider VARCHAR,
            model VARCHAR,
            input_tokens BIGINT,
            output_tokens BIGINT,
            ttft_s DOUBLE,
            cost_usd DOUBLE,
            template_id VARCHAR,
            template_version VARCHAR,
            attributes JSON,
            payload JSON,
            process VARCHAR
        );
        CREATE TABLE segments (name VARCHAR PRIMARY KEY, spans BIGINT NOT NULL,
                               ingested_at TIMESTAMP NOT NULL);
        """,
    ),
    (
        2,
        "traces view",
        """
        CREATE VIEW traces AS
        SELECT trace_id,
               coalesce(arg_min(name, start_ns) FILTER (WHERE parent_id IS NULL),
                        arg_min(name, start_ns)) AS name,
               min(start_ns) AS start_ns,
               max(end_ns) AS end_ns,
               (max(end_ns) - min(start_ns)) / 1e6 AS duration_ms,
               count(*) AS spans,
               CASE WHEN bool_or(status = 'error') THEN 'error' ELSE 'ok' END AS status,
               string_agg(DISTINCT model, ',' ORDER BY model) AS models,
               sum(input_tokens) AS input_tokens,
               sum(output_tokens) AS output_tokens,
               sum(cost_usd) AS cost_usd
        FROM spans GROUP BY trace_id;
        """,
    ),
    (
        3,
        "eval runs and results",
        """
        CREATE TABLE eval_runs (
            run_id VARCHAR PRIMARY KEY,
            dataset VARCHAR NOT NULL,
            dataset_sha256 VARCHAR NOT NULL,
            subjects JSON NOT NULL,
            settings JSON NOT NULL,
            reproducibility JSON NOT NULL,
            status VARCHAR NOT NULL,
            created_ns BIGINT NOT NULL,
            finished_ns BIGINT,
            wall_s DOUBLE
        );
        CREATE TABLE eval_results (
            run_id VARCHAR NOT NULL,
            subject VARCHAR NOT NULL,
            case_id VARCHAR NOT NULL,
            output VARCHAR,
            error VARCHAR,
            metrics JSON,
            judge JSON,
            retrieved JSON,
            latency_s DOUBLE,
            model_s DOUBLE,
            ttft_s DOUBLE,
            input_tokens BIGINT,
            output_tokens BIGINT,
            cost_usd DOUBLE,
            judge_failures INTEGER,
            trace_id VARCHAR,
            finished_ns BIGINT NOT NULL
        );
        """,
    ),
    (
        4,
        "feedback scores on traces",
        """
        CREATE TABLE scores (
            trace_id VARCHAR NOT NULL,
            name VARCHAR NOT NULL,
            value DOUBLE NOT NULL,
            note VARCHAR,
            source VARCHAR NOT NULL,
            author VARCHAR NOT NULL,
            created_ns BIGINT NOT NULL
        );
        CREATE OR REPLACE VIEW traces AS
        SELECT t.*, coalesce(f.up, 0) AS feedback_up, coalesce(f.down, 0) AS feedback_down
        FROM (
            SELECT trace_id,
                   coalesce(arg_min(name, start_ns) FILTER (WHERE parent_id IS NULL),
                            arg_min(name, start_ns)) AS name,
                   min(start_ns) AS start_ns,
                   max(end_ns) AS end_ns,
                   (max(end_ns) - min(start_ns)) / 1e6 AS duration_ms,
                   count(*) AS spans,
                   CASE WHEN bool_or(status = 'error') THEN 'error' ELSE 'ok' END AS status,
                   string_agg(DISTINCT model, ',' ORDER BY model) AS models,
                   sum(input_tokens) AS input_tokens,
                   sum(output_tokens) AS output_tokens,
                   sum(cost_usd) AS cost_usd
            FROM spans GROUP BY trace_id
        ) t
        LEFT JOIN (
            SELECT trace_id, count(*) FILTER (WHERE value > 0) AS up, count(*) FILTER (WHERE value < 0) AS down
            FROM scores WHERE name = 'feedback' GROUP BY trace_id
        ) f USING (trace_id);
        """,
    ),
    (
        5,
        "usage attributes as columns; the subject a score rates",
        """
        ALTER TABLE scores ADD COLUMN subject VARCHAR;
        ALTER TABLE spans ADD COLUMN hardware VARCHAR;
        ALTER TABLE spans ADD COLUMN key_name VARCHAR;
        ALTER TABLE spans ADD COLUMN queue_wait_s DOUBLE;
        ALTER TABLE spans ADD COLUMN workflow VARCHAR;
        ALTER TABLE spans ADD COLUMN node_type VARCHAR;
        ALTER TABLE spans ADD COLUMN route VARCHAR;
        ALTER TABLE spans ADD COLUMN escalation_reason VARCHAR;
        ALTER TABLE spans ADD COLUMN escalation_refused VARCHAR;
        ALTER TABLE spans ADD COLUMN escalated_to VARCHAR;
        ALTER TABLE spans ADD COLUMN refused VARCHAR;
        UPDATE spans SET
            hardware = json_extract_string(attributes, '$."workbench.hardware"'),
            key_name = json_extract_string(attributes, '$."workbench.key"'),
            queue_wait_s = TRY_CAST(json_extract_string(attributes, '$."workbench.queue_wait_s"') AS DOUBLE),
            workflow = json_extract_string(attributes, '$."workbench.workflow"'),
            node_type = json_extract_string(attributes, '$."workbench.node_type"'),
            route = json_extract_string(attributes, '$."workbench.route"'),
            escalation_reason = json_extract_string(attributes, '$."workbench.escalation_reason"'),
            escalation_refused = json_extract_string(attributes, '$."workbench.escalation_refused"'),
            escalated_to = json_extract_string(attributes, '$."workbench.escalated_to"'),
            refused = json_extract_string(attributes, '$."workbench.refused"')
        WHERE attributes IS NOT NULL;
        """,
    ),
    (
        6,
        "a trace whose answer was stopped reads cancelled, not ok",
        """
        CREATE OR REPLACE VIEW traces AS
        SELECT t.*, coalesce(f.up, 0) AS feedback_up, coalesce(f.down, 0) AS feedback_down
        FROM (
            SELECT trace_id,
                   coalesce(arg_min(name, start_ns) FILTER (WHERE parent_id IS NULL),
                            arg_min(name, start_ns)) AS name,
                   min(start_ns) AS start_ns,
                   max(end_ns) AS end_ns,
                   (max(end_ns) - min(start_ns)) / 1e6 AS duration_ms,
                   count(*) AS spans,
                   CASE WHEN bool_or(status = 'error') THEN 'error'
                        WHEN bool_or(status = 'cancelled') THEN 'cancelled' ELSE 'ok' END AS status,
                   string_agg(DISTINCT model, ',' ORDER BY model) AS models,
                   sum(input_tokens) AS input_tokens,
                   sum(output_tokens) AS output_tokens,
                   sum(cost_usd) AS cost_usd
            FROM spans GROUP BY trace_id
        ) t
        LEFT JOIN (
            SELECT trace_id, count(*) FILTER (WHERE value > 0) AS up, count(*) FILTER (WHERE value < 0) AS down
            FROM scores WHERE name = 'feedback' GROUP BY trace_id
        ) f USING (trace_id);
        """,
    ),
]

LATEST = MIGRATIONS[-1][0]

SPAN_COLUMNS = (
    "trace_id",
    "span_id",
    "parent_id",
    "name",
    "kind",
    "start_ns",
    "end_ns",
    "status",
    "error",
    "operation",
    "provider",
    "model",
    "input_tokens",
    "output_tokens",
    "ttft_s",
    "cost_usd",
    "template_id",
    "template_version",
    "attributes",
    "payload",
    "process",
    # migration 5
    "hardware",
    "key_name",
    "queue_wait_s",
    "workflow",
    "node_type",
    "route",
    "escalation_reason",
    "escalation_refused",
    "escalated_to",
    "refused",
)


def current_version(con) -> int:
    exists = con.execute(
        "SELECT count(*) FROM information_schema.tables WHERE table_name = 'schema_migrations'"
    ).fetchone()[0]
    if not exists:
        return 0
    return con.execute("SELECT coalesce(max(version), 0) FROM schema_migrations").fetchone()[0]


def migrate(con) -> list[int]:
    """Apply the migrations this database lacks, each in its own transaction."""
    con.execute(
        "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, "
        "name VARCHAR NOT NULL, applied_at TIMESTAMP NOT NULL DEFAULT current_timestamp)"
    )
    have = current_version(con)
    applied = []
    for version, name, sql in MIGRATIONS:
        if version <= have:
            continue
        con.execute("BEGIN")
        con.execute(sql)
        con.execute("INSERT INTO schema_migrations (version, name) VALUES (?, ?)", [version, name])
        con.execute("COMMIT")
        applied.append(version)
    return applied
