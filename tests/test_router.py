"""Local first, escalate with a reason: real SmolLM2 locally, the fake cloud on loopback."""

from __future__ import annotations

import json

import pytest

from local_models.cloud import CloudClient, RetryPolicy
from local_models.types import GenerationParams
from tests.conftest import run_cli
from tests.fake_cloud import ANSWER
from workbench.core.errors import ModelError
from workbench.services import Service

SCHEMA = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}


def routed(workspace, url: str, extra: str = "", offline: bool = False) -> Service:
    workspace.config_path.write_text(
        f"offline = {str(offline).lower()}\n"
        f'[cloud.remote]\nbase_url = "{url}"\nmodels = ["big"]\n'
        "prices.big = { input_per_mtok = 2.0, output_per_mtok = 8.0 }\n"
        f'[router]\nlocal = "smollm2"\nescalate_to = "remote/big"\n{extra}'
    )
    service = Service(workspace.root)
    policy = RetryPolicy(attempts=1, read_timeout_s=2)
    service.generation.use_cloud(CloudClient(service.config, service.tracer, service.offline, policy))
    return service


def test_good_local_answer_stays_local(model_workspace, cloud):
    service = routed(model_workspace, cloud.url)
    result = service.ask("auto", "Name a color.", params=GenerationParams(temperature=0, max_tokens=16))
    assert result.extra["route"] == "local" and result.model == "smollm2"
    assert not cloud.requests


def test_invalid_json_escalates_with_the_reason(model_workspace, cloud):
    service = routed(model_workspace, cloud.url)
    params = GenerationParams(temperature=0, max_tokens=3, json_schema=SCHEMA)  # too short to close the JSON
    pieces: list[str] = []
    result = service.ask("auto", "Which city is the capital of France?", params=params, on_text=pieces.append)
    assert result.extra["route"] == "cloud" and result.text == "".join(ANSWER) == "".join(pieces)
    assert "not valid against the JSON schema" in result.extra["escalation_reason"]
    service.flush_traces()
    spans = service.get_trace(result.trace_id)
    router = next(s for s in spans if s["name"] == "router.ask")
    attributes = json.loads(router["attributes"])
    assert attributes["workbench.route"] == "cloud"
    assert "JSON schema" in attributes["workbench.escalation_reason"]
    assert [s["provider"] for s in spans if s["name"] == "llm.chat"] == ["llama.cpp", "openai"]


def test_prompt_too_long_and_timeout_escalate(model_workspace, cloud):
    service = routed(model_workspace, cloud.url, "local_timeout_s = 0.3\n")
    long = service.ask("auto", "word " * 5000, params=GenerationParams(max_tokens=8))
    assert (
        long.extra["route"] == "cloud" and "does not fit the local context" in long.extra["escalation_reason"]
    )
    slow = service.ask(
        "auto", "Write a very long story.", params=GenerationParams(temperature=0, max_tokens=2000)
    )
    assert slow.extra["route"] == "cloud" and "timed out after 0.3 s" in slow.extra["escalation_reason"]


def test_daily_budget_refuses_escalation(model_workspace, cloud):
    service = routed(model_workspace, cloud.url, "daily_budget_usd = 0.00005\n")
    params = GenerationParams(temperature=0, max_tokens=3, json_schema=SCHEMA)
    first = service.ask("auto", "Capital of France?", params=params)
    assert first.extra["route"] == "cloud"  # costs $0.00007, past the budget
    second = service.ask("auto", "Capital of France?", params=params)
    assert second.extra["route"] == "local" and second.model == "smollm2"
    assert "reached the daily budget $0.00" in second.extra["escalation_refused"]
    assert len(cloud.requests) == 1


def test_offline_refuses_remote_escalation(model_workspace):
    service = routed(model_workspace, "https://api.example.com/v1", offline=True)
    result = service.ask(
        "auto", "Capital?", params=GenerationParams(temperature=0, max_tokens=3, json_schema=SCHEMA)
    )
    assert result.extra["route"] == "local" and "offline mode" in result.extra["escalation_refused"]


def test_no_router_configured(model_workspace):
    with pytest.raises(Exception, match=r"no \[router\] local model"):
        Service(model_workspace.root).ask("auto", "hi")


def test_local_failure_without_escalation_is_clear(model_workspace):
    model_workspace.config_path.write_text('[router]\nlocal = "smollm2"\n')
    service = Service(model_workspace.root)
    with pytest.raises(ModelError, match="does not fit the local context.*escalation was refused"):
        service.ask("auto", "word " * 5000)


def test_cli_shows_the_route(model_workspace, cloud):
    routed(model_workspace, cloud.url)
    result = run_cli(
        "ask",
        "-m",
        "auto",
        "-t",
        "0",
        "--max-tokens",
        "3",
        "--schema",
        str(schema_file(model_workspace)),
        "Capital of France?",
    )
    assert result.returncode == 0, result.stderr
    assert "".join(ANSWER) in result.stdout
    assert (
        "[route: cloud; escalated because the local answer is not valid against the JSON schema"
        in result.stderr
    )


def schema_file(workspace):
    path = workspace.root / "schema.json"
    path.write_text(json.dumps(SCHEMA))
    return path


def test_unsure_local_answer_escalates_on_mean_logprob(model_workspace, cloud):
    strict = routed(model_workspace, cloud.url, "min_mean_logprob = -0.001\n")
    params = GenerationParams(temperature=0, max_tokens=16)
    result = strict.ask("auto", "Name a color.", params=params)
    reason = result.extra["escalation_reason"]
    assert result.extra["route"] == "cloud" and "mean token log-probability" in reason and "-0.001" in reason
    strict.flush_traces()
    spans = strict.get_trace(result.trace_id)
    local_chat = next(s for s in spans if s["provider"] == "llama.cpp" and s["name"] == "llm.chat")
    assert json.loads(local_chat["attributes"])["workbench.mean_logprob"] < -0.001
    strict.models.close()

    lenient = routed(model_workspace, cloud.url, "min_mean_logprob = -50\n")
    assert lenient.ask("auto", "Name a color.", params=params).extra["route"] == "local"
    lenient.models.close()
