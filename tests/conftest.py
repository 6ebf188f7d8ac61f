from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from workbench.tracing import SpoolWriter, Tracer, TraceStore
from workbench.workspace import Workspace

BIN = Path(sys.executable).parent


@pytest.fixture
def workspace(tmp_path, monkeypatch) -> Workspace:
    """A fresh workspace, also selected through WORKBENCH_HOME for subprocesses."""
    root = tmp_path / "ws"
    monkeypatch.setenv("WORKBENCH_HOME", str(root))
    return Workspace.open(root)


@pytest.fixture
def tracer(workspace):
    """A tracer writing into the workspace's store; flush with tracer.sink.flush()."""
    store = TraceStore(workspace.root)
    sink = SpoolWriter(workspace.spool_dir, store, flush_interval_s=60)
    yield Tracer(sink)
    sink.close()


def run_cli(*args: str, env: dict | None = None, check: bool = False, timeout: float = 120):
    """Run the installed `workbench` console script as a user would."""
    result = subprocess.run(
        [str(BIN / "workbench"), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
    )
    if check and result.returncode != 0:
        raise AssertionError(f"workbench {' '.join(args)} failed: {result.stderr}")
    return result
