"""GPU figures on the lent machine (see ../shared/gpu/README.md): workbench decode tok/s vs
llama-bench tg128 and vs llama-cpp-python's own streaming loop, same model, all layers on the
GPU. Prints JSON lines. Needs only llama_cpp on the path, not the workbench's other packages.

    python bench/gpu_llama.py MODEL.gguf LLAMA_BENCH_BINARY
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from local_models.gguf_info import read_gguf_info  # noqa: E402
from local_models.llama_backend import LoadOptions, LocalModel, gpu_offload_supported  # noqa: E402
from local_models.plan import gpu_memory, plan_fit  # noqa: E402
from local_models.types import GenerationParams  # noqa: E402

PROMPT = [{"role": "user", "content": "Write a long story about a dragon who learns to bake bread."}]
TOKENS = 256


def llama_bench(binary: str, model: str) -> float:
    out = subprocess.run([binary, "-m", model, "-ngl", "99", "-p", "0", "-n", "128", "-r", "5", "-o", "json"],
                         capture_output=True, text=True, check=True).stdout  # fmt: skip
    return float(json.loads(out)[-1]["avg_ts"])


def ours(model: Path) -> float:
    local = LocalModel("bench", model, LoadOptions(n_ctx=2048, n_gpu_layers=-1))
    params = GenerationParams(temperature=0.0, max_tokens=TOKENS, seed=1)
    warm = local.chat(PROMPT, params).result
    assert warm.output_tokens > 0
    rates = [local.chat(PROMPT, params).result.tokens_per_s for _ in range(5)]
    local.close()
    return statistics.median(rates)


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
    mine = ours(model)
    theirs = high_level(model)
    print(json.dumps({"figure": "GPU decode tok/s vs llama-bench tg128", "value": mine, "unit": "tok/s",
                      "goal": "ratio >= 0.90", "ratio": mine / raw, "met": mine / raw >= 0.90,
                      "note": f"llama-bench {raw:.0f} tok/s; llama-cpp-python streaming {theirs:.0f} tok/s "
                              f"({theirs / raw:.2f}); {info.name} {info.file_type}, {os.uname().nodename}"}))  # fmt: skip


if __name__ == "__main__":
    main()
