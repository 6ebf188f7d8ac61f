"""Child processes for the multi-process trace tests: python -m tests.proc_helpers MODE ..."""

from __future__ import annotations

import sys
import time
from pathlib import Path

from workbench.cli import _install_signal_handlers
from workbench.core.tracing import SpoolWriter, Tracer, TraceStore


def writer(root: Path, flush_interval: float) -> tuple[Tracer, SpoolWriter]:
    store = TraceStore(root)
    sink = SpoolWriter(root / "spool", store, flush_interval_s=flush_interval, flush_max_spans=2000)
    return Tracer(sink), sink


def emit(tracer: Tracer, count: int, tag: str) -> None:
    for _ in range(count // 10):
        with tracer.span(f"proc.{tag}", "workflow"):
            for _ in range(9):
                with tracer.span("llm.chat", "llm", {"gen_ai.request.model": tag}):
                    pass


def app_browses(root: Path) -> None:
    """The real app (headless) going round Traces, Evals and Documents, refreshing, while other
    processes write; prints how often it went round, the largest trace total it saw, and every
    error notification (a lock error would surface as one)."""
    import asyncio

    from tui.app import WorkbenchApp
    from tui.screens.traces import TracesScreen
    from workbench.services import Service

    app = WorkbenchApp(Service(root))
    errors: list[str] = []
    notify = app.notify

    def record(message, *, title="", severity="information", **kwargs):
        if severity == "error":
            errors.append(f"{title}: {message}")
        return notify(message, title=title, severity=severity, **kwargs)

    app.notify = record

    async def browse() -> None:
        rounds, most = 0, 0
        async with app.run_test(size=(160, 50)) as pilot:
            while not (root / "stop-app").exists():
                for key in ("7", "r", "6", "2"):
                    await pilot.press(key)
                    await pilot.pause(0.2)
                    await app.workers.wait_for_complete()
                    if isinstance(app.screen, TracesScreen):
                        most = max(most, app.screen.trace_total)
                rounds += 1
        print(f"rounds={rounds} traces={most} errors={errors}", flush=True)

    asyncio.run(browse())


def main() -> None:
    mode, root = sys.argv[1], Path(sys.argv[2])
    if mode == "write":  # write N spans and exit normally: atexit flushes the rest
        count, tag = int(sys.argv[3]), sys.argv[4]
        tracer, _ = writer(root, 0.05)
        emit(tracer, count, tag)
        print("done", flush=True)
    elif mode == "read":  # keep reading until told to stop
        store, reads = TraceStore(root), 0
        stop = root / "stop-reader"
        while not stop.exists():
            store.list_traces(limit=20)
            store.stats()
            reads += 1
        print(f"reads={reads}", flush=True)
    elif mode == "app":  # the app, headless, browsing until told to stop
        app_browses(root)
    elif mode == "flush-forever":  # report each flushed total until killed
        tracer, sink = writer(root, 3600)
        total = 0
        while True:
            emit(tracer, 100, "killed")
            total += sink.flush(compact=True)
            print(f"flushed={total}", flush=True)
    elif mode == "term":  # emit, then wait for SIGTERM with everything still buffered
        _install_signal_handlers()
        tracer, _ = writer(root, 3600)
        emit(tracer, int(sys.argv[3]), "term")
        print("emitted", flush=True)
        try:
            time.sleep(600)
        except KeyboardInterrupt:
            sys.exit(130)  # as the CLI does on ctrl+c


if __name__ == "__main__":
    main()
