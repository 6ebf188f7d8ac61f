"""`workbench usage` at a million spans (goal: the whole report in <= 300 ms).

Two workspaces of about 1,000,000 generated spans over 7 days, shaped as the real code writes
them (tests/usage_data.py): a typical mix (workflow runs and eval cases as well as chats, about
five spans per trace) and a chat-heavy one (about two spans per trace: twice the traces, and
counting requests exactly is per trace). Ratio: the report's time over one raw DuckDB aggregate
of the same model calls (count and cost per model), timed in the same run on the same file.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import duckdb  # noqa: E402
from figures import emit  # noqa: E402

from tests.usage_data import DAY_NS, generate, store  # noqa: E402
from workbench.services import Service, init_workspace  # noqa: E402


def measure(mix: str, requests: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "ws"
        init_workspace(root)
        service = Service(root)
        spans, scores = generate(service.tracer, requests, time.time_ns() - 7 * DAY_NS, days=7, mix=mix)
        store(service, spans, scores)
        count, traces = len(spans), requests
        del spans
        timings: dict[str, list[float]] = {}
        figures = 0
        for _ in range(5):
            for by in ("day", "model"):
                started = time.perf_counter()
                figures = len(service.usage.report("8d", by=by).figures)
                timings.setdefault(by, []).append(time.perf_counter() - started)
        con = duckdb.connect(str(root / "traces.duckdb"), read_only=True)
        raw = []
        for _ in range(5):
            started = time.perf_counter()
            con.execute(
                "SELECT model, count(*), sum(cost_usd) FROM spans WHERE name = 'llm.chat' GROUP BY model"
            ).fetchall()
            raw.append(time.perf_counter() - started)
        con.close()
    raw_ms = min(raw) * 1000
    for by, times in timings.items():
        ms = min(times) * 1000
        emit(
            f"usage report, {mix} mix: {count:,} spans in {traces:,} traces (--by {by})",
            ms,
            "ms",
            "<= 300 ms",
            ms <= 300,
            ratio=ms / raw_ms,
            note=f"best of 5 (median {sorted(times)[2] * 1000:.0f} ms); ratio = report / one raw DuckDB "
            f"aggregate of the model calls ({raw_ms:.1f} ms); {figures} figures",
        )


def main() -> None:
    measure("typical", 175_000)
    measure("chat", 330_000)


if __name__ == "__main__":
    main()
