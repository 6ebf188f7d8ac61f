"""Tools through cloud endpoints (local_models/cloud_tools.py), against our loopback cloud that
streams calls as each API does: OpenAI-compatible endpoints get the tools and the tool turns as
they are, Anthropic's Messages API gets them mapped to its tool_use / tool_result blocks and back;
`auto` escalates a tool conversation whole; the gateway passes a cloud model's calls to the
openai SDK, whole and streamed."""

from __future__ import annotations

import json

import openai
import pytest

from local_models.cloud import CloudClient, RetryPolicy
from local_models.cloud_tools import anthropic_messages, anthropic_tool_fields
from local_models.types import GenerationParams
from tests.conftest import run_cli
from tests.fake_cloud import FakeCloud
from tests.test_server import free_port
from workbench.core.errors import UnsupportedParameter
from workbench.services import Service

WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "The current weather of a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}
EARLIER_CALL = {
    "id": "call_1",
    "type": "function",
    "function": {"name": "get_weather", "arguments": '{"city": "Oslo"}'},
}
CONVERSATION = [
    {"role": "system", "content": "Be brief."},
    {"role": "user", "content": "Weather in Oslo and Paris?"},
    {"role": "assistant", "content": "Oslo first.", "tool_calls": [EARLIER_CALL]},
    {"role": "tool", "tool_call_id": "call_1", "content": "rain, 5 C"},
]
# the upstream's answer: a call to get_weather for Paris, its arguments in three fragments
CALL = {"id": "toolu_01", "name": "get_weather", "arguments": ['{"ci', 'ty": "Pa', 'ris"}']}


def _calls_answer(body):
    return {"text": ["Now Paris."], "calls": [CALL]}


def _service(workspace, url: str, kind: str = "openai", extra: str = "") -> Service:
    workspace.config_path.write_text(
        f'[cloud.remote]\nkind = "{kind}"\nbase_url = "{url}"\nmodels = ["big"]\n{extra}'
    )
    service = Service(workspace.root)
    service.generation.use_cloud(CloudClient(service.config, service.tracer, False, RetryPolicy(attempts=1)))
    return service


def test_anthropic_shapes_both_ways():
    assert anthropic_messages(
        CONVERSATION + [{"role": "tool", "tool_call_id": "call_2", "content": "sun"}]
    ) == [
        {"role": "user", "content": "Weather in Oslo and Paris?"},
        {
            "role": "assistant",
            "content": [
                {"type": "text", "text": "Oslo first."},
                {"type": "tool_use", "id": "call_1", "name": "get_weather", "input": {"city": "Oslo"}},
            ],
        },
        # the results of one turn's calls in one user message
        {
            "role": "user",
            "content": [
                {"type": "tool_result", "tool_use_id": "call_1", "content": "rain, 5 C"},
                {"type": "tool_result", "tool_use_id": "call_2", "content": "sun"},
            ],
        },
    ]
    fields = anthropic_tool_fields(
        GenerationParams(tools=(WEATHER,), tool_choice="required", parallel_tool_calls=False)
    )
    assert fields == {
        "tools": [
            {
                "name": "get_weather",
                "input_schema": WEATHER["function"]["parameters"],
                "description": "The current weather of a city",
            }
        ],
        "tool_choice": {"type": "any", "disable_parallel_tool_use": True},
    }
    named = {"type": "function", "function": {"name": "get_weather"}}
    assert anthropic_tool_fields(GenerationParams(tools=(WEATHER,), tool_choice=named))["tool_choice"] == {
        "type": "tool",
        "name": "get_weather",
    }
    assert anthropic_tool_fields(GenerationParams(tools=(WEATHER,), tool_choice="none"))["tool_choice"] == {
        "type": "none"
    }


@pytest.mark.parametrize("kind", ["openai", "anthropic"])
def test_a_cloud_model_gets_the_tools_and_its_calls_come_back(workspace, kind):
    upstream = FakeCloud(answer=_calls_answer)
    try:
        service = _service(workspace, upstream.url, kind)
        pieces: list[str] = []
        params = GenerationParams(
            tools=(WEATHER,), tool_choice="required", parallel_tool_calls=False, max_tokens=64
        )
        result = service.chat("remote/big", CONVERSATION, params, on_text=pieces.append)
    finally:
        upstream.close()
    assert result.finish_reason == "tool_calls"
    assert result.tool_calls == [
        {
            "id": "toolu_01",
            "type": "function",
            "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
        }
    ]
    assert result.text == "Now Paris." == "".join(pieces)
    body = upstream.requests[0]["body"]
    if kind == "openai":
        # as they are: the earlier call, its result, the tools and the choice
        assert body["messages"] == CONVERSATION
        assert (body["tools"], body["tool_choice"], body["parallel_tool_calls"]) == (
            [WEATHER],
            "required",
            False,
        )
    else:
        assert body["system"] == "Be brief." and body["messages"] == anthropic_messages(CONVERSATION)
        assert body["tool_choice"] == {"type": "any", "disable_parallel_tool_use": True}
        assert body["tools"][0]["input_schema"] == WEATHER["function"]["parameters"]
    service.flush_traces()
    llm = next(s for s in service.get_trace(result.trace_id) if s["name"] == "llm.chat")
    assert json.loads(llm["payload"])["tool_calls"] == result.tool_calls


def test_a_choice_naming_no_tool_is_refused_before_the_cloud_is_asked(workspace):
    upstream = FakeCloud(answer=_calls_answer)
    try:
        service = _service(workspace, upstream.url)
        named = {"type": "function", "function": {"name": "nope"}}
        with pytest.raises(UnsupportedParameter, match="tool_choice names 'nope'"):
            service.chat("remote/big", CONVERSATION, GenerationParams(tools=(WEATHER,), tool_choice=named))
    finally:
        upstream.close()
    assert not upstream.requests


def test_auto_escalates_a_tool_conversation_whole(model_workspace):
    upstream = FakeCloud(answer=_calls_answer)
    try:
        service = _service(
            model_workspace, upstream.url, extra='[router]\nlocal = "smollm2"\nescalate_to = "remote/big"\n'
        )
        # 3 tokens cannot hold the local model's call: the cloud gets the conversation as it is
        params = GenerationParams(temperature=0, max_tokens=3, tools=(WEATHER,), tool_choice="required")
        result = service.chat("auto", CONVERSATION, params)
    finally:
        upstream.close()
    assert result.extra["route"] == "cloud"
    assert result.extra["escalation_reason"] == "the local tool call was cut at max_tokens (3)"
    assert result.tool_calls[0]["function"]["arguments"] == '{"city": "Paris"}'
    body = upstream.requests[0]["body"]
    assert body["messages"] == CONVERSATION and body["tools"] == [WEATHER]


def test_the_gateway_gives_a_cloud_models_calls_to_the_openai_sdk(model_workspace):
    upstream = FakeCloud(answer=_calls_answer)
    model_workspace.config_path.write_text(f'[cloud.remote]\nbase_url = "{upstream.url}"\nmodels = ["big"]\n')
    port = free_port()
    run_cli("serve", "--port", str(port), "--background", check=True)
    try:
        client = openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="unused", max_retries=0)
        whole = client.chat.completions.create(model="remote/big", messages=CONVERSATION, tools=[WEATHER])
        (call,) = whole.choices[0].message.tool_calls
        assert whole.choices[0].finish_reason == "tool_calls"
        assert (call.id, call.function.name, call.function.arguments) == (
            "toolu_01",
            "get_weather",
            '{"city": "Paris"}',
        )
        streamed = client.chat.completions.create(
            model="remote/big", messages=CONVERSATION, tools=[WEATHER], stream=True
        )
        deltas = [chunk.choices[0].delta for chunk in streamed if chunk.choices]
        named = [d.tool_calls[0] for d in deltas if d.tool_calls]
        assert named[0].id == "toolu_01" and named[0].function.name == "get_weather"
        assert "".join(d.function.arguments or "" for d in named) == '{"city": "Paris"}'
    finally:
        run_cli("serve", "--stop")
        upstream.close()
    assert upstream.requests[0]["body"]["tools"] == [WEATHER]
