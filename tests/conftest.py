from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from workbench.core.tracing import SpoolWriter, Tracer, TraceStore
from workbench.core.workspace import Workspace

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


def interruptible() -> None:
    """preexec_fn of a child a test interrupts with SIGINT, as ctrl+c in a terminal would. A
    launcher without job control (a background job: `make test &`) starts everything with SIGINT
    ignored, a child inherits that, and a process that ignores SIGINT at start never sees it."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def run_cli(
    *args: str, env: dict | None = None, check: bool = False, timeout: float = 120, input: str | None = None
):
    """Run the installed `workbench` console script as a user would."""
    result = subprocess.run(
        [str(BIN / "workbench"), *args],
        input=input if input is not None else "",
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
    )
    if check and result.returncode != 0:
        raise AssertionError(f"workbench {' '.join(args)} failed: {result.stderr}")
    return result


MODEL_CACHE = Path(__file__).resolve().parent.parent / ".test-models"


@pytest.fixture(scope="session")
def fetched_models() -> Path:
    """The default models, fetched once for the whole run (and kept between runs) under a lock,
    since xdist workers start at the same time. Deleting .test-models/ is always safe."""
    import fcntl

    from local_models.fetch import fetch_models

    MODEL_CACHE.mkdir(exist_ok=True)
    with open(MODEL_CACHE / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        fetch_models(MODEL_CACHE)
    return MODEL_CACHE


@pytest.fixture
def model_workspace(workspace, fetched_models) -> Workspace:
    """A fresh workspace whose models folder links to the fetched models."""
    for entry in fetched_models.iterdir():
        if not entry.name.startswith("."):
            (workspace.models_dir / entry.name).symlink_to(entry)
    return workspace


@pytest.fixture
def cloud():
    """Our fault-injecting OpenAI/Anthropic-compatible server on loopback (tests/fake_cloud.py)."""
    from tests.fake_cloud import FakeCloud

    server = FakeCloud()
    yield server
    server.close()


@pytest.fixture
def local_and_cloud(model_workspace, cloud):
    """A Service with the fetched local models and the loopback cloud as `remote/big`."""
    from local_models.cloud import CloudClient, RetryPolicy
    from workbench.services import Service

    model_workspace.config_path.write_text(f'[cloud.remote]\nbase_url = "{cloud.url}"\nmodels = ["big"]\n')
    service = Service(model_workspace.root)
    service.generation.use_cloud(CloudClient(service.config, service.tracer, False, RetryPolicy(attempts=1)))
    yield service
    service.models.close()


@contextlib.contextmanager
def llama_server(model: Path, alias: str):
    """llama-cpp-python's own OpenAI-compatible server on a free loopback port; yields its /v1 URL."""
    import httpx

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "llama_cpp.server",
            "--model",
            str(model),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--model_alias",
            alias,
            "--n_ctx",
            "2048",
            # The workbench decodes with flash attention (local_models/llama_backend.py): the
            # same kernel gives the same tokens.
            "--flash_attn",
            "true",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/v1/models", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.3)
        yield f"http://127.0.0.1:{port}/v1"
    finally:
        server.terminate()
        server.wait(timeout=30)


@pytest.fixture
def decoding_alone():
    """Hold the machine's one decoding slot for the test: the model-heavy gateway tests (the load
    test, the tool clients, the 100 schemas) take it in turn across xdist workers, since two of
    them at once on 2 cores spin against each other far past their timeouts."""
    import fcntl

    MODEL_CACHE.mkdir(exist_ok=True)
    with open(MODEL_CACHE / ".decoding.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield
