"""OTLP JSON export, parsed back with the opentelemetry-proto package."""

from __future__ import annotations

import base64
import copy
import json

from google.protobuf import json_format
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.trace.v1.trace_pb2 import Span, Status

from tests.conftest import run_cli
from workbench.core.tracing import attributes as A
from workbench.services import Service


def parse_otlp(document: dict) -> ExportTraceServiceRequest:
    """OTLP/JSON writes ids as hex where protobuf's JSON mapping expects base64; convert, parse."""
    doc = copy.deepcopy(document)
    for resource in doc["resourceSpans"]:
        for scope in resource["scopeSpans"]:
            for span in scope["spans"]:
                for key in ("traceId", "spanId", "parentSpanId"):
                    span[key] = base64.b64encode(bytes.fromhex(span[key])).decode()
    return json_format.ParseDict(doc, ExportTraceServiceRequest())


def test_export_parses_as_an_otlp_request(workspace):
    service = Service(workspace.root)
    with service.tracer.span("rag.answer", "workflow") as root:
        with service.tracer.span(
            "llm.chat",
            "llm",
            {
                A.OPERATION: "chat",
                A.REQUEST_MODEL: "smollm2",
                A.INPUT_TOKENS: 7,
                A.TIME_TO_FIRST_TOKEN: 0.25,
                A.FINISH_REASONS: ["stop"],
            },
        ) as llm:
            llm.set_payload(messages=[{"role": "user", "content": "hi"}], output="hello")
        try:
            with service.tracer.span("grade", "llm"):
                raise ValueError("no verdict")
        except ValueError:
            pass
    service.flush_traces()
    document = service.export_otlp([root.trace_id])
    request = parse_otlp(document)
    spans = {s.name: s for s in request.resource_spans[0].scope_spans[0].spans}
    assert set(spans) == {"rag.answer", "llm.chat", "grade"}
    assert spans["rag.answer"].trace_id.hex() == root.trace_id
    assert spans["llm.chat"].parent_span_id == spans["rag.answer"].span_id
    assert spans["llm.chat"].kind == Span.SPAN_KIND_CLIENT
    attrs = {a.key: a.value for a in spans["llm.chat"].attributes}
    assert attrs[A.REQUEST_MODEL].string_value == "smollm2"
    assert attrs[A.INPUT_TOKENS].int_value == 7
    assert attrs[A.TIME_TO_FIRST_TOKEN].double_value == 0.25
    assert [v.string_value for v in attrs[A.FINISH_REASONS].array_value.values] == ["stop"]
    # The GenAI conventions' message schema: a role and typed parts, the finish reason on output.
    assert json.loads(attrs["gen_ai.input.messages"].string_value) == [
        {"role": "user", "parts": [{"type": "text", "content": "hi"}]}
    ]
    assert json.loads(attrs["gen_ai.output.messages"].string_value) == [
        {"role": "assistant", "parts": [{"type": "text", "content": "hello"}], "finish_reason": "stop"}
    ]
    assert spans["grade"].status.code == Status.STATUS_CODE_ERROR
    assert spans["grade"].status.message == "ValueError: no verdict"
    assert spans["llm.chat"].end_time_unix_nano >= spans["llm.chat"].start_time_unix_nano > 0
    resource = request.resource_spans[0].resource.attributes[0]
    assert (resource.key, resource.value.string_value) == ("service.name", "workbench")


def test_cli_export_to_file(workspace, tmp_path):
    service = Service(workspace.root)
    with service.tracer.span("one", "internal"):
        pass
    service.flush_traces()
    out = tmp_path / "traces.json"
    run_cli("traces", "export", "--format", "otlp-json", "--out", str(out), check=True)
    request = parse_otlp(json.loads(out.read_text()))
    assert [s.name for s in request.resource_spans[0].scope_spans[0].spans] == ["one"]


def test_only_genai_operations_carry_genai_attributes(workspace):
    from workbench.core.tracing.otlp import to_otlp_protobuf

    service = Service(workspace.root)
    with service.tracer.span("eval.case", "eval") as case:
        case.set_payload(input="2+2?", output="4")
        with service.tracer.span(
            "model.load", "model", {A.REQUEST_MODEL: "smollm2", A.PROVIDER: "llama.cpp"}
        ):
            pass
    service.flush_traces()
    document = service.export_otlp([case.trace_id])
    request = parse_otlp(document)
    assert to_otlp_protobuf(document) == request.SerializeToString(), "protobuf of the same request"
    spans = {
        s.name: {a.key: a.value for a in s.attributes} for s in request.resource_spans[0].scope_spans[0].spans
    }
    assert not [k for k in spans["model.load"] if k.startswith("gen_ai.")], "a model load is no model call"
    assert spans["model.load"]["workbench.request.model"].string_value == "smollm2"
    assert "gen_ai.output.messages" not in spans["eval.case"], "an eval case is no chat"
    assert spans["eval.case"]["input.value"].string_value == "2+2?"
    assert spans["eval.case"]["output.value"].string_value == "4"


def test_push_addresses():
    import pytest

    from workbench.core.errors import UsageError
    from workbench.services.push import parse_headers, traces_url

    assert traces_url("http://127.0.0.1:6006") == "http://127.0.0.1:6006/v1/traces"
    assert traces_url("http://127.0.0.1:6006/") == "http://127.0.0.1:6006/v1/traces"
    assert traces_url("http://127.0.0.1:4318/v1/traces") == "http://127.0.0.1:4318/v1/traces"
    assert (
        traces_url("https://cloud.langfuse.com/api/public/otel")
        == "https://cloud.langfuse.com/api/public/otel/v1/traces"
    )
    with pytest.raises(UsageError):
        traces_url("127.0.0.1:6006")
    assert parse_headers(["authorization=Basic a=b"]) == {"authorization": "Basic a=b"}
    with pytest.raises(UsageError):
        parse_headers(["no-value"])
