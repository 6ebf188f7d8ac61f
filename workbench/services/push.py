"""Push traces to an OTLP/HTTP backend (Phoenix, Langfuse, an OpenTelemetry collector, Tempo):
protobuf by default, which every backend takes; JSON on request."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from workbench.core.errors import PushError, UsageError

__all__ = ["PushResult", "traces_url", "parse_headers", "push"]

PROTOCOLS = {"http/protobuf": "application/x-protobuf", "http/json": "application/json"}


@dataclass
class PushResult:
    url: str
    traces: int
    spans: int
    status: int
    body: str


def traces_url(endpoint: str) -> str:
    """The OTLP traces URL for what the user gave: a base ("http://host:6006", or with a path
    prefix such as Langfuse's "/api/public/otel") gets "/v1/traces"; a URL already ending in
    it is kept as it is."""
    parts = urlsplit(endpoint.strip())
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise UsageError(
            f"'{endpoint}' is not an http(s) URL", "give the backend's address, e.g. http://127.0.0.1:6006"
        )
    path = parts.path.rstrip("/")
    if not path.endswith("/v1/traces"):
        path += "/v1/traces"
    return urlunsplit((parts.scheme, parts.netloc, path, parts.query, ""))


def parse_headers(pairs: list[str]) -> dict[str, str]:
    headers = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name.strip():
            raise UsageError(
                f"'{pair}' is not a header", "write it as NAME=VALUE, e.g. authorization='Basic ...'"
            )
        headers[name.strip()] = value
    return headers


def push(
    document: dict[str, Any],
    endpoint: str,
    protocol: str = "http/protobuf",
    headers: dict[str, str] | None = None,
    timeout_s: float = 30.0,
) -> PushResult:
    """POST one ExportTraceServiceRequest; a PushError with the backend's status and body when
    it does not answer 2xx."""
    import json

    import httpx

    from workbench.core.tracing.otlp import to_otlp_protobuf

    if protocol not in PROTOCOLS:
        raise UsageError(f"unknown protocol '{protocol}'", f"use {' or '.join(PROTOCOLS)}")
    url = traces_url(endpoint)
    spans = [span for rs in document["resourceSpans"] for ss in rs["scopeSpans"] for span in ss["spans"]]
    body = to_otlp_protobuf(document) if protocol == "http/protobuf" else json.dumps(document).encode()
    try:
        response = httpx.post(
            url,
            content=body,
            headers={"content-type": PROTOCOLS[protocol], **(headers or {})},
            timeout=timeout_s,
        )
    except httpx.HTTPError as exc:
        raise PushError(
            f"could not reach {url}: {exc}", "check that the backend runs and the address is right"
        ) from None
    text = response.text[:2000]
    if not response.is_success:
        hint = (
            "this backend takes protobuf: drop --protocol http/json"
            if response.status_code == 415 and protocol == "http/json"
            else "check the address, the path and the authorization header"
        )
        raise PushError(f"{url} answered {response.status_code}: {text or '(no body)'}", hint)
    return PushResult(url, len({s["traceId"] for s in spans}), len(spans), response.status_code, text)
