"""Several processes share one trace store: no span lost, no lock error, clean after kills."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import interruptible
from workbench.core.tracing import TraceStore

ROOT = Path(__file__).resolve().parent.parent


def child(*args: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "tests.proc_helpers", *args],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=interruptible,
    )


def test_three_writers_and_a_reader_count_exactly(workspace):
    reader = child("read", str(workspace.root))
    time.sleep(0.5)
    writers = [child("write", str(workspace.root), "10000", f"w{i}") for i in range(3)]
    for proc in writers:
        out, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err
        assert "done" in out
    (workspace.root / "stop-reader").touch()
    out, err = reader.communicate(timeout=60)
    assert reader.returncode == 0, err
    assert "Traceback" not in err and "lock" not in err.lower()
    assert int(out.strip().split("=")[1]) > 0, "the reader read while the writers wrote"
    store = TraceStore(workspace.root)
    assert store.stats()["spans"] == 30_000
    columns, rows = store.sql(
        "SELECT model, count(*) FROM spans WHERE model IS NOT NULL GROUP BY model ORDER BY model"
    )
    assert rows == [("w0", 9000), ("w1", 9000), ("w2", 9000)]
    assert store.sql("SELECT count(DISTINCT span_id) FROM spans")[1] == [(30_000,)]


def test_sigkill_loses_at_most_the_unflushed_buffer(workspace):
    for trial in range(3):
        before = TraceStore(workspace.root).stats()["spans"]
        proc = child("flush-forever", str(workspace.root))
        flushed = 0
        deadline = time.monotonic() + 0.3 + trial * 0.4
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            if line.startswith("flushed="):
                flushed = int(line.split("=")[1])
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
        store = TraceStore(workspace.root)
        stats = store.stats()  # opens cleanly after the kill
        assert stats["spans"] - before >= flushed
        assert stats["pending_segments"] == 0
        assert store.sql("SELECT count(*) - count(DISTINCT span_id) FROM spans")[1] == [(0,)]


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_sigterm_and_sigint_flush_the_buffer(workspace, signum):
    proc = child("term", str(workspace.root), "5000")
    assert proc.stdout.readline().strip() == "emitted"
    proc.send_signal(signum)
    proc.wait(timeout=60)
    if signum == signal.SIGTERM:
        assert proc.returncode == 128 + signal.SIGTERM
    assert TraceStore(workspace.root).stats()["spans"] == 5000
