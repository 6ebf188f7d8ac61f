"""A planted API key, every feature run from the CLI with it in the environment: the key reaches
the cloud endpoint (in its header) and nothing else: not the workspace, the exports, the
traces, their OTLP export, or anything printed."""

from __future__ import annotations

import json

from tests.conftest import run_cli
from tests.fake_cloud import FakeCloud

PLANTED = "sk-planted-" + "Xy7" * 14


def test_a_planted_key_is_used_and_found_nowhere_else(model_workspace, tmp_path, monkeypatch):
    monkeypatch.setenv("REMOTE_KEY", PLANTED)
    cloud = FakeCloud()
    try:
        model_workspace.config_path.write_text(
            f'[cloud.remote]\nbase_url = "{cloud.url}"\napi_key_env = "REMOTE_KEY"\nmodels = ["big"]\n'
            '[router]\nlocal = "smollm2"\nescalate_to = "remote/big"\n'
        )
        corpus = tmp_path / "corpus"
        corpus.mkdir()
        (corpus / "notes.md").write_text("# Notes\n\nThe lighthouse is painted red and white.\n")
        (model_workspace.evals_dir / "tiny.jsonl").write_text(
            '{"id": "a", "input": "Capital of France?", "expected": "Paris"}\n'
        )
        commands = [
            ("ingest", str(corpus), "-c", "demo"),
            ("search", "lighthouse colour", "-c", "demo"),
            ("ask", "hi", "-m", "remote/big"),
            ("compare", "Say hello.", "-m", "remote/big", "-m", "smollm2", "--max-tokens", "8"),
            ("workflows", "new", "rag", "--from", "rag"),
            ("run", "rag", "--input", "What colour is the lighthouse?"),
            ("eval", "run", "tiny", "-m", "remote/big"),
            *[("export", "rag", "-t", target) for target in ("langgraph", "litellm", "vllm", "otel")],
            ("traces", "list"),
            ("traces", "export", "--format", "otlp-json"),
            ("sql", "SELECT name, attributes, payload FROM spans"),
            ("doctor",),
            ("models", "list"),
        ]
        printed = []
        for command in commands:
            done = run_cli(*command, timeout=300)
            assert done.returncode == 0, f"workbench {' '.join(command)}: {done.stderr}"
            printed.append(done.stdout + done.stderr)
    finally:
        cloud.close()
    authorizations = {
        r["headers"].get("Authorization") or r["headers"].get("authorization") for r in cloud.requests
    }
    assert authorizations == {f"Bearer {PLANTED}"}, "the key went where it belongs"
    assert len(cloud.requests) >= 3, "ask, compare and the eval each called the cloud"
    for text in printed:
        assert PLANTED not in text
    exports = model_workspace.root / "exports"
    assert (exports / "rag" / "litellm").is_dir(), "the exports were written"
    litellm = "".join(p.read_text() for p in (exports / "rag" / "litellm").rglob("*") if p.is_file())
    assert "os.environ/REMOTE_KEY" in litellm, "exports name the variable, never its value"
    for path in model_workspace.root.rglob("*"):
        if path.is_file() and not path.is_symlink():
            assert PLANTED.encode() not in path.read_bytes(), path
    assert json.loads(run_cli("traces", "export", "--format", "otlp-json").stdout)["resourceSpans"]
