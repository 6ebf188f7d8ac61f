"""The quant lab against llama.cpp's own tool: `workbench models kl`'s perplexity of SmolLM2 over
this repo's docs, against `llama-perplexity` built from the llama.cpp that llama-cpp-python
vendors (as bench_batching builds llama-server), same text, context 512, 2 threads
(goal: within 1%); then the quality x size x speed table of SmolLM2's quants made with
`workbench models quantize` (from the packaged Q4_1: requantized, so each loses more than
it would from an F16 file)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

from bench_batching import CACHE, VERSION, llama_server_binary
from figures import emit

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
MODELS = ROOT / ".test-models"
SMOLLM2 = "SmolLM2-135M-Instruct.Q4_1.gguf"
QUANTS = ("Q2_K", "Q4_K_M", "Q5_K_M", "Q8_0")


def llama_perplexity_binary() -> Path:
    llama_server_binary()  # fetches and configures the source the first time
    source = CACHE / f"llama_cpp_python-{VERSION}" / "vendor" / "llama.cpp"
    binary = source / "build" / "bin" / "llama-perplexity"
    if not binary.exists():
        subprocess.run(
            ["cmake", "--build", "build", "--target", "llama-perplexity", "-j"], cwd=source, check=True
        )
    return binary


def main() -> None:
    if not (MODELS / SMOLLM2).exists():
        print("# bench_quant_lab: no .test-models (run `make test` once first)", file=sys.stderr)
        return
    binary = llama_perplexity_binary()
    with tempfile.TemporaryDirectory() as tmp:
        text = Path(tmp) / "docs.txt"
        text.write_text("\n\n".join(p.read_text() for p in sorted((ROOT / "docs").glob("*.md"))))
        env = {**os.environ, "WORKBENCH_HOME": str(Path(tmp) / "ws")}
        workbench = str(BIN / "workbench")
        subprocess.run([workbench, "init"], env=env, check=True, capture_output=True)
        (Path(tmp) / "ws" / "models" / SMOLLM2).symlink_to(MODELS / SMOLLM2)
        theirs = subprocess.run(
            [str(binary), "-m", str(MODELS / SMOLLM2), "-f", str(text), "-c", "512", "-t", "2"],
            capture_output=True,
            text=True,
            check=True,
        )
        their_ppl = float(
            re.search(r"Final estimate: PPL = ([0-9.]+)", theirs.stdout + theirs.stderr).group(1)
        )
        for quant in QUANTS:
            subprocess.run(
                [workbench, "models", "quantize", "smollm2", "--type", quant],
                env=env,
                check=True,
                capture_output=True,
            )
        names = [f"smollm2-{q.lower()}" for q in QUANTS]
        done = subprocess.run(
            [workbench, "models", "kl", *names, "--base", "smollm2", "--text", str(text), "--json"],
            env=env,
            capture_output=True,
            text=True,
            check=True,
        )
        rows = json.loads(done.stdout)
    ours = rows[0]["perplexity"]
    emit(
        "perplexity of SmolLM2 Q4_1 over docs/, `models kl` / llama-perplexity",
        ours,
        "ppl",
        "within 1%",
        abs(ours / their_ppl - 1) <= 0.01,
        ours / their_ppl,
        f"llama-perplexity {their_ppl:.4f}; {rows[0]['scored_tokens']} tokens scored, context 512",
    )
    for row in rows[1:]:
        emit(
            f"SmolLM2 {row['model']} against Q4_1: KL divergence",
            row["kl_divergence"],
            "nats",
            "-",
            None,
            None,
            f"{row['size_mib']} MiB, perplexity {row['perplexity']}, same top token {row['top_token_agreement']:.2%}, "
            f"{row['tokens_per_s']} tok/s scoring (Q4_1: {rows[0]['size_mib']} MiB, {rows[0]['tokens_per_s']} tok/s)",
        )


if __name__ == "__main__":
    main()
