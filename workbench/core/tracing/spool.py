"""Per-process spool: spans are buffered in memory and written in batches as Parquet segments.

DuckDB lets only one process hold traces.duckdb read-write, and then no other may open it. So no
process writes the database on its request path: each process drops immutable segment files
into ``<workspace>/spool`` (written to a temporary name, then renamed, so a SIGKILL leaves
either a whole segment or none), and whoever gets the store lock compacts them into
traces.duckdb. Row-by-row INSERT ran at ~800 spans/s here; batches run at ~10^5-10^6.
"""

from __future__ import annotations

import atexit

# pyarrow imports pandas, when it is installed, the first time it converts Python values, and
# pandas imports concurrent.futures.thread, which registers an exit hook: at interpreter exit
# (our last flush) that registration raises, and the segment was lost. Imported here, the
# registration happens at start-up, where it is allowed (tests/test_multiprocess.py).
import concurrent.futures.thread  # noqa: F401
import itertools
import os
import threading
import time
import uuid
from collections import deque
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson

from workbench.core import secrets

if TYPE_CHECKING:
    import pyarrow as pa

    from workbench.core.tracing.span import Span
    from workbench.core.tracing.store import TraceStore

__all__ = ["SpoolWriter", "SEGMENT_COLUMNS", "segment_schema", "encode_spans"]

# Segments hold what the caller gave; the promoted GenAI columns are extracted by DuckDB at
# compaction (vectorised C++), which measured cheaper than doing it per span in Python.
SEGMENT_COLUMNS = (
    "trace_id",
    "span_id",
    "parent_id",
    "name",
    "kind",
    "start_ns",
    "end_ns",
    "status",
    "error",
    "attributes",
    "payload",
    "process",
)


def segment_schema() -> pa.Schema:
    # pyarrow is imported when a process first records a span (SpoolWriter._start), not on
    # import: a command that records none (doctor, collections list) starts 0.1 s sooner.
    import pyarrow as pa

    return pa.schema(
        [(name, pa.int64() if name in ("start_ns", "end_ns") else pa.string()) for name in SEGMENT_COLUMNS]
    )


_OPTIONS = orjson.OPT_NON_STR_KEYS | orjson.OPT_SERIALIZE_NUMPY


def _json_default(value: object) -> str:
    return repr(value)


def _dumps(value: Any, dumps=orjson.dumps) -> str | None:
    if value is None:
        return None
    return dumps(value, default=_json_default, option=_OPTIONS).decode()


def span_row(span: Span, redact: bool = False) -> tuple:
    """A finished span as a flat tuple of strings and ints.

    Done on the caller's thread when the span ends: a tuple of atomic values is untracked by
    Python's garbage collector, so a buffer of 10^5 spans costs the collector nothing, where
    buffered Span objects and their dicts made each full collection walk them all (~25% of
    the sustained throughput measured here).
    """
    payload = span.payload
    if payload is not None and redact:
        from workbench.core.redaction import redact_value

        payload = redact_value(payload)
    attributes, payload_json = _dumps(span.attributes), _dumps(payload)
    if secrets.any_known():
        # A known key never reaches the store, whatever redact_payloads says. Scrubbed in the
        # JSON text, once per column: rebuilding each span's dicts cost more at every span's end.
        attributes = secrets.scrub(attributes) if attributes else attributes
        payload_json = secrets.scrub(payload_json) if payload_json else payload_json
    return (
        span.trace_id,
        span.span_id,
        span.parent_id,
        span.name,
        span.kind,
        span.start_ns,
        span.end_ns,
        span.status,
        span.error,
        attributes,
        payload_json,
    )


def encode_rows(rows: list[tuple], process: str) -> pa.Table:
    """Buffered span rows as one Arrow table in the segment schema.

    The arrays are made from buffers, not with ``pa.array``: pyarrow's first conversion of
    Python values asks its pandas shim, which imports pandas (0.16-0.23 s of a cold `workbench
    search` here, all of it at the exit flush of its one span). Measured on 10^5 rows: 1.45 us
    a row, against pa.array's 1.2 (bench/bench_traces.py measures the whole path)."""
    import pyarrow as pa

    schema = segment_schema()
    columns = [*zip(*rows), [process] * len(rows)]
    arrays = [
        _int64s(column) if t == pa.int64() else _strings(column) for column, t in zip(columns, schema.types)
    ]
    return pa.Table.from_arrays(arrays, schema=schema)


def _int64s(column: Sequence[Any]) -> pa.Array:
    import numpy as np
    import pyarrow as pa

    values = np.fromiter(column, dtype=np.int64, count=len(column))
    return pa.Array.from_buffers(pa.int64(), len(values), [None, pa.py_buffer(values)])


def _strings(column: Sequence[Any]) -> pa.Array | pa.ChunkedArray:
    """A string array (None: null) from its validity bitmap, offsets and UTF-8 bytes."""
    import numpy as np
    import pyarrow as pa

    texts = [text or "" for text in column]
    joined = "".join(texts)
    data = joined.encode()
    if len(data) > 2**31 - 1:  # past 32-bit offsets: pa.array splits it into a ChunkedArray
        return pa.array(column, type=pa.string())
    # One byte a character when the whole column is ASCII, the usual case; else each its own.
    sizes = map(len, texts) if len(data) == len(joined) else map(len, map(str.encode, texts))
    offsets = np.zeros(len(texts) + 1, dtype=np.int32)
    np.cumsum(np.fromiter(sizes, dtype=np.int32, count=len(texts)), out=offsets[1:])
    validity = None
    if None in column:
        present = np.fromiter((text is not None for text in column), dtype=bool, count=len(column))
        validity = pa.py_buffer(np.packbits(present, bitorder="little"))
    return pa.Array.from_buffers(
        pa.string(), len(texts), [validity, pa.py_buffer(offsets), pa.py_buffer(data)]
    )


def encode_spans(spans: list[Span], process: str, redact: bool = False) -> pa.Table:
    return encode_rows([span_row(span, redact) for span in spans], process)


class SpoolWriter:
    """The span sink of one process: buffer, background flush, compaction when it can."""

    def __init__(
        self,
        spool_dir: Path,
        store: TraceStore | None = None,
        flush_interval_s: float = 0.5,
        flush_max_spans: int = 5000,
        redact: bool = False,
        compact_interval_s: float = 2.0,
    ) -> None:
        self.spool_dir = spool_dir
        self.store = store
        self.flush_interval_s = flush_interval_s
        self.flush_max_spans = flush_max_spans
        self.redact = redact
        self.compact_interval_s = compact_interval_s
        self.process = f"{os.uname().nodename}:{os.getpid()}"
        self.errors: list[str] = []
        self._buffer: deque[tuple] = deque()
        self._wake = threading.Event()
        self._flush_lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._closed = False
        self._seq = itertools.count()
        self._last_compact = 0.0
        atexit.register(self.close)

    def emit(self, span: Span) -> None:
        self._buffer.append(span_row(span, self.redact))
        if self._thread is None:
            self._start()
        if len(self._buffer) >= self.flush_max_spans:
            self._wake.set()

    def emit_rows(self, rows: list[tuple]) -> None:
        """Spans ended in another process, already turned into rows there (span_row): a Ray
        worker's, which its driver writes."""
        if not rows:
            return
        self._buffer.extend(rows)
        if self._thread is None:
            self._start()
        if len(self._buffer) >= self.flush_max_spans:
            self._wake.set()

    def _start(self) -> None:
        # Imported here, on the first span, rather than by the flush at exit, where importing
        # (pyarrow's first conversion imports pandas) is fragile.
        import pyarrow.parquet  # noqa: F401

        with self._flush_lock:
            if self._thread is None and not self._closed:
                self._thread = threading.Thread(target=self._run, name="trace-flush", daemon=True)
                self._thread.start()

    def _run(self) -> None:
        while not self._closed:
            self._wake.wait(self.flush_interval_s)
            self._wake.clear()
            try:
                self.flush(compact=True)
            except Exception as exc:  # noqa: BLE001 - a flush thread must never die
                self.errors.append(f"{type(exc).__name__}: {exc}")

    def flush(self, compact: bool = False, blocking: bool = False) -> int:
        """Write buffered spans as a segment; returns how many were written."""
        with self._flush_lock:
            written = 0
            buffer = self._buffer
            while buffer:
                batch = [buffer.popleft() for _ in range(min(len(buffer), 100_000))]
                try:
                    self._write_segment(encode_rows(batch, self.process))
                except BaseException:
                    buffer.extendleft(reversed(batch))  # kept for the next flush, in order
                    raise
                written += len(batch)
        if compact and self.store is not None:
            now = time.monotonic()
            if blocking or now - self._last_compact >= self.compact_interval_s:
                self._last_compact = now
                self.store.compact(blocking=blocking)
        return written

    def _write_segment(self, table: pa.Table) -> Path:
        stem = f"{time.time_ns():020d}-{os.getpid()}-{next(self._seq):06d}-{uuid.uuid4().hex[:8]}"
        final = self.spool_dir / f"{stem}.parquet"
        tmp = self.spool_dir / f".{stem}.parquet.tmp"
        import pyarrow.parquet as pq

        pq.write_table(table, tmp, compression="none")  # segments are short-lived
        secrets.private(tmp)  # spans hold prompts and answers: the owner's only
        os.replace(tmp, final)
        return final

    def close(self) -> None:
        """Flush what is left; called at exit (and so on SIGTERM/SIGINT, see install_signal_handlers)."""
        if self._closed:
            return
        self._closed = True
        self._wake.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=5)
        try:
            self.flush()
            if self.store is not None:
                self.store.compact(blocking=False)
        except Exception as exc:  # noqa: BLE001 - at exit there is nobody to raise to
            self.errors.append(f"{type(exc).__name__}: {exc}")
