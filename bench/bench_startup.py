"""Start-up and responsiveness of the app on this machine.

- `workbench --help` wall time (median of 7), against `python -c pass` in the same run (goal <= 0.3 s).
- First paint: `workbench` started in a real terminal (tmux) until its Home screen shows
  (median of 3; goal <= 1.5 s).
- `make run` on an unchanged demo workspace (made once before, untimed) until the app's Home
  screen shows (median of 3; goal <= 5 s).
- Blocked frames: the app's event loop is sampled every 10 ms while SmolLM2 streams 256 tokens
  in the Playground and while a folder is ingested in Documents; the longest gap between
  samples is the longest the app could not answer a key (goal <= 100 ms).
"""

from __future__ import annotations

import asyncio
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from figures import emit

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
BIN = Path(sys.executable).parent


def wall(command: list[str], env: dict) -> float:
    start = time.perf_counter()
    subprocess.run(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
    return time.perf_counter() - start


def first_paint(env: dict, wanted: tuple[str, ...], command: list[str] | None = None) -> float | None:
    if shutil.which("tmux") is None:
        return None
    # A server of its own each time: a new session on the server whose last session was just
    # killed can meet it as it exits ("server exited unexpectedly").
    session = f"wb-bench-{os.getpid()}-{time.monotonic_ns()}"
    tmux = ["tmux", "-L", session]
    start = time.perf_counter()
    subprocess.run(
        [
            *tmux,
            "new-session",
            "-d",
            "-s",
            session,
            "-x",
            "160",
            "-y",
            "45",
            "env",
            "-u",
            "COLUMNS",
            "-u",
            "LINES",
            *[f"{k}={v}" for k, v in env.items() if k.startswith("WORKBENCH")],
            *(command or [str(BIN / "workbench")]),
        ],
        check=True,
    )
    try:
        while time.perf_counter() - start < 30:
            screen = subprocess.run(
                [*tmux, "capture-pane", "-t", session, "-p"], capture_output=True, text=True
            ).stdout
            if all(w in screen for w in wanted):
                return time.perf_counter() - start
            time.sleep(0.01)
    finally:
        subprocess.run([*tmux, "kill-server"], stderr=subprocess.DEVNULL)
    return None


class FrameGaps:
    """Samples an app's event loop every 10 ms; the longest gap between two samples is the
    longest the app could not have answered a key."""

    def __init__(self, app) -> None:
        self.gaps: list[float] = []
        self.last = time.perf_counter()
        app.set_interval(0.01, self._tick)

    def _tick(self) -> None:
        now = time.perf_counter()
        self.gaps.append(now - self.last)
        self.last = now

    def restart(self) -> None:
        self.gaps.clear()
        self.last = time.perf_counter()

    def longest_ms(self) -> float:
        return max(self.gaps) * 1000


async def blocked_frames(workspace: Path, corpus: Path) -> tuple[float, float]:
    """Longest event-loop gap (ms) while a model streams, and while an ingest runs."""
    from textual.widgets import Input, Select

    from tui.app import WorkbenchApp
    from workbench.services import Service

    service = Service(workspace)
    service.models.load("smollm2")
    app = WorkbenchApp(service)
    results = []
    async with app.run_test(size=(160, 45)) as pilot:
        frames = FrameGaps(app)
        await pilot.press("3")
        await pilot.pause(0.5)
        app.screen.query_one("#chat-model", Select).value = "smollm2"
        app.screen.query_one("#chat-max-tokens", Input).value = "256"
        app.screen.query_one("#chat-input", Input).focus()
        await pilot.press(*"Write a long story about a lighthouse.", "enter")
        frames.restart()
        await pilot.pause(0.05)
        await app.workers.wait_for_complete()
        results.append(frames.longest_ms())

        await pilot.press("escape", "2")
        await pilot.pause(0.5)
        app.screen.query_one("#ingest-path", Input).value = str(corpus)
        app.screen.query_one("#ingest-collection", Input).value = "bench"
        app.screen.query_one("#ingest-path", Input).focus()
        frames.restart()
        await pilot.press("enter")
        await pilot.pause(0.05)
        await app.workers.wait_for_complete()
        results.append(frames.longest_ms())
    service.models.close()
    return results[0], results[1]


def main() -> None:
    from local_models.fetch import fetch_models
    from workbench.services import init_workspace

    cache = ROOT / ".test-models"
    fetch_models(cache)
    with tempfile.TemporaryDirectory() as folder:
        root, _ = init_workspace(Path(folder) / "ws")
        for entry in cache.iterdir():
            if not entry.name.startswith("."):
                (root / "models" / entry.name).symlink_to(entry)
        env = {**os.environ, "WORKBENCH_HOME": str(root)}
        baseline = statistics.median(wall([sys.executable, "-c", "pass"], env) for _ in range(7))
        help_s = statistics.median(wall([str(BIN / "workbench"), "--help"], env) for _ in range(7))
        emit(
            "workbench --help",
            help_s,
            "s",
            "<= 0.3 s",
            help_s <= 0.3,
            None,
            f"python -c pass: {baseline:.3f} s in the same run",
        )
        paints = [p for p in (first_paint(env, ("1 Home",)) for _ in range(3)) if p is not None]
        if paints:
            paint = statistics.median(paints)
            emit(
                "first paint of the app (tmux)",
                paint,
                "s",
                "<= 1.5 s",
                paint <= 1.5,
                None,
                "the screen drawn",
            )
        loaded = [p for p in (first_paint(env, ("1 Home", "Workspace")) for _ in range(3)) if p is not None]
        if loaded:
            emit(
                "Home screen with its workspace status",
                statistics.median(loaded),
                "s",
                "report",
                None,
                None,
                "the status (models, trace store) loads in a worker after the first paint",
            )
        demo = {**env, "WORKBENCH_HOME": str(Path(folder) / "demo")}
        subprocess.run(["make", "-s", "-C", str(ROOT), "demo"], env=demo, check=True, capture_output=True)
        runs = [first_paint(demo, ("1 Home",), ["make", "-s", "-C", str(ROOT), "run"]) for _ in range(3)]
        runs = [r for r in runs if r is not None]
        if runs:
            run_s = statistics.median(runs)
            emit(
                "make run on an unchanged demo until the app paints",
                run_s,
                "s",
                "<= 5 s",
                run_s <= 5,
                None,
                "init, models fetch, ingest of docs and README.md (all unchanged), eval list, then the app",
            )
        corpus = Path(folder) / "corpus"
        shutil.copytree(ROOT / "docs", corpus)
        shutil.copy(ROOT / "README.md", corpus / "README.md")
        streaming, ingesting = asyncio.run(blocked_frames(root, corpus))
        emit("longest blocked frame while a model streams", streaming, "ms", "<= 100 ms", streaming <= 100)
        emit("longest blocked frame while an ingest runs", ingesting, "ms", "<= 100 ms", ingesting <= 100)


if __name__ == "__main__":
    main()
