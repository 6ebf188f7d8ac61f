"""The Traces screen at 100,000 traces (500,000 spans).

- one page of 100 traces with its total, p50 over pages from the first to the last: ours
  (`TraceStore.list_traces`) over raw DuckDB running `SELECT * FROM traces` with LIMIT/OFFSET and
  a count on a fresh connection, the straightforward query over the same view (goal: ratio <= 1).
- the longest blocked frame of the app (event loop sampled every 10 ms) while a user pages
  through them: next, last, previous, first, and a name filter (goal <= 100 ms).
- the longest blocked frame while the Evals screen shows a run of 1,000 cases x 2 subjects
  (2,000 result rows; run against the loopback cloud), and while the user moves through them.
"""

from __future__ import annotations

import asyncio
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import duckdb  # noqa: E402
from figures import emit  # noqa: E402

from bench.bench_startup import FrameGaps  # noqa: E402
from tests.fake_cloud import FakeCloud  # noqa: E402
from tests.test_load import seed_traces  # noqa: E402
from workbench.services import Service, init_workspace  # noqa: E402

TRACES = 100_000
OFFSETS = (0, 100, 25_000, 50_000, 75_000, 99_900)


def page_times(service: Service) -> tuple[float, float]:
    ours, raw = [], []
    for _ in range(3):
        for offset in OFFSETS:
            start = time.perf_counter()
            service.list_traces(100, offset)
            ours.append(time.perf_counter() - start)
            start = time.perf_counter()
            con = duckdb.connect(str(service.store.path), read_only=True)
            con.execute("SELECT count(*) FROM traces").fetchone()
            con.execute("SELECT * FROM traces ORDER BY start_ns DESC LIMIT 100 OFFSET ?", [offset]).fetchall()
            con.close()
            raw.append(time.perf_counter() - start)
    return statistics.median(ours), statistics.median(raw)


async def open_sampled(app, pilot, key: str) -> FrameGaps:
    """Go to a screen, let it load, then start sampling the event loop."""
    await pilot.press(key)
    await pilot.pause(0.5)
    await app.workers.wait_for_complete()
    frames = FrameGaps(app)
    await pilot.pause(0.1)
    frames.restart()
    return frames


async def blocked_while_paging(service: Service) -> float:
    from textual.widgets import Input

    from tui.app import WorkbenchApp

    app = WorkbenchApp(service)
    async with app.run_test(size=(180, 50)) as pilot:
        frames = await open_sampled(app, pilot, "7")
        for key in ["right_square_bracket"] * 5 + [
            "right_curly_bracket",
            "left_square_bracket",
            "left_curly_bracket",
        ]:
            await pilot.press(key)
            await pilot.pause(0.05)
            await app.workers.wait_for_complete()
        app.screen.query_one("#f-name", Input).value = "run3"
        await pilot.pause(0.5)
        await app.workers.wait_for_complete()
        await pilot.pause(0.05)
    return frames.longest_ms()


async def blocked_showing_an_eval(service: Service, run_id: str) -> tuple[float, float, int]:
    from tui.app import WorkbenchApp

    app = WorkbenchApp(service)
    async with app.run_test(size=(200, 55)) as pilot:
        frames = await open_sampled(app, pilot, "6")
        app.screen.show_run(run_id)
        await pilot.pause(0.2)
        await app.workers.wait_for_complete()
        await pilot.pause(0.3)
        showing = frames.longest_ms()
        app.screen.query_one("#ev-cases").focus()
        await pilot.pause(0.1)
        frames.restart()
        for _ in range(20):
            await pilot.press("down")
            await pilot.pause(0.03)
        await pilot.pause(0.2)
        return showing, frames.longest_ms(), app.screen.query_one("#ev-cases").row_count


def eval_frames(folder: Path) -> None:
    cloud = FakeCloud()
    try:
        root, _ = init_workspace(folder / "evals-ws")
        (root / "workbench.toml").write_text(
            f'[cloud.remote]\nbase_url = "{cloud.url}"\nmodels = ["big", "small"]\n'
        )
        service = Service(root)
        cases = [
            {"id": f"q{i:04d}", "input": f"Question {i}: what is the capital of France?", "expected": "Paris"}
            for i in range(1000)
        ]
        (service.evals.dir / "load.jsonl").write_text("".join(json.dumps(c) + "\n" for c in cases))
        run_id = service.evals.run("load", ["remote/big", "remote/small"], max_tokens=16)
        service.flush_traces()
        showing, moving, rows = asyncio.run(blocked_showing_an_eval(service, run_id))
    finally:
        cloud.close()
    assert rows == 2000, rows
    emit(
        "longest blocked frame while the Evals screen shows 1,000 cases x 2 subjects",
        showing,
        "ms",
        "<= 100 ms",
        showing <= 100,
        None,
        "rows go in 200 at a time, the event loop served between",
    )
    emit(
        "longest blocked frame while moving through those 2,000 rows",
        moving,
        "ms",
        "<= 100 ms",
        moving <= 100,
    )


def main() -> None:
    with tempfile.TemporaryDirectory() as folder:
        root, _ = init_workspace(Path(folder) / "ws")
        service = Service(root)
        seed_traces(service, TRACES)
        ours, raw = page_times(service)
        emit(
            "Traces page of 100 at 100,000 traces (500,000 spans), p50",
            ours * 1000,
            "ms",
            "ratio <= 1",
            ours <= raw,
            ours / raw,
            f"raw DuckDB over the traces view: {raw * 1000:.0f} ms",
        )
        blocked = asyncio.run(blocked_while_paging(service))
        emit(
            "longest blocked frame while paging 100,000 traces",
            blocked,
            "ms",
            "<= 100 ms",
            blocked <= 100,
            None,
            "the query runs in a worker; the frame is the table taking and drawing 100 new rows "
            "(tui/table.py draws one-line cells without Rich's layout)",
        )
        eval_frames(Path(folder))


if __name__ == "__main__":
    main()
