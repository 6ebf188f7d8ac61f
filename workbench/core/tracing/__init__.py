"""The trace store: every operation is a span; spans are spooled per process and compacted
into <workspace>/traces.duckdb. See spool.py for why."""

from __future__ import annotations

import threading
from pathlib import Path

from workbench.core.tracing import attributes
from workbench.core.tracing.span import Span, SpanSink, Tracer, current_span
from workbench.core.tracing.spool import SpoolWriter
from workbench.core.tracing.store import TraceStore

__all__ = [
    "Span",
    "SpanSink",
    "SpoolWriter",
    "TraceStore",
    "Tracer",
    "attributes",
    "current_span",
    "open_store",
    "open_tracer",
]

_STORES: dict[Path, TraceStore] = {}
_STORES_LOCK = threading.Lock()


def open_store(root: Path) -> TraceStore:
    """The one TraceStore of this process for the workspace at ``root``: whatever it sets aside
    (its warnings) is seen by every part of the process that reads or compacts."""
    key = Path(root).resolve()
    with _STORES_LOCK:
        store = _STORES.get(key)
        if store is None:
            store = _STORES[key] = TraceStore(key)
        return store


def open_tracer(workspace, store: TraceStore | None = None) -> Tracer:
    """A tracer that writes into ``workspace``'s trace store with its configured policy."""
    config = workspace.config.tracing
    store = store or open_store(workspace.root)
    sink = SpoolWriter(
        workspace.spool_dir,
        store,
        flush_interval_s=config.flush_interval_s,
        flush_max_spans=config.flush_max_spans,
        redact=config.redact_payloads,
    )
    return Tracer(sink, payload_sample_rate=config.payload_sample_rate)
