"""Local model streaming: workbench tokens/s (tracing on) over raw llama-cpp-python streaming
tokens/s, same model (SmolLM2-135M Q4_1), prompt, threads, context and greedy sampling, in one
run. Goal: at least 0.95 on CPU. Decode rate = (tokens - 1) / (time of last - time of first)."""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from local_models.fetch import fetch_models  # noqa: E402
from local_models.llama_backend import LoadOptions  # noqa: E402
from local_models.types import GenerationParams  # noqa: E402
from workbench.services import Service  # noqa: E402

PROMPT = "Write a long story about a dragon who learns to bake bread."
MAX_TOKENS = 200
THREADS = os.cpu_count() or 1
CTX = 2048


def raw_rate(model_path: Path) -> float:
    import llama_cpp

    llm = llama_cpp.Llama(str(model_path), n_ctx=CTX, n_threads=THREADS, verbose=False)
    rates = []
    for _ in range(3):
        stamps = []
        for chunk in llm.create_chat_completion(
            [{"role": "user", "content": PROMPT}], temperature=0.0, max_tokens=MAX_TOKENS, seed=1, stream=True
        ):
            if chunk["choices"][0]["delta"].get("content"):
                stamps.append(time.perf_counter())
        rates.append((len(stamps) - 1) / (stamps[-1] - stamps[0]))
    llm.close()
    return statistics.median(rates)


def our_rate(service: Service) -> tuple[float, int]:
    params = GenerationParams(temperature=0.0, max_tokens=MAX_TOKENS, seed=1)
    options = LoadOptions(n_ctx=CTX, n_threads=THREADS)
    results = [service.ask("smollm2", PROMPT, params=params, options=options) for _ in range(3)]
    return statistics.median(r.tokens_per_s for r in results), results[0].output_tokens


def run_one(kind: str, workspace: str) -> None:
    """One measurement in a process of its own: llama.cpp's OpenMP threads stay per process,
    and a pool left by one side would slow the other down."""
    service = Service(workspace)
    model = service.workspace.models_dir / "SmolLM2-135M-Instruct.Q4_1.gguf"
    if kind == "raw":
        print(json.dumps({"rate": raw_rate(model)}))
    else:
        rate, tokens = our_rate(service)
        service.models.close()
        print(json.dumps({"rate": rate, "tokens": tokens}))


def measure(kind: str, workspace: str) -> dict:
    out = subprocess.run(
        [sys.executable, __file__, kind, workspace], capture_output=True, text=True, check=True
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    cache = ROOT / ".test-models"
    fetch_models(cache, ["smollm2"])
    with tempfile.TemporaryDirectory() as tmp:
        workspace = Service(tmp).workspace
        model = workspace.models_dir / "SmolLM2-135M-Instruct.Q4_1.gguf"
        model.symlink_to(cache / model.name)
        ours, raws = [], []
        for _ in range(3):  # interleaved, so that machine noise hits both alike
            raws.append(measure("raw", tmp)["rate"])
            result = measure("ours", tmp)
            ours.append(result["rate"])
    ratio = statistics.median(ours) / statistics.median(raws)
    print(
        json.dumps(
            {
                "figure": "local streaming tok/s vs raw llama-cpp-python (CPU)",
                "value": statistics.median(ours),
                "unit": "tok/s",
                "goal": "ratio >= 0.95",
                "ratio": ratio,
                "met": ratio >= 0.95,
                "note": f"raw {statistics.median(raws):.1f} tok/s; SmolLM2-135M Q4_1, {THREADS} threads, "
                f"greedy, {result['tokens']} tokens, tracing on; medians of 3 interleaved processes",
            }
        )
    )


if __name__ == "__main__":
    if len(sys.argv) == 3:
        run_one(sys.argv[1], sys.argv[2])
    else:
        main()
