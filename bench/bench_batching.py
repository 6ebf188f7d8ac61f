"""Continuous batching, SmolLM2 on this machine's CPU, in one run:

1. Aggregate tokens/s of N concurrent streams (N = 1, 4, 8) through the workbench's local model
   (N slots) against llama.cpp's own server (`llama-server -np N -cb`, built from the llama.cpp
   that llama-cpp-python vendors, so the same kernels), same threads, same context per slot,
   flash attention on both, greedy, the same prompts and max_tokens (goal >= 0.9 of it).
2. The demo eval's wall time, cases one at a time (--parallel 1, the runner as it was) against
   --parallel 4 (goal >= 1.5x faster).

llama-server is built once into ~/.cache/workbench/bench (the sdist from the registry, cmake,
about 15 minutes on 2 cores); pass its path as WORKBENCH_LLAMA_SERVER to skip that.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from figures import emit

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

THREADS = 2
CTX = 2048  # per sequence
MAX_TOKENS = 96
VERSION = "0.3.36"  # llama-cpp-python, whose vendored llama.cpp the workbench runs
CACHE = Path.home() / ".cache" / "workbench" / "bench" / "llama-server-src"
PROMPTS = [
    f"Write a long story about {thing}."
    for thing in ("a dragon", "the sea", "a robot", "a city", "winter", "a library", "a garden", "a train")
]


def llama_server_binary() -> Path:
    if os.environ.get("WORKBENCH_LLAMA_SERVER"):
        return Path(os.environ["WORKBENCH_LLAMA_SERVER"])
    source = CACHE / f"llama_cpp_python-{VERSION}" / "vendor" / "llama.cpp"
    binary = source / "build" / "bin" / "llama-server"
    if binary.exists():
        return binary
    CACHE.mkdir(parents=True, exist_ok=True)
    pip = [sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:", "-d", str(CACHE)]
    subprocess.run([*pip, f"llama-cpp-python=={VERSION}"], check=True)
    subprocess.run(["tar", "xzf", f"llama_cpp_python-{VERSION}.tar.gz"], cwd=CACHE, check=True)
    flags = ["-DCMAKE_BUILD_TYPE=Release", "-DLLAMA_CURL=OFF", "-DLLAMA_BUILD_TESTS=OFF"]
    subprocess.run(["cmake", "-S", ".", "-B", "build", *flags], cwd=source, check=True)
    subprocess.run(["cmake", "--build", "build", "--target", "llama-server", "-j"], cwd=source, check=True)
    return binary


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def llama_server_tok_s(binary: Path, model: Path, streams: int) -> tuple[float, int]:
    import httpx

    port = _free_port()
    command = [str(binary), "-m", str(model), "--host", "127.0.0.1", "--port", str(port)]
    command += ["-t", str(THREADS), "-c", str(CTX * streams), "-np", str(streams), "-cb", "-fa", "on"]
    command += ["--no-kv-unified", "--no-webui", "-ngl", "0", "--temp", "0"]
    server = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 120
        while not _healthy(url):
            if server.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"llama-server did not start: {' '.join(command)}")
            time.sleep(0.3)

        def one(prompt: str) -> int:
            body = {
                "messages": [{"role": "user", "content": prompt}],
                "max_tokens": MAX_TOKENS,
                "temperature": 0,
                # Both keep a prompt cache now (the workbench's is exact: batching.py says how)
                "cache_prompt": True,
            }
            answer = httpx.post(f"{url}/v1/chat/completions", json=body, timeout=600).json()
            return answer["usage"]["completion_tokens"]

        one(PROMPTS[0])  # warm-up
        return _aggregate(one, streams)
    finally:
        server.terminate()
        server.wait(timeout=30)


def _healthy(url: str) -> bool:
    import httpx

    try:
        return httpx.get(f"{url}/health", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def workbench_tok_s(model: Path, streams: int) -> tuple[float, int]:
    from local_models.llama_backend import LoadOptions, LocalModel
    from local_models.types import GenerationParams

    local = LocalModel("smol", model, LoadOptions(n_ctx=CTX, n_threads=THREADS, parallel=streams))
    params = GenerationParams(temperature=0.0, max_tokens=MAX_TOKENS)
    try:

        def one(prompt: str) -> int:
            return local.chat([{"role": "user", "content": prompt}], params).result.output_tokens

        one(PROMPTS[0])
        return _aggregate(one, streams)
    finally:
        local.close()


def _aggregate(one, streams: int) -> tuple[float, int]:
    """Tokens per second of ``streams`` requests at once (two rounds, the better)."""
    best, tokens = 0.0, 0
    for _ in range(2):
        prompts = [PROMPTS[i % len(PROMPTS)] for i in range(streams)]
        started = time.perf_counter()
        with ThreadPoolExecutor(streams) as pool:
            counts = list(pool.map(one, prompts))
        rate = sum(counts) / (time.perf_counter() - started)
        if rate > best:
            best, tokens = rate, sum(counts)
    return best, tokens


def eval_wall(model: Path) -> dict[int, float]:
    from workbench.services import Service, init_workspace

    walls = {}
    with tempfile.TemporaryDirectory() as folder:
        root, _ = init_workspace(Path(folder) / "ws")
        (root / "models" / model.name).symlink_to(model)
        shutil.copy(ROOT / "evals" / "data" / "demo.jsonl", root / "evals" / "demo.jsonl")
        service = Service(root)
        service.models.load("smollm2")  # loading is not eval time
        for parallel in (1, 4, 1, 4):  # twice each, interleaved: the machine's noise hits both
            run_id = service.evals.run("demo", ["smollm2"], max_tokens=48, parallel=parallel)
            wall = service.evals.show(run_id)["run"]["wall_s"]
            walls[parallel] = min(walls.get(parallel, wall), wall)
        service.models.close()
    return walls


def main() -> None:
    from local_models.fetch import fetch_models

    cache = ROOT / ".test-models"
    fetch_models(cache, ["smollm2"])
    model = cache / "SmolLM2-135M-Instruct.Q4_1.gguf"
    binary = llama_server_binary()
    for streams in [int(s) for s in os.environ.get("BENCH_STREAMS", "1,4,8").split(",")]:
        ours, our_tokens = workbench_tok_s(model, streams)
        theirs, their_tokens = llama_server_tok_s(binary, model, streams)
        emit(
            f"aggregate tok/s, {streams} stream(s), workbench / llama-server -np {streams} -cb",
            ours,
            "tok/s",
            ">= 0.9",
            ours / theirs >= 0.9,
            ours / theirs,
            f"llama-server {theirs:.1f} tok/s; tokens {our_tokens} vs {their_tokens}",
        )
    walls = eval_wall(model)
    emit(
        "demo eval wall time, --parallel 1 / --parallel 4",
        walls[1] / walls[4],
        "x faster",
        ">= 1.5",
        walls[1] / walls[4] >= 1.5,
        walls[1] / walls[4],
        f"{walls[1]:.1f} s vs {walls[4]:.1f} s",
    )


if __name__ == "__main__":
    main()
