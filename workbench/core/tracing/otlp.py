"""OTLP export: OTLP/JSON (ids are hex strings, 64-bit integers strings, enums integers) and
the same request as OTLP protobuf, which every backend takes (Phoenix takes only that).

Spans follow the OpenTelemetry GenAI conventions as exported: a chat span's prompt and answer
are `gen_ai.input.messages` / `gen_ai.output.messages` in the conventions' message schema (role,
`parts`, finish reason); a span that is no GenAI operation (loading a model) carries no GenAI
attributes, so no backend counts it as a model call. Other spans' payloads (a workflow's input
and answer, a search's query) are `input.value` / `output.value`, which Phoenix and Langfuse show.
What is stored is unchanged: this is the exporter's view."""

from __future__ import annotations

import json
from typing import Any

from workbench import __version__

__all__ = ["to_otlp_json", "to_otlp_protobuf"]

_SPAN_KIND_INTERNAL, _SPAN_KIND_CLIENT = 1, 3
_STATUS_UNSET, _STATUS_OK, _STATUS_ERROR = 0, 1, 2
_CLIENT_KINDS = {"llm", "embedding", "http", "cloud"}
_INPUT_KEYS = ("input", "query", "messages", "question", "prompt")
_OUTPUT_KEYS = ("answer", "output", "update")


def _value(value: Any) -> dict[str, Any]:
    if isinstance(value, bool):
        return {"boolValue": value}
    if isinstance(value, int):
        return {"intValue": str(value)}
    if isinstance(value, float):
        return {"doubleValue": value}
    if isinstance(value, (list, tuple)):
        return {"arrayValue": {"values": [_value(v) for v in value]}}
    if isinstance(value, str):
        return {"stringValue": value}
    return {"stringValue": json.dumps(value, default=str)}


def _text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, default=str)


def _messages(messages: Any) -> list[dict[str, Any]]:
    """Chat messages in the GenAI conventions' schema: a role and a list of typed parts."""
    if isinstance(messages, str):
        messages = [{"role": "user", "content": messages}]
    return [
        {"role": m.get("role", "user"), "parts": [{"type": "text", "content": _text(m.get("content", ""))}]}
        for m in messages
        if isinstance(m, dict)
    ]


def _payload_attributes(attributes: dict[str, Any], payload: dict[str, Any]) -> None:
    if attributes.get("gen_ai.operation.name") in ("chat", "text_completion"):
        if "messages" in payload:
            attributes["gen_ai.input.messages"] = json.dumps(_messages(payload.pop("messages")))
        if "output" in payload:
            reasons = attributes.get("gen_ai.response.finish_reasons") or ["stop"]
            attributes["gen_ai.output.messages"] = json.dumps(
                [
                    {
                        "role": "assistant",
                        "parts": [{"type": "text", "content": _text(payload.pop("output"))}],
                        "finish_reason": reasons[0],
                    }
                ]
            )
    for keys, name in ((_INPUT_KEYS, "input.value"), (_OUTPUT_KEYS, "output.value")):
        key = next((k for k in keys if k in payload), None)
        if key is not None and name not in attributes:
            attributes[name] = _text(payload[key])
    for key, value in payload.items():
        attributes[f"workbench.payload.{key}"] = _text(value)


def _span(row: dict[str, Any]) -> dict[str, Any]:
    attributes = json.loads(row["attributes"]) if row.get("attributes") else {}
    attributes["workbench.span.kind"] = row["kind"]
    if "gen_ai.operation.name" not in attributes:
        # Not a GenAI operation (loading a model): its model is ours to name, not a call's.
        for key in [k for k in attributes if k.startswith("gen_ai.")]:
            attributes["workbench." + key.removeprefix("gen_ai.")] = attributes.pop(key)
    if row.get("payload"):
        _payload_attributes(attributes, json.loads(row["payload"]))
    # A stopped answer neither succeeded nor failed: OTel's unset, and its own attribute.
    code = {"error": _STATUS_ERROR, "cancelled": _STATUS_UNSET}.get(row["status"], _STATUS_OK)
    status: dict[str, Any] = {"code": code}
    if row["status"] == "cancelled":
        attributes["workbench.status"] = "cancelled"
    if row.get("error"):
        status["message"] = row["error"]
    return {
        "traceId": row["trace_id"],
        "spanId": row["span_id"],
        "parentSpanId": row.get("parent_id") or "",
        "name": row["name"],
        "kind": _SPAN_KIND_CLIENT if row["kind"] in _CLIENT_KINDS else _SPAN_KIND_INTERNAL,
        "startTimeUnixNano": str(row["start_ns"]),
        "endTimeUnixNano": str(row["end_ns"]),
        "attributes": [{"key": k, "value": _value(v)} for k, v in attributes.items() if v is not None],
        "status": status,
    }


def _feedback_events(scores: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [
        {
            "timeUnixNano": str(score["created_ns"]),
            "name": f"workbench.{score['name']}",
            "attributes": [
                {"key": key, "value": _value(value)}
                for key, value in (
                    ("workbench.feedback.value", float(score["value"])),
                    ("workbench.feedback.note", score.get("note")),
                    ("workbench.feedback.author", score["author"]),
                    ("workbench.feedback.source", score["source"]),
                    ("workbench.feedback.subject", score.get("subject")),
                )
                if value is not None
            ],
        }
        for score in scores
    ]


def to_otlp_json(
    rows: list[dict[str, Any]], service_name: str = "workbench", scores: list[dict[str, Any]] | None = None
) -> dict[str, Any]:
    """One ExportTraceServiceRequest holding the given span rows; ``scores`` (user feedback)
    become events of their trace's root span."""
    spans = [_span(row) for row in rows]
    by_trace: dict[str, list[dict[str, Any]]] = {}
    for score in scores or []:
        by_trace.setdefault(score["trace_id"], []).append(score)
    for span, row in zip(spans, rows):
        if not row.get("parent_id") and row["trace_id"] in by_trace:
            span["events"] = _feedback_events(by_trace.pop(row["trace_id"]))
    return {
        "resourceSpans": [
            {
                "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": service_name}}]},
                "scopeSpans": [
                    {
                        "scope": {"name": "workbench", "version": __version__},
                        "spans": spans,
                    }
                ],
            }
        ]
    }


def to_otlp_protobuf(document: dict[str, Any]) -> bytes:
    """The OTLP/JSON ``document`` as an OTLP protobuf ExportTraceServiceRequest."""
    import base64

    from google.protobuf.json_format import ParseDict
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

    # OTLP/JSON writes ids in hex; protobuf's JSON mapping reads bytes as base64.
    def ids(span: dict[str, Any]) -> dict[str, Any]:
        span = dict(span)
        for key in ("traceId", "spanId", "parentSpanId"):
            if span.get(key):
                span[key] = base64.b64encode(bytes.fromhex(span[key])).decode()
            else:
                span.pop(key, None)
        return span

    converted = {
        "resourceSpans": [
            {
                **resource,
                "scopeSpans": [
                    {**scope, "spans": [ids(span) for span in scope["spans"]]}
                    for scope in resource["scopeSpans"]
                ],
            }
            for resource in document["resourceSpans"]
        ]
    }
    return ParseDict(converted, ExportTraceServiceRequest()).SerializeToString()
