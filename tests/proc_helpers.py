"""Child processes for the multi-process trace tests: python -m tests.proc_helpers MODE ..."""

from __future__ import annotations

import sys
import time
from pathlib import Path

from workbench.cli import _install_signal_handlers
from workbench.tracing import SpoolWriter, Tracer, TraceStore


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
