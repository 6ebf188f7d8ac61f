"""Trace store figures.

- sustained throughput: spans recorded through the tracer, flushed by the background thread
  and compacted into traces.duckdb, end to end (goal >= 100,000 spans/s). Ratio: our time per
  span over the raw library's (one DuckDB Arrow batch insert of the same spans).
- cost on the caller: time inside `with tracer.span(...)` per span, with the flush thread
  running as in real use (goal <= 20 us).
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import duckdb  # noqa: E402
from figures import emit

from workbench.core.tracing import SpoolWriter, Tracer, TraceStore  # noqa: E402
from workbench.core.tracing import attributes as A  # noqa: E402
from workbench.core.tracing.spool import encode_spans  # noqa: E402

N = 200_000
ATTRS = {
    A.OPERATION: "chat",
    A.PROVIDER: "llama.cpp",
    A.REQUEST_MODEL: "smollm2",
    A.INPUT_TOKENS: 42,
    A.OUTPUT_TOKENS: 128,
}


def record(tracer: Tracer, count: int) -> None:
    for _ in range(count // 10):
        with tracer.span("workflow.run", "workflow"):
            for _ in range(9):
                with tracer.span("llm.chat", "llm", dict(ATTRS)) as span:
                    span.set(A.FINISH_REASONS, ["stop"])


def ours(root: Path) -> tuple[float, float]:
    (root / "spool").mkdir(parents=True)
    store = TraceStore(root)
    sink = SpoolWriter(root / "spool", store)  # default policy: 0.5 s / 5,000 spans
    tracer = Tracer(sink)
    start = time.perf_counter()
    record(tracer, N)
    recorded = time.perf_counter()
    sink.flush()
    store.compact()
    done = time.perf_counter()
    assert store.stats()["spans"] == N
    sink.close()
    return done - start, recorded - start


def raw(root: Path) -> float:
    """The raw library doing the same work: one Arrow batch of the same spans into DuckDB."""

    class Collect:
        def __init__(self):
            self.spans = []

        def emit(self, span):
            self.spans.append(span)

    sink = Collect()
    record(Tracer(sink), N)
    batch = encode_spans(sink.spans, "raw")  # noqa: F841 - read by DuckDB below
    root.mkdir(parents=True)
    con = duckdb.connect(str(root / "raw.duckdb"))
    start = time.perf_counter()
    con.execute("CREATE TABLE spans AS SELECT * FROM batch")
    con.execute("CHECKPOINT")
    elapsed = time.perf_counter() - start
    con.close()
    return elapsed


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        totals, callers, raws = [], [], []
        for trial in range(3):
            total, caller = ours(Path(tmp) / f"ours{trial}")
            totals.append(total)
            callers.append(caller)
            raws.append(raw(Path(tmp) / f"raw{trial}"))
        total, caller, raw_s = min(totals), min(callers), min(raws)
    rate = N / total
    emit(
        "trace store sustained throughput",
        rate,
        "spans/s",
        ">= 100,000 spans/s",
        rate >= 100_000,
        ratio=total / raw_s,
        note=f"ratio = our end-to-end time / raw DuckDB Arrow insert of the same {N:,} spans "
        f"({N / raw_s:,.0f} spans/s raw); best of 3",
    )
    per_span = caller / N * 1e6
    emit("trace cost on the caller", per_span, "us/span", "<= 20 us/span", per_span <= 20)


if __name__ == "__main__":
    main()
