"""Blocking work (llama.cpp, cloud clients, workflows) on a thread, its events on the event loop.

A streamed answer does not start until its first event: a request that fails before its first
token (an unknown model, a prompt over the context) gets its HTTP error status, not a 200
followed by an error event. A client that leaves sets ``cancel``, which stops the decode.
"""

from __future__ import annotations

import asyncio
import contextvars
import json
import threading
from collections.abc import Callable
from typing import Any

from starlette.requests import Request

__all__ = ["Bridge", "sse"]

_DISCONNECT_POLL_S = 0.5


class Bridge:
    """Runs ``work(emit)`` on a thread (in a copy of this context, so its spans nest where the
    caller's would); what it emits, then ("done", result) or ("error", exception), arrive in
    order through ``next()``."""

    def __init__(self, work: Callable[[Callable[[Any], None]], Any], cancel: threading.Event) -> None:
        self.cancel = cancel
        self._loop = asyncio.get_running_loop()
        self._queue: asyncio.Queue[tuple[str, Any]] = asyncio.Queue()

        def emit(event: Any) -> None:
            self._loop.call_soon_threadsafe(self._queue.put_nowait, ("event", event))

        def run() -> None:
            try:
                outcome: tuple[str, Any] = ("done", work(emit))
            except Exception as exc:  # noqa: BLE001 - handed to the reader, which answers it
                outcome = ("error", exc)
            self._loop.call_soon_threadsafe(self._queue.put_nowait, outcome)

        threading.Thread(target=contextvars.copy_context().run, args=(run,), daemon=True).start()

    async def next(self) -> tuple[str, Any]:
        return await self._queue.get()

    async def first(self, request: Request) -> tuple[str, Any] | None:
        """The first event or outcome; None (and the work cancelled) if the client left first."""
        while True:
            try:
                return await asyncio.wait_for(self._queue.get(), _DISCONNECT_POLL_S)
            except TimeoutError:
                if await request.is_disconnected():
                    self.cancel.set()
                    return None

    async def items(self, first: tuple[str, Any]):
        """``first`` and what follows it, up to and including the outcome."""
        item = first
        while True:
            yield item
            if item[0] != "event":
                return
            item = await self.next()

    async def begin(self, request: Request, stream: bool) -> tuple[str, Any] | None:
        """What a route answers from: the first event of a stream, or the outcome of a whole
        answer; None if the client left first."""
        return await (self.first(request) if stream else self.outcome(request))

    async def outcome(self, request: Request) -> tuple[str, Any] | None:
        """The final ("done" | "error", value), skipping events; None if the client left."""
        while True:
            item = await self.first(request)
            if item is None or item[0] != "event":
                return item


def sse(data: dict[str, Any], event: str | None = None) -> str:
    head = f"event: {event}\n" if event else ""
    return f"{head}data: {json.dumps(data, ensure_ascii=False)}\n\n"
