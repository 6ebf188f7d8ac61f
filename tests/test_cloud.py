"""Cloud endpoints against real HTTP servers on loopback: our fault-injecting one (OpenAI and
Anthropic wire formats) and llama.cpp's own OpenAI-compatible server."""

from __future__ import annotations

import json
import os
import socket

import pytest

from local_models.cloud import CloudClient, RetryPolicy
from local_models.types import GenerationParams
from tests.conftest import llama_server
from tests.fake_cloud import ANSWER
from workbench.core.errors import CloudError
from workbench.services import Service

FAKE_KEY = "sk-test-" + "Zq9" * 12
FAST = RetryPolicy(attempts=3, base_delay_s=0.01, max_delay_s=0.05, read_timeout_s=1.0, connect_timeout_s=1.0)


def configure(workspace, url: str, kind: str = "openai", offline: bool = False) -> Service:
    workspace.config_path.write_text(
        f"offline = {str(offline).lower()}\n"
        f'[cloud.remote]\nkind = "{kind}"\nbase_url = "{url}"\napi_key_env = "FAKE_CLOUD_KEY"\n'
        f'models = ["big"]\nprices.big = {{ input_per_mtok = 2.0, output_per_mtok = 8.0 }}\n'
    )
    return Service(workspace.root)


def client(service: Service, policy: RetryPolicy = FAST) -> CloudClient:
    service.generation.use_cloud(CloudClient(service.config, service.tracer, service.offline, policy))
    return service.cloud


@pytest.fixture(autouse=True)
def fake_key(monkeypatch):
    monkeypatch.setenv("FAKE_CLOUD_KEY", FAKE_KEY)


def test_openai_stream_usage_cost_and_span(workspace, cloud):
    service = configure(workspace, cloud.url)
    client(service)
    pieces: list[str] = []
    result = service.ask("remote/big", "Capital of France?", system="Be brief.", on_text=pieces.append)
    assert pieces == ANSWER and result.text == "".join(ANSWER)
    assert (result.input_tokens, result.output_tokens, result.finish_reason) == (11, 6, "stop")
    assert result.cost_usd == pytest.approx((11 * 2.0 + 6 * 8.0) / 1e6)
    request = cloud.requests[0]
    assert request["path"] == "/v1/chat/completions"
    assert request["headers"]["authorization"] == f"Bearer {FAKE_KEY}"
    assert request["body"]["model"] == "big" and request["body"]["stream"] is True
    assert request["body"]["messages"][0] == {"role": "system", "content": "Be brief."}
    service.flush_traces()
    spans = {s["name"]: s for s in service.get_trace(result.trace_id)}
    llm = spans["llm.chat"]
    assert (llm["provider"], llm["model"], llm["cost_usd"]) == ("openai", "remote/big", result.cost_usd)
    assert spans["llm.attempt"]["status"] == "ok"


def test_anthropic_wire_format(workspace, cloud):
    service = configure(workspace, cloud.url, kind="anthropic")
    client(service)
    result = service.ask("remote/big", "Capital of France?", system="Be brief.")
    assert result.text == "".join(ANSWER) and (result.input_tokens, result.output_tokens) == (11, 6)
    request = cloud.requests[0]
    assert request["path"] == "/v1/messages"
    assert request["headers"]["x-api-key"] == FAKE_KEY and request["headers"]["anthropic-version"]
    assert request["body"]["system"] == "Be brief."
    assert all(m["role"] != "system" for m in request["body"]["messages"])


def test_rate_limit_then_success_is_retried(workspace, cloud):
    cloud.script = ["429", "500"]
    service = configure(workspace, cloud.url)
    client(service)
    result = service.ask("remote/big", "hi")
    assert result.text == "".join(ANSWER) and result.extra["attempts"] == 3
    service.flush_traces()
    attempts = [s for s in service.get_trace(result.trace_id) if s["name"] == "llm.attempt"]
    assert [a["status"] for a in attempts] == ["error", "error", "ok"]
    assert attempts[0]["error"] == "HTTP 429"


@pytest.mark.parametrize(
    "script,message",
    [
        (["500", "500", "500"], r"HTTP 500 \(3 attempts\)"),
        (["hang", "hang", "hang"], "timed out"),
        (["400"], "HTTP 400"),
        (["cut"], "characters had arrived"),
        (["malformed"], "malformed JSON"),
    ],
)
def test_faults_end_in_clear_errors(workspace, cloud, script, message):
    cloud.script = list(script)
    service = configure(workspace, cloud.url)
    client(service)
    shown: list[str] = []  # streamed to someone: text already shown is never asked for again
    with pytest.raises(CloudError, match=message) as info:
        service.ask("remote/big", "hi", on_text=shown.append)
    assert FAKE_KEY not in info.value.one_line()
    if script == ["400"]:
        assert len(cloud.requests) == 1, "a client error is not retried"


@pytest.mark.parametrize("fault", ["cut", "malformed"])
def test_a_broken_stream_nobody_watched_is_retried(workspace, cloud, fault):
    cloud.script = [fault]
    service = configure(workspace, cloud.url)
    client(service)
    result = service.ask("remote/big", "hi")  # no on_text: an eval, a grader
    assert result.text == "".join(ANSWER) and result.extra["attempts"] == 2


def test_connection_refused(workspace):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    service = configure(workspace, f"http://127.0.0.1:{port}/v1")
    client(service)
    with pytest.raises(CloudError, match="connection failed"):
        service.ask("remote/big", "hi")


def test_circuit_breaker_fails_fast(workspace, cloud):
    cloud.script = ["500"] * 10
    service = configure(workspace, cloud.url)
    client(service, RetryPolicy(attempts=1, breaker_failures=2, breaker_cooldown_s=60))
    for _ in range(2):
        with pytest.raises(CloudError, match="HTTP 500"):
            service.ask("remote/big", "hi")
    with pytest.raises(CloudError, match="failed 2 times in a row"):
        service.ask("remote/big", "hi")
    assert len(cloud.requests) == 2


def test_offline_mode_opens_no_outside_connection(workspace, monkeypatch):
    service = configure(workspace, "https://api.example.com/v1", offline=True)
    opened: list = []
    real_connect = socket.socket.connect

    def spy(sock, address):
        opened.append(address)
        return real_connect(sock, address)

    monkeypatch.setattr(socket.socket, "connect", spy)
    with pytest.raises(CloudError, match="offline mode"):
        service.ask("remote/big", "hi")
    assert not [a for a in opened if isinstance(a, tuple) and not str(a[0]).startswith("127.")]


def test_missing_key_is_named(workspace, cloud, monkeypatch):
    monkeypatch.delenv("FAKE_CLOUD_KEY")
    service = configure(workspace, cloud.url)
    with pytest.raises(CloudError, match=r"needs a key in \$FAKE_CLOUD_KEY"):
        service.ask("remote/big", "hi")


def test_key_is_nowhere_in_the_workspace(workspace, cloud):
    service = configure(workspace, cloud.url)
    client(service)
    service.ask("remote/big", "hi")
    cloud.script = ["500", "500", "500"]
    with pytest.raises(CloudError):
        service.ask("remote/big", "hi")
    service.flush_traces()
    export = json.dumps(service.export_otlp())
    assert FAKE_KEY not in export
    for path in workspace.root.rglob("*"):
        if path.is_file():
            assert FAKE_KEY.encode() not in path.read_bytes(), path


def test_llama_cpp_server_as_the_cloud(workspace, fetched_models):
    with llama_server(fetched_models / "SmolLM2-135M-Instruct.Q4_1.gguf", "smol") as url:
        service = configure(workspace, url)
        pieces: list[str] = []
        result = service.ask(
            "remote/smol",
            "Name a color.",
            params=GenerationParams(temperature=0, max_tokens=20),
            on_text=pieces.append,
        )
        assert result.text and "".join(pieces) == result.text
        assert result.input_tokens > 0 and 0 < result.output_tokens <= 20
        assert result.extra["usage_estimated"] is True  # llama.cpp's server streams no usage
        assert result.finish_reason in ("stop", "length") and result.ttft_s is not None
    assert os.environ.get("FAKE_CLOUD_KEY") == FAKE_KEY
