"""Spans into traces.duckdb and back: attributes, payload policy, queries, damaged files."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest

from workbench.core.errors import QueryError
from workbench.core.tracing import SpoolWriter, Tracer, TraceStore
from workbench.core.tracing import attributes as A


def record_chat(tracer, model="smollm2", fail=False):
    with tracer.span("workflow.run", "workflow") as root:
        with tracer.span(
            "llm.chat",
            "llm",
            {
                A.OPERATION: "chat",
                A.PROVIDER: "llama.cpp",
                A.REQUEST_MODEL: model,
                A.INPUT_TOKENS: 12,
                A.OUTPUT_TOKENS: 30,
                A.FINISH_REASONS: ["stop"],
                A.TIME_TO_FIRST_TOKEN: 0.05,
                A.COST_USD: 0.0001,
                A.TEMPLATE_ID: "qa",
                A.TEMPLATE_VERSION: "3",
            },
        ) as llm:
            llm.set_payload(messages=[{"role": "user", "content": "Mail me at jo@example.com"}], output="ok")
        if fail:
            with pytest.raises(RuntimeError), tracer.span("tool.call", "tool"):
                raise RuntimeError("tool broke")
    return root


def test_spans_round_trip(workspace, tracer):
    root = record_chat(tracer)
    tracer.sink.flush()
    store = TraceStore(workspace.root)
    spans = store.get_trace(root.trace_id[:10])
    assert [s["name"] for s in spans] == ["workflow.run", "llm.chat"]
    parent, llm = spans
    assert parent["parent_id"] is None and llm["parent_id"] == parent["span_id"]
    assert llm["start_ns"] <= llm["end_ns"] and llm["status"] == "ok"
    assert (llm["operation"], llm["provider"], llm["model"]) == ("chat", "llama.cpp", "smollm2")
    assert (llm["input_tokens"], llm["output_tokens"], llm["ttft_s"]) == (12, 30, 0.05)
    assert (llm["template_id"], llm["template_version"], llm["cost_usd"]) == ("qa", "3", 0.0001)
    attrs = json.loads(llm["attributes"])
    assert attrs[A.FINISH_REASONS] == ["stop"]
    assert json.loads(llm["payload"])["output"] == "ok"
    rows, total = store.list_traces()
    assert total == 1
    assert rows[0]["spans"] == 2 and rows[0]["models"] == "smollm2" and rows[0]["input_tokens"] == 12
    assert not list(workspace.spool_dir.glob("*.parquet")), "compaction empties the spool"


def test_errors_are_recorded(workspace, tracer):
    root = record_chat(tracer, fail=True)
    tracer.sink.flush()
    spans = TraceStore(workspace.root).get_trace(root.trace_id)
    tool = next(s for s in spans if s["name"] == "tool.call")
    assert tool["status"] == "error" and tool["error"] == "RuntimeError: tool broke"
    rows, _ = TraceStore(workspace.root).list_traces(filters={"status": "error"})
    assert [r["trace_id"] for r in rows] == [root.trace_id]


def test_payload_sampling_keeps_metadata(workspace):
    store = TraceStore(workspace.root)
    sink = SpoolWriter(workspace.spool_dir, store, flush_interval_s=60)
    roots = [record_chat(Tracer(sink, payload_sample_rate=0.0)) for _ in range(5)]
    sink.flush()
    for root in roots:
        llm = store.get_trace(root.trace_id)[1]
        assert llm["payload"] is None
        assert llm["input_tokens"] == 12
    sink.close()


def test_payload_redaction(workspace):
    store = TraceStore(workspace.root)
    sink = SpoolWriter(workspace.spool_dir, store, flush_interval_s=60, redact=True)
    root = record_chat(Tracer(sink))
    sink.flush()
    payload = store.get_trace(root.trace_id)[1]["payload"]
    assert "jo@example.com" not in payload and "[REDACTED:email]" in payload
    sink.close()


def test_filters_and_paging(workspace, tracer):
    for i in range(25):
        record_chat(tracer, model="gemma3-270m" if i % 5 == 0 else "smollm2")
    tracer.sink.flush()
    store = TraceStore(workspace.root)
    page1, total = store.list_traces(limit=10)
    page3, _ = store.list_traces(limit=10, offset=20)
    assert total == 25 and len(page1) == 10 and len(page3) == 5
    assert page1[0]["start_ns"] >= page1[-1]["start_ns"]
    assert not {r["trace_id"] for r in page1} & {r["trace_id"] for r in page3}
    gemma, total = store.list_traces(filters={"model": "gemma"})
    assert total == 5 and all(r["models"] == "gemma3-270m" for r in gemma)
    assert store.list_traces(filters={"name": "nothing-like-this"})[1] == 0


def test_pages_agree_with_the_traces_view(workspace, tracer):
    """list_traces pages by a cheap grouping, then summarises the page: the same rows, in the same
    order, as the `traces` view filtered, for every filter, a trace without its root included."""
    for i in range(40):
        record_chat(tracer, model=("gemma3-270m", "smollm2", "remote/big")[i % 3], fail=i % 7 == 0)
    with tracer.span("tool.call", "tool"):  # a trace of one span
        pass
    tracer.sink.flush()
    store = TraceStore(workspace.root)
    store.compact()
    # a trace whose root span was lost (a killed process): named after its first span
    store.write(
        [
            (
                "DELETE FROM spans WHERE parent_id IS NULL AND trace_id = "
                "(SELECT min(trace_id) FROM spans WHERE model = 'smollm2')",
                [],
            )
        ]
    )
    filters = [
        {},
        {"name": "workflow"},
        {"name": "TOOL"},
        {"model": "gemma"},
        {"model": "big"},
        {"status": "error"},
        {"status": "ok"},
        {"status": "nonsense"},
        {"name": "workflow", "status": "error"},
        {"model": "smollm2", "status": "ok"},
    ]
    every = store.query("SELECT * FROM traces ORDER BY start_ns DESC, trace_id")
    assert any(r["name"] == "llm.chat" for r in every) and any(r["name"] == "tool.call" for r in every)

    def matches(row, f):
        return (
            ("name" not in f or f["name"].lower() in row["name"].lower())
            and ("model" not in f or f["model"].lower() in (row["models"] or "").lower())
            and ("status" not in f or f["status"] == row["status"])
        )

    for f in filters:
        expected = [r for r in every if matches(r, f)]
        for offset in (0, 7):
            rows, total = store.list_traces(limit=9, offset=offset, filters=f)
            assert total == len(expected), f
            assert rows == expected[offset : offset + 9], f
    assert store.list_traces(filters={"status": "error"})[1] == 6


def test_sql_is_read_only_and_sandboxed(workspace, tracer):
    record_chat(tracer)
    tracer.sink.flush()
    store = TraceStore(workspace.root)
    columns, rows = store.sql("SELECT name, count(*) AS n FROM spans GROUP BY name ORDER BY name")
    assert columns == ["name", "n"] and rows == [("llm.chat", 1), ("workflow.run", 1)]
    with pytest.raises(QueryError):
        store.sql("DELETE FROM spans")
    with pytest.raises(QueryError):
        store.sql(f"COPY spans TO '{workspace.root / 'out.csv'}'")
    with pytest.raises(QueryError):
        store.sql("SELECT * FROM read_csv('/etc/passwd')")
    assert not (workspace.root / "out.csv").exists()
    assert store.sql("SELECT count(*) FROM spans")[1] == [(2,)]


def test_unknown_or_bad_trace_id(workspace, tracer):
    store = TraceStore(workspace.root)
    with pytest.raises(QueryError, match="no trace"):
        store.get_trace("abcdef")
    with pytest.raises(QueryError, match="no trace"):  # a whole id, looked up directly
        store.get_trace("0" * 32)
    with pytest.raises(QueryError, match="not a trace id"):
        store.get_trace("'; DROP TABLE spans; --")


def test_damaged_wal_is_quarantined(workspace, tracer):
    first = record_chat(tracer)
    tracer.sink.flush(compact=True, blocking=True)
    # A process that dies with uncheckpointed writes leaves a WAL; then the WAL gets damaged.
    script = (
        "import duckdb, os, sys\n"
        "con = duckdb.connect(sys.argv[1])\n"
        "con.execute(\"SET checkpoint_threshold='1GB'\")\n"
        'con.execute("INSERT INTO spans (trace_id, span_id, name, kind, start_ns, end_ns, status) '
        "SELECT 'ff' || range, 'aa', 'lost', 'internal', 1, 2, 'ok' FROM range(500)\")\n"
        "os._exit(0)\n"
    )
    subprocess.run([sys.executable, "-c", script, str(workspace.traces_path)], check=True)
    wal = workspace.root / "traces.duckdb.wal"
    damaged = bytearray(wal.read_bytes())
    for index in range(100, len(damaged), 97):
        damaged[index] ^= 0xFF
    wal.write_bytes(bytes(damaged))
    store = TraceStore(workspace.root)
    rows, total = store.list_traces()
    assert total == 1 and rows[0]["trace_id"] == first.trace_id
    assert any("write-ahead log was damaged" in w for w in store.warnings)
    assert list((workspace.root / "quarantine").glob("traces.duckdb.wal.*"))
    record_chat(tracer)  # and the store keeps working
    tracer.sink.flush()
    assert TraceStore(workspace.root).list_traces()[1] == 2


def test_unreadable_segment_is_set_aside(workspace, tracer):
    (workspace.spool_dir / "0000-1-bad.parquet").write_bytes(b"not parquet at all")
    root = record_chat(tracer)
    tracer.sink.flush()
    store = TraceStore(workspace.root)
    assert store.get_trace(root.trace_id)
    assert (workspace.root / "quarantine" / "0000-1-bad.parquet").exists()


def test_half_written_segment_is_ignored(workspace, tracer):
    tmp = workspace.spool_dir / ".123-4-000000-abcd.parquet.tmp"
    tmp.write_bytes(b"PAR1 half")
    old = time.time() - 7200
    os.utime(tmp, (old, old))
    record_chat(tracer)
    tracer.sink.flush()
    assert TraceStore(workspace.root).list_traces()[1] == 1
    assert not tmp.exists(), "stale temporary segments are removed"


def test_segment_already_ingested_is_not_ingested_twice(workspace, tracer):
    record_chat(tracer)
    tracer.sink.flush(compact=False)
    segment = next(workspace.spool_dir.glob("*.parquet"))
    copy = segment.read_bytes()
    store = TraceStore(workspace.root)
    assert store.compact() == 2
    segment.write_bytes(copy)  # as if killed after the commit, before the delete
    assert store.compact() == 0
    assert store.stats()["spans"] == 2


def test_a_segment_that_cannot_be_written_keeps_its_spans_for_the_next_flush(workspace, tracer, monkeypatch):
    for index in range(30):
        with tracer.span(f"op{index}", "internal"):
            pass
    sink = tracer.sink
    write = sink._write_segment

    def disk_full(table):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(sink, "_write_segment", disk_full)
    with pytest.raises(OSError):
        sink.flush()
    assert len(sink._buffer) == 30, "the spans of the failed write are still buffered"
    monkeypatch.setattr(sink, "_write_segment", write)
    assert sink.flush(compact=True, blocking=True) == 30
    rows, total = TraceStore(workspace.root).list_traces(limit=50)
    assert total == 30 and sorted(r["name"] for r in rows) == sorted(f"op{i}" for i in range(30))


def test_a_damaged_store_says_how_to_go_on(workspace):
    """A traces.duckdb that is not a DuckDB file: `traces list` said "internal error (this is a
    bug)" (rc 70); now the trace-store error says to move the file aside."""
    from tests.conftest import run_cli

    (workspace.root / "traces.duckdb").write_bytes(b"garbage" * 2000)
    listed = run_cli("traces", "list")
    assert listed.returncode == 4 and "internal error" not in listed.stderr
    assert "not a valid DuckDB database file" in listed.stderr and "move it aside" in listed.stderr
    assert (workspace.root / "traces.duckdb").read_bytes() == b"garbage" * 2000, "nothing was overwritten"


def test_segments_are_built_as_pyarrow_converts_the_rows_without_importing_pandas():
    """encode_rows builds its arrays from buffers: equal to pa.array's conversion of the same
    rows (nulls, empty and non-ASCII text, a column with no null), with pandas never imported."""
    code = (
        "import sys\n"
        "import pyarrow as pa\n"
        "from workbench.core.tracing.spool import encode_rows, segment_schema\n"
        "rows = [\n"
        "    ('t1', 's1', None, 'llm.chat', 'llm', 1, 2, 'ok', None, '{\"a\": \"é😀\"}', None),\n"
        "    ('t1', 's2', 's1', '', 'io', -5, 2**62, 'error', 'boom ü', '{}', 'payload'),\n"
        "    ('t2', 's3', None, 'retrieval', 'retrieval', 0, 0, 'ok', None, None, ''),\n"
        "]\n"
        "table = encode_rows(rows, 'host:1')\n"
        "print('pandas' in sys.modules)\n"
        "table.validate(full=True)\n"
        "columns = [*zip(*rows), ['host:1'] * 3]\n"
        "expected = pa.Table.from_arrays([pa.array(c, type=t) for c, t in zip(columns, segment_schema().types)], schema=segment_schema())\n"
        "print(table.equals(expected), table.column('error').null_count, table.column('name').to_pylist()[1] == '')\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["False", "True", "2", "True"]
