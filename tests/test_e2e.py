"""`make e2e` as part of `make test`: the app in tmux, end to end (about a minute)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

# By itself after the parallel suite (`make test`): a person's pace at a terminal, not a race with
# the other worker's model tests for 2 cores.
pytestmark = pytest.mark.alone


@pytest.mark.skipif(
    shutil.which("tmux") is None, reason="the end-to-end run drives the app in tmux, which is not installed"
)
@pytest.mark.timeout(900)
def test_end_to_end_in_tmux(fetched_models):
    # About 80 s on a quiet machine; beside the model-heavy tests of the other xdist worker it
    # once ran past 600 s, and pytest-timeout's kill lost the run's own account of its steps:
    # the run's limit now comes first, and what it printed is kept.
    try:
        done = subprocess.run(
            [sys.executable, str(Path(__file__).with_name("e2e.py"))],
            capture_output=True,
            text=True,
            timeout=840,
        )
    except subprocess.TimeoutExpired as expired:
        printed = expired.stdout.decode() if isinstance(expired.stdout, bytes) else (expired.stdout or "")
        pytest.fail(f"the end-to-end run took over 840 s; its steps so far:\n{printed[-3000:]}")
    assert done.returncode == 0, done.stdout[-1500:] + done.stderr[-20000:]  # the whole screen
    assert "e2e: all steps passed" in done.stdout


@pytest.mark.skipif(
    shutil.which("tmux") is None or shutil.which("make") is None,
    reason="the app is started by make in a tmux terminal, and one of them is not installed",
)
def test_the_app_exits_when_its_terminal_closes_under_a_parent(workspace):
    """Under `make run`, make owns the terminal and the app is its child. Closing the terminal
    hung make up, not the app, which used to run on, spinning a core."""
    import os
    import time

    session = f"wb-hup-{os.getpid()}"
    tmux = ["tmux", "-L", session]
    makefile = workspace.root / "run.mk"
    makefile.write_text(
        f"run:\n\tWORKBENCH_HOME={workspace.root} {Path(sys.executable).parent / 'workbench'}\n"
    )
    command = ["make", "-s", "-f", str(makefile), "run"]
    subprocess.run([*tmux, "new-session", "-d", "-s", session, "-x", "120", "-y", "40", *command], check=True)
    try:
        deadline = time.monotonic() + 60
        while (
            "1 Home"
            not in subprocess.run(
                [*tmux, "capture-pane", "-t", session, "-p"], capture_output=True, text=True
            ).stdout
        ):
            assert time.monotonic() < deadline, "the app did not start"
            time.sleep(0.2)
        apps = _workbench_apps(workspace.root)
        assert len(apps) == 1
    finally:
        subprocess.run([*tmux, "kill-server"], stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 15
    while _workbench_apps(workspace.root) and time.monotonic() < deadline:
        time.sleep(0.2)
    left = _workbench_apps(workspace.root)
    for pid in left:
        os.kill(pid, 9)
    assert left == [], "the app outlived its terminal"


def _workbench_apps(root: Path) -> list[int]:
    """PIDs of workbench apps started for ``root`` (read from /proc)."""
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            command = (proc / "cmdline").read_bytes().split(b"\0")
            environ = (proc / "environ").read_bytes()
        except OSError:
            continue
        if (
            any(part.endswith(b"/workbench") for part in command[:2])
            and f"WORKBENCH_HOME={root}".encode() in environ
        ):
            found.append(int(proc.name))
    return found
