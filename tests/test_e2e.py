"""`make e2e` as part of `make test`: the app in tmux, end to end (about a minute)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest


@pytest.mark.skipif(
    shutil.which("tmux") is None, reason="the end-to-end run drives the app in tmux, which is not installed"
)
def test_end_to_end_in_tmux(fetched_models):
    done = subprocess.run(
        [sys.executable, str(Path(__file__).with_name("e2e.py"))], capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-6000:]
    assert "e2e: all steps passed" in done.stdout
