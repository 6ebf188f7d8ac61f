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


def test_a_key_an_upstream_echoes_back_is_scrubbed_everywhere(model_workspace, tmp_path, monkeypatch):
    """An endpoint answering 401 "Incorrect API key provided: Bearer <key>": the key reaches no
    printed line, span error, eval result, usage figure, export, gateway answer or log."""
    import httpx

    from tests.test_server import free_port
    from workbench.services import Service

    monkeypatch.setenv("REMOTE_KEY", PLANTED)
    monkeypatch.setenv("GATEWAY_KEY", "gw-" + "Q9z" * 12)
    cloud = FakeCloud(script=["echo401"] * 100)
    port = free_port()
    try:
        model_workspace.config_path.write_text(
            f'[cloud.remote]\nbase_url = "{cloud.url}"\napi_key_env = "REMOTE_KEY"\nmodels = ["big"]\n'
            '[server]\nkeys = ["GATEWAY_KEY"]\n'
        )
        (model_workspace.evals_dir / "tiny.jsonl").write_text(
            '{"id": "a", "input": "Capital of France?", "expected": "Paris"}\n'
        )
        asked = run_cli("ask", "hi", "-m", "remote/big")
        assert asked.returncode != 0 and "Incorrect API key provided" in asked.stderr
        printed = [asked.stdout + asked.stderr]
        for command in [
            ("eval", "run", "tiny", "-m", "remote/big", "--json"),
            ("usage", "--json"),
            ("traces", "export", "--format", "otlp-json"),
            ("sql", "SELECT error, attributes, payload FROM spans"),
        ]:
            done = run_cli(*command, timeout=300)
            printed.append(done.stdout + done.stderr)
        run_cli("serve", "--port", str(port), "--background", check=True)
        try:
            url = f"http://127.0.0.1:{port}"
            headers = {"authorization": "Bearer " + "gw-" + "Q9z" * 12}
            body = {"model": "remote/big", "messages": [{"role": "user", "content": "hi"}]}
            for stream in (False, True):
                answer = httpx.post(
                    f"{url}/v1/chat/completions", json={**body, "stream": stream}, headers=headers
                )
                assert answer.status_code == 502 and "Incorrect API key provided" in answer.text
                printed.append(answer.text)
            health = httpx.get(f"{url}/health")
            printed.append(health.text)
        finally:
            run_cli("serve", "--stop")
    finally:
        cloud.close()
    assert len(cloud.requests) >= 4, "ask, the eval and the gateway each reached the endpoint"
    sent = {r["headers"].get("Authorization") or r["headers"].get("authorization") for r in cloud.requests}
    assert sent == {f"Bearer {PLANTED}"}
    assert any("[REDACTED:secret]" in text for text in printed), "the echo is kept, the key masked"
    for text in printed:
        assert PLANTED not in text and "Q9z" * 12 not in text
    service = Service(model_workspace.root)
    _, errors = service.sql("SELECT error FROM spans WHERE error IS NOT NULL")
    assert errors and all(PLANTED not in e for (e,) in errors)
    _, results = service.sql("SELECT error FROM eval_results")
    assert results and all(PLANTED not in (e or "") for (e,) in results)
    log = (model_workspace.root / "server.log").read_text()
    assert PLANTED not in log and "Q9z" * 12 not in log
    # what holds prompts, answers and quoted errors is the owner's only
    for name in ("traces.duckdb", "server.log"):
        assert (model_workspace.root / name).stat().st_mode & 0o777 == 0o600, name
    for segment in (model_workspace.root / "spool").glob("*.parquet"):
        assert segment.stat().st_mode & 0o777 == 0o600, segment
