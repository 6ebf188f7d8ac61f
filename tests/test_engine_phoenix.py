"""Traces reach a real Arize Phoenix (20.26.1, its own virtualenv, on loopback): a workflow run
pushed with `workbench traces push` arrives whole. Phoenix's REST API gives back the same spans,
the same tree, the same token totals, and the prompts and answers as text; a model load is not
counted as a model call. Phoenix takes protobuf only: JSON gets its 415, shown to the user."""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path

import httpx
import pytest

from tests.conftest import run_cli
from tests.engines import Engine, engine_venv, listening_addresses
from tests.test_server import free_port

PHOENIX = "arize-phoenix==20.26.1"
HERE = Path(__file__).resolve().parent


@pytest.fixture(scope="module")
def phoenix():
    python = engine_venv("phoenix", [PHOENIX])
    port, grpc_port = free_port(), free_port()
    with tempfile.TemporaryDirectory() as home:
        engine = Engine(
            [str(python), str(HERE / "engines" / "phoenix_loopback.py")],
            {
                "PHOENIX_WORKING_DIR": home,
                "PHOENIX_HOST": "127.0.0.1",
                "PHOENIX_PORT": str(port),
                "PHOENIX_GRPC_PORT": str(grpc_port),
                "PHOENIX_TELEMETRY_ENABLED": "false",
            },
            f"http://127.0.0.1:{port}/healthz",
            Path(home) / "phoenix.log",
        )
        try:
            yield f"http://127.0.0.1:{port}", grpc_port, engine
        finally:
            engine.stop()


def test_a_workflow_run_arrives_whole_in_phoenix(model_workspace, phoenix, tmp_path):
    from workbench.services import Service

    url, grpc_port, engine = phoenix
    listening = listening_addresses(engine.process.pid)
    assert {port for _, port in listening} >= {grpc_port}, listening
    assert all(address in ("127.0.0.1", "::ffff:127.0.0.1") for address, _ in listening), (
        f"every port on loopback, gRPC OTLP included: {listening}"
    )

    corpus = tmp_path / "notes"
    corpus.mkdir()
    (corpus / "tea.md").write_text("# Tea\n\nGreen tea is steeped at 80 degrees Celsius for two minutes.\n")
    run_cli("ingest", str(corpus), "-c", "demo", check=True, timeout=300)
    run_cli("workflows", "new", "rag", "--from", "rag", check=True)
    run_cli("run", "rag", "--input", "How hot should the water be for green tea?", check=True, timeout=300)

    refused = run_cli("traces", "push", "--endpoint", url, "--workflow", "rag", "--protocol", "http/json")
    assert (
        refused.returncode == 1 and "answered 415" in refused.stderr and "drop --protocol" in refused.stderr
    )
    pushed = run_cli("traces", "push", "--endpoint", url + "/", "--workflow", "rag", check=True)

    service = Service(model_workspace.root)
    trace_id = service.store.trace_ids(workflow="rag")[0]
    ours = service.get_trace(trace_id)
    assert f"sent {len(ours)} spans of 1 traces to {url}/v1/traces (200)" in pushed.stdout

    theirs = phoenix_spans(url, trace_id, len(ours))
    assert len(theirs) == len(ours)
    assert {(s["context"]["span_id"], s["parent_id"]) for s in theirs} == {
        (s["span_id"], s["parent_id"]) for s in ours
    }, "the same tree"
    by_id = {s["context"]["span_id"]: s for s in theirs}
    llm_calls = [s for s in ours if s["name"] == "llm.chat"]
    assert llm_calls, "the rag workflow calls the model"
    assert sum(by_id[s["span_id"]]["attributes"]["llm.token_count.prompt"] for s in llm_calls) == sum(
        s["input_tokens"] for s in llm_calls
    )
    assert sum(by_id[s["span_id"]]["attributes"]["llm.token_count.completion"] for s in llm_calls) == sum(
        s["output_tokens"] for s in llm_calls
    )
    for span in llm_calls:
        attributes = by_id[span["span_id"]]["attributes"]
        payload = json.loads(span["payload"])
        assert by_id[span["span_id"]]["span_kind"] == "LLM" and attributes["llm.model_name"] == "smollm2"
        assert [
            attributes[f"llm.input_messages.{i}.message.content"] for i in range(len(payload["messages"]))
        ] == [m["content"] for m in payload["messages"]], "the prompt, as text"
        assert attributes["llm.output_messages.0.message.content"] == payload["output"], "the answer"
    for span in ours:
        if span["name"] == "model.load":
            assert by_id[span["span_id"]]["span_kind"] != "LLM", "loading a model is no model call"
    print(  # the figures the closing note quotes (pytest -rP shows them)
        f"phoenix: {len(theirs)} spans back of {len(ours)} sent; llm calls {len(llm_calls)}; "
        f"prompt tokens {sum(s['input_tokens'] for s in llm_calls)}, "
        f"completion tokens {sum(s['output_tokens'] for s in llm_calls)}"
    )
    root = next(s for s in ours if s["parent_id"] is None)
    shown = by_id[root["span_id"]]["attributes"]
    assert shown["input.value"] == "How hot should the water be for green tea?"
    assert shown["output.value"] == json.loads(root["payload"])["answer"]


def phoenix_spans(url: str, trace_id: str, expected: int, timeout_s: float = 60) -> list[dict]:
    """The trace's spans as Phoenix's API returns them, once it has stored them all: it answers
    the push at once and inserts in the background (a fresh-clone run read 0 of 11 at once)."""
    deadline = time.monotonic() + timeout_s
    while True:
        spans = httpx.get(f"{url}/v1/projects/default/spans", params={"limit": 1000}, timeout=30).json()
        theirs = [s for s in spans["data"] if s["context"]["trace_id"] == trace_id]
        if len(theirs) >= expected or time.monotonic() > deadline:
            return theirs
        time.sleep(0.5)
