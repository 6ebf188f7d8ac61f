"""OTLP/JSON export (the encoding an OpenTelemetry collector, Langfuse or Phoenix accepts on
/v1/traces). Per the OTLP/JSON rules ids are hex strings, 64-bit integers are strings and enums
are integers."""

from __future__ import annotations

import json
from typing import Any

from workbench import __version__

__all__ = ["to_otlp_json"]

_SPAN_KIND_INTERNAL, _SPAN_KIND_CLIENT = 1, 3
_STATUS_OK, _STATUS_ERROR = 1, 2
_CLIENT_KINDS = {"llm", "embedding", "http", "cloud"}
_PAYLOAD_KEYS = {"messages": "gen_ai.input.messages", "output": "gen_ai.output.messages"}


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


def _span(row: dict[str, Any]) -> dict[str, Any]:
    attributes = json.loads(row["attributes"]) if row.get("attributes") else {}
    attributes["workbench.span.kind"] = row["kind"]
    if row.get("payload"):
        for key, value in json.loads(row["payload"]).items():
            name = _PAYLOAD_KEYS.get(key, f"workbench.payload.{key}")
            attributes[name] = value if isinstance(value, str) else json.dumps(value)
    status: dict[str, Any] = {"code": _STATUS_ERROR if row["status"] == "error" else _STATUS_OK}
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
        "attributes": [{"key": k, "value": _value(v)} for k, v in attributes.items()],
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
