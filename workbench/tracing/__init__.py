"""The trace store: every operation is a span; spans are spooled per process and compacted
into <workspace>/traces.duckdb. See spool.py for why."""

from __future__ import annotations

from workbench.tracing import attributes
from workbench.tracing.span import Span, SpanSink, Tracer, current_span
from workbench.tracing.spool import SpoolWriter
from workbench.tracing.store import TraceStore

__all__ = [
    "Span",
    "SpanSink",
    "SpoolWriter",
    "TraceStore",
    "Tracer",
    "attributes",
    "current_span",
    "open_tracer",
]


def open_tracer(workspace) -> Tracer:
    """A tracer that writes into ``workspace``'s trace store with its configured policy."""
    config = workspace.config.tracing
    store = TraceStore(workspace.root)
    sink = SpoolWriter(
        workspace.spool_dir,
        store,
        flush_interval_s=config.flush_interval_s,
        flush_max_spans=config.flush_max_spans,
        redact=config.redact_payloads,
    )
    return Tracer(sink, payload_sample_rate=config.payload_sample_rate)
