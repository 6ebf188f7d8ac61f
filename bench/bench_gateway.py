"""`workbench ask` with the workspace's gateway running (goal: the first token <= 0.5 s after
the command starts), against the same command in process (cold: imports, model load) in the
same run. Median of 5, SmolLM2, 8 tokens, on a workspace with the fetched models.
"""

from __future__ import annotations

import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from figures import emit

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
MODELS = ROOT / ".test-models"


def first_token(env: dict) -> float:
    """Seconds from the start of `workbench ask` to the first byte of its answer."""
    start = time.perf_counter()
    process = subprocess.Popen(
        [str(BIN / "workbench"), "ask", "-m", "smollm2", "-t", "0", "--max-tokens", "8", "Say hi"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )
    assert process.stdout is not None
    process.stdout.read(1)
    elapsed = time.perf_counter() - start
    process.wait()
    return elapsed


def main() -> None:
    if not MODELS.is_dir():
        print("# bench_gateway: no .test-models (run `make test` once first)", file=sys.stderr)
        return
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "ws"
        env = {**os.environ, "WORKBENCH_HOME": str(root)}
        subprocess.run([str(BIN / "workbench"), "init"], env=env, check=True, capture_output=True)
        for entry in MODELS.iterdir():
            target = root / "models" / entry.name
            (shutil.copytree if entry.is_dir() else shutil.copy)(entry, target)
        cold = statistics.median(first_token(env) for _ in range(5))
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        subprocess.run(
            [str(BIN / "workbench"), "serve", "--port", str(port), "--background"],
            env=env,
            check=True,
            capture_output=True,
        )
        try:
            first_token(env)  # the gateway loads the model on its first request
            warm = statistics.median(first_token(env) for _ in range(5))
        finally:
            subprocess.run([str(BIN / "workbench"), "serve", "--stop"], env=env, capture_output=True)
    emit(
        "ask: first token with the gateway running",
        warm,
        "s",
        "<= 0.5 s",
        warm <= 0.5,
        ratio=warm / cold,
        note=f"median of 5; ratio = over the same command in process ({cold:.2f} s: imports and model load)",
    )


if __name__ == "__main__":
    main()
