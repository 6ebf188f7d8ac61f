"""GGUF headers read without loading: real files, and truncated or lying ones."""

from __future__ import annotations

import struct

import pytest

from local_models.gguf_info import read_gguf_info
from local_models.plan import plan_fit
from tests.conftest import run_cli
from workbench.core.errors import ModelError

MIB = 1024**2


def test_real_headers(fetched_models):
    smol = read_gguf_info(fetched_models / "SmolLM2-135M-Instruct.Q4_1.gguf")
    assert (smol.architecture, smol.file_type, smol.context_length) == ("llama", "Q4_1", 8192)
    assert smol.parameters == 134_515_008 and smol.parameters_label == "135M"
    assert (smol.block_count, smol.head_count_kv, smol.vocab_size) == (30, 3, 49152)
    assert smol.has_chat_template
    assert smol.tool_format == "grammar", "SmolLM2's template knows no tools"
    gemma = read_gguf_info(fetched_models / "gemma-3-270m-q4_k_m.gguf")
    assert (gemma.architecture, gemma.file_type, gemma.context_length) == ("gemma3", "Q4_K_M", 32768)
    assert gemma.parameters == 268_098_176 and not gemma.has_chat_template
    assert gemma.metadata["general.tags"][:2] == ["gemma3", "gemma"]


def test_plan_matches_what_llama_cpp_allocates(fetched_models):
    # Sizes llama.cpp 0.3.36 printed when loading these files with n_ctx=4096 on this machine.
    smol = plan_fit(
        read_gguf_info(fetched_models / "SmolLM2-135M-Instruct.Q4_1.gguf"), 4096, False, None, None
    )
    assert smol.kv_bytes == 90 * MIB
    gemma = plan_fit(read_gguf_info(fetched_models / "gemma-3-270m-q4_k_m.gguf"), 4096, False, None, None)
    assert gemma.kv_bytes >= 72 * MIB  # llama.cpp: 72 MiB (sliding-window layers are smaller)
    assert gemma.compute_bytes == pytest.approx(514.5 * MIB, rel=0.05)
    assert gemma.summary.startswith("CPU only")


def test_gpu_layer_count(fetched_models):
    info = read_gguf_info(fetched_models / "SmolLM2-135M-Instruct.Q4_1.gguf")
    assert plan_fit(info, 4096, True, 80 * 1024**3, None).summary == "all layers on the GPU"
    assert plan_fit(info, 4096, True, 100 * MIB, None).gpu_layers == 0
    partial = plan_fit(info, 4096, True, 400 * MIB, None)
    assert 0 < partial.gpu_layers <= info.block_count
    assert partial.summary == f"{partial.gpu_layers} of 31 layers on the GPU"
    assert not plan_fit(info, 4096, False, None, 10 * MIB).fits_in_ram


def header(kv: list[bytes], tensors: int = 0) -> bytes:
    return b"GGUF" + struct.pack("<IQQ", 3, tensors, len(kv)) + b"".join(kv)


def kv_string(key: str, value: bytes, declared: int | None = None) -> bytes:
    k = key.encode()
    return struct.pack("<Q", len(k)) + k + struct.pack("<IQ", 8, declared or len(value)) + value


@pytest.mark.parametrize(
    "content,message",
    [
        (b"", "only 0 bytes"),
        (b"NOTGGUF" + b"\0" * 40, "no GGUF magic"),
        (b"GGUF" + struct.pack("<IQQ", 99, 0, 0), "unsupported GGUF version 99"),
        (header([kv_string("general.name", b"x", declared=10**12)]), "implausible count"),
        (header([kv_string("general.name", b"x" * 100, declared=120)]), "string runs past the end"),
        (b"GGUF" + struct.pack("<IQQ", 3, 0, 10**12), "implausible count"),
        (header([kv_string("general.name", b"ok")], tensors=1), "unexpected end of file"),
        (header([kv_string("general.name", b"ok")])[:-1], "string runs past the end"),
    ],
)
def test_bad_headers_are_clear_errors(tmp_path, content, message):
    path = tmp_path / "bad.gguf"
    path.write_bytes(content)
    with pytest.raises(ModelError, match=message):
        read_gguf_info(path)


def test_cli_show_and_plan(model_workspace):
    shown = run_cli("models", "show", "smollm2", check=True).stdout
    assert "file_type          Q4_1" in shown and "parameters_label   135M" in shown
    plan = run_cli("models", "plan", "gemma3-270m", "--ctx", "8192", check=True).stdout
    assert "KV cache     144 MiB (f16, 18 layers)" in plan and "plan" in plan
    listing = run_cli("models", "list", check=True).stdout
    assert "Q4_K_M" in listing and "gemma3" in listing
    bad = model_workspace.root / "broken.gguf"
    bad.write_bytes(b"GGUF" + b"\x03\0\0\0" + b"\xff" * 30)
    run_cli("models", "register", str(bad), "--alias", "broken", check=True)
    result = run_cli("models", "show", "broken")
    assert result.returncode == 5 and "not a valid GGUF file" in result.stderr
    assert "Traceback" not in result.stderr
    assert "unreadable" in run_cli("models", "list", check=True).stdout
