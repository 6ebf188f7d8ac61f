"""Spans and the tracer that hands them to a sink.

The caller's path is kept to a few microseconds: a span is a slotted object, ids come from
``random.getrandbits`` (as the OpenTelemetry SDK does), and the finished span is appended to the
sink's buffer. Encoding and writing happen on the sink's flush thread.
"""

from __future__ import annotations

import contextvars
import random
import time
from typing import Any, Protocol

__all__ = ["Span", "Tracer", "SpanSink", "current_span"]

_current: contextvars.ContextVar[Span | None] = contextvars.ContextVar("workbench_span", default=None)
_getrandbits = random.getrandbits
_time_ns = time.time_ns


class SpanSink(Protocol):
    def emit(self, span: Span) -> None: ...


def current_span() -> Span | None:
    return _current.get()


class Span:
    """One timed operation. Use as a context manager, or call ``end()`` yourself."""

    __slots__ = (
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
        "sampled",
        "_tracer",
        "_token",
    )

    def __init__(
        self,
        tracer: Tracer,
        name: str,
        kind: str,
        attributes: dict[str, Any] | None,
        parent: Span | None,
    ) -> None:
        self.span_id: str = f"{_getrandbits(64):016x}"
        if parent is None:
            self.trace_id = f"{_getrandbits(128):032x}"
            self.parent_id = None
            self.sampled = tracer.sample_rate >= 1.0 or random.random() < tracer.sample_rate
        else:
            self.trace_id = parent.trace_id
            self.parent_id = parent.span_id
            self.sampled = parent.sampled
        self.name = name
        self.kind = kind
        self.attributes = attributes if attributes is not None else {}
        self.payload: dict[str, Any] | None = None
        self.status = "ok"
        self.error: str | None = None
        self.end_ns = 0
        self._tracer = tracer
        self._token: contextvars.Token | None = None
        self.start_ns = _time_ns()

    def set(self, key: str, value: Any) -> Span:
        self.attributes[key] = value
        return self

    def update(self, attributes: dict[str, Any]) -> Span:
        self.attributes.update(attributes)
        return self

    def set_payload(self, **values: Any) -> Span:
        """Messages, outputs and the like: stored for sampled traces only."""
        if self.sampled:
            if self.payload is None:
                self.payload = {}
            self.payload.update(values)
        return self

    def fail(self, error: BaseException | str) -> Span:
        self.status = "error"
        from workbench.core.secrets import scrub

        self.error = scrub(error if isinstance(error, str) else f"{type(error).__name__}: {error}")
        return self

    def cancelled(self) -> Span:
        """The work was stopped before it finished (a user stopped an answer): neither ok nor an
        error; the trace reads "cancelled"."""
        if self.status == "ok":
            self.status = "cancelled"
        return self

    def end(self) -> None:
        if not self.end_ns:
            self.end_ns = _time_ns()
            self._tracer.sink.emit(self)

    def __enter__(self) -> Span:
        self._token = _current.set(self)
        return self

    def __exit__(self, exc_type: Any, exc: BaseException | None, tb: Any) -> None:
        if exc is not None and self.status == "ok":
            self.fail(exc)
        if self._token is not None:
            _current.reset(self._token)
            self._token = None
        self.end()

    @property
    def duration_ms(self) -> float:
        return ((self.end_ns or _time_ns()) - self.start_ns) / 1e6


class _NullSink:
    def emit(self, span: Span) -> None:
        pass


class Tracer:
    """Creates spans; the parent is the current span of this context unless one is given."""

    def __init__(self, sink: SpanSink | None = None, payload_sample_rate: float = 1.0) -> None:
        self.sink: SpanSink = sink if sink is not None else _NullSink()
        self.sample_rate = payload_sample_rate

    def flush(self) -> None:
        """Write every span emitted so far into the store, waiting for the store's lock (a
        sink that keeps nothing, or writes at once, has nothing to do)."""
        flush = getattr(self.sink, "flush", None)
        if flush is not None:
            flush(compact=True, blocking=True)

    def span(
        self,
        name: str,
        kind: str = "internal",
        attributes: dict[str, Any] | None = None,
        parent: Span | None = None,
    ) -> Span:
        return Span(self, name, kind, attributes, parent if parent is not None else _current.get())
