"""GPU figures on the lent machine (see ../shared/gpu/README.md): workbench decode tok/s vs
llama-bench tg128 and vs llama-cpp-python's own streaming loop, same model, all layers on the
GPU, with sampling in the graph (backend sampling) and without; and compare of two loaded
models streaming at once vs the slower alone. Prints JSON lines. Needs only llama_cpp on the
path, not the workbench's other packages.

    python bench/gpu_llama.py MODEL.gguf LLAMA_BENCH_BINARY
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import local_models.llama_backend as backend  # noqa: E402
from local_models.gguf_info import read_gguf_info  # noqa: E402
from local_models.llama_backend import LoadOptions, LocalModel, gpu_offload_supported  # noqa: E402
from local_models.plan import gpu_memory, plan_fit  # noqa: E402
from local_models.types import GenerationParams  # noqa: E402

PROMPT = [{"role": "user", "content": "Write a long story about a dragon who learns to bake bread."}]
TOKENS = 256


def llama_bench(binary: str, model: str) -> float:
    out = subprocess.run(
        [binary, "-m", model, "-ngl", "99", "-p", "0", "-n", "128", "-r", "5", "-o", "json"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return float(json.loads(out)[-1]["avg_ts"])


def ours(model: Path, sampling: str) -> float:
    backend.BACKEND_SAMPLING = sampling
    local = LocalModel("bench", model, LoadOptions(n_ctx=2048, n_gpu_layers=-1))
    params = GenerationParams(temperature=0.0, max_tokens=TOKENS, seed=1)
    warm = local.chat(PROMPT, params).result
    assert warm.output_tokens > 0
    rates = [local.chat(PROMPT, params).result.tokens_per_s for _ in range(5)]
    local.close()
    return statistics.median(rates)


def compare(model: Path) -> dict:
    """Two loaded models (two contexts of the file) answer at once, each in its owner thread,
    as `workbench compare` runs them; wall time over the slower of the two alone."""
    backend.BACKEND_SAMPLING = "on"
    params = GenerationParams(temperature=0.0, max_tokens=TOKENS, seed=1)
    models = [LocalModel(f"m{i}", model, LoadOptions(n_ctx=2048, n_gpu_layers=-1)) for i in range(2)]
    for local in models:
        assert local.chat(PROMPT, params).result.output_tokens > 0  # warm-up

    def timed(local) -> float:
        start = time.perf_counter()
        assert local.chat(PROMPT, params).result.output_tokens > 0
        return time.perf_counter() - start

    ratios = []
    for _ in range(5):
        slower = max(timed(local) for local in models)
        start = time.perf_counter()
        threads = [threading.Thread(target=timed, args=(local,)) for local in models]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        ratios.append((time.perf_counter() - start) / slower)
    for local in models:
        local.close()
    ratio = statistics.median(ratios)
    return {
        "figure": "compare of 2 local models: wall / slower alone (GPU)",
        "value": ratio,
        "unit": "x",
        "goal": "<= 1.1",
        "ratio": ratio,
        "met": ratio <= 1.1,
        "note": f"two SmolLM2 contexts, all layers on the GPU, {TOKENS} tokens each; median of 5",
    }


def high_level(model: Path) -> float:
    import llama_cpp

    llm = llama_cpp.Llama(str(model), n_ctx=2048, n_gpu_layers=-1, verbose=False)
    rates = []
    for _ in range(6):
        stamps = []
        for chunk in llm.create_chat_completion(
            PROMPT, temperature=0.0, max_tokens=TOKENS, seed=1, stream=True
        ):
            if chunk["choices"][0]["delta"].get("content"):
                stamps.append(time.perf_counter())
        rates.append((len(stamps) - 1) / (stamps[-1] - stamps[0]))
    llm.close()
    return statistics.median(rates[1:])


def main() -> None:
    model, binary = Path(sys.argv[1]), sys.argv[2]
    info = read_gguf_info(model)
    plan = plan_fit(info, 2048, gpu_offload_supported(), gpu_memory(), None)
    print(json.dumps({"plan": plan.summary, "gpu_layers": plan.gpu_layers}))
    raw = llama_bench(binary, model)
    host_sampling = ours(model, "off")
    mine = ours(model, "on")
    theirs = high_level(model)
    print(
        json.dumps(
            {
                "figure": "GPU decode tok/s vs llama-bench tg128 (backend sampling)",
                "value": mine,
                "unit": "tok/s",
                "goal": "ratio >= 0.90",
                "ratio": mine / raw,
                "met": mine / raw >= 0.90,
                "note": f"llama-bench {raw:.0f} tok/s; sampling on the host {host_sampling:.0f} tok/s "
                f"({host_sampling / raw:.2f}); llama-cpp-python streaming {theirs:.0f} tok/s "
                f"({theirs / raw:.2f}); {info.name} {info.file_type}, {os.uname().nodename}",
            }
        )
    )
    print(json.dumps(compare(model)))


if __name__ == "__main__":
    main()
