"""`models quantize` through llama.cpp's own quantize, and `models kl`: perplexity, KL divergence
and top-token agreement, computed as llama-perplexity --kl-divergence computes them (its
perplexity against the real llama-perplexity is in bench/bench_quant_lab.py)."""

from __future__ import annotations

import json

import pytest

from local_models.gguf_info import read_gguf_info
from tests.conftest import run_cli

TEXT = " ".join(
    f"The collection keeps version {i} of the notes, and a search reads the newest one unless told otherwise."
    for i in range(40)
)


@pytest.fixture
def quantized(model_workspace, tmp_path):
    done = run_cli("models", "quantize", "smollm2", "--type", "Q2_K", check=True, timeout=300)
    assert "registered smollm2-q2_k" in done.stdout
    assert "blk.0" not in done.stderr  # llama.cpp's per-tensor lines stay off the terminal
    path = model_workspace.models_dir / "SmolLM2-135M-Instruct.Q2_K.gguf"
    assert read_gguf_info(path).file_type.startswith("Q2_K")
    text = tmp_path / "notes.txt"
    text.write_text(TEXT)
    return text


def test_kl_of_a_model_against_itself_is_zero_and_against_its_q2_k_is_not(quantized):
    done = run_cli(
        "models",
        "kl",
        "smollm2",
        "smollm2-q2_k",
        "--base",
        "smollm2",
        "--text",
        str(quantized),
        "--ctx",
        "128",
        "--json",
        check=True,
        timeout=600,
    )
    base, itself, q2 = json.loads(done.stdout)
    assert base["model"] == itself["model"] == "smollm2" and base["kl_divergence"] is None
    assert itself["kl_divergence"] == 0.0 and itself["top_token_agreement"] == 1.0
    assert itself["perplexity"] == base["perplexity"] and 1.0 < base["perplexity"] < 100
    assert q2["kl_divergence"] > 0.01 and q2["top_token_agreement"] < 1.0
    assert q2["size_mib"] < base["size_mib"] and q2["scored_tokens"] == base["scored_tokens"] > 100


def test_bad_quant_lab_input_says_what_to_do(quantized, tmp_path):
    short = tmp_path / "short.txt"
    short.write_text("Too short.")
    cases = [
        (("models", "quantize", "smollm2", "--type", "Q9_X"), "unknown quant type Q9_X"),
        (("models", "quantize", "minilm", "--type", "Q8_0"), "is not a GGUF model"),
        (
            ("models", "kl", "smollm2", "--base", "smollm2", "--text", str(short)),
            "shorter than one 512-token chunk",
        ),
        (("models", "kl", "nope", "--base", "smollm2", "--text", str(quantized)), "nope"),
    ]
    for args, message in cases:
        done = run_cli(*args, timeout=300)
        assert done.returncode != 0 and message in done.stderr, (args, done.stderr)
        assert "Traceback" not in done.stderr
