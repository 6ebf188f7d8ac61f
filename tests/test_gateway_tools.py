"""Function calling through `workbench serve`, as the openai SDK does it: `tools` in, `tool_calls`
out (whole and streamed, as OpenAI streams them), the call's result sent back and answered. The
GGUFs packaged here carry no tool-aware chat template, so the calls are held by a grammar made
from the tools' parameter schemas (local_models/tool_calls.py): what is measured is that the
mechanism gives a call that parses and fits its schema, not the tiny models' judgement."""

from __future__ import annotations

import json

import httpx
import jsonschema
import openai
import pytest

from tests.test_server import gateway  # noqa: F401 - the fixture

# Model-heavy gateway tests run one at a time across the xdist workers (conftest.decoding_alone):
# two llama.cpp processes decoding at once on 2 cores spin against each other (ggml's barriers
# busy-wait), and the 32x20 load test beside another decoding test slowed both past their timeouts.
pytestmark = pytest.mark.usefixtures("decoding_alone")

WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "The current weather of a city",
        "parameters": {
            "type": "object",
            "properties": {
                "city": {"type": "string"},
                "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
            },
            "required": ["city"],
        },
    },
}
TIME = {
    "type": "function",
    "function": {
        "name": "get_time",
        "description": "The local time in a time zone",
        "parameters": {"type": "object", "properties": {"zone": {"type": "string"}}, "required": ["zone"]},
    },
}
QUESTION = [{"role": "user", "content": "What is the weather in Paris?"}]


def _valid(call, tools=(WEATHER, TIME)) -> dict:
    """The call's arguments, checked against its tool's schema."""
    schema = next(t["function"]["parameters"] for t in tools if t["function"]["name"] == call.function.name)
    arguments = json.loads(call.function.arguments)
    jsonschema.validate(arguments, schema)
    assert call.id.startswith("call_") and call.type == "function"
    return arguments


def test_gemma_returns_a_call_that_fits_too(gateway):  # noqa: F811
    # Gemma 3's vocabulary (262k tokens) makes each grammar-held token dear on CPU: one call here,
    # the whole conversation on SmolLM2 below.
    client = openai.OpenAI(base_url=f"{gateway}/v1", api_key="unused", max_retries=0)
    asked = client.chat.completions.create(
        model="gemma3-270m",
        messages=QUESTION,
        tools=[WEATHER],
        tool_choice="required",
        parallel_tool_calls=False,  # it repeats a call otherwise, up to the cap of 4
        temperature=0,
        max_tokens=100,
    )
    assert asked.choices[0].finish_reason == "tool_calls"
    for call in asked.choices[0].message.tool_calls:
        _valid(call)


def test_required_tool_calls_whole_and_streamed_then_the_result_is_answered(gateway):  # noqa: F811
    model = "smollm2"
    client = openai.OpenAI(base_url=f"{gateway}/v1", api_key="unused", max_retries=0)
    asked = client.chat.completions.create(
        model=model,
        messages=QUESTION,
        tools=[WEATHER, TIME],
        tool_choice="required",
        temperature=0,
        max_tokens=200,
    )
    choice = asked.choices[0]
    assert choice.finish_reason == "tool_calls" and choice.message.content is None
    calls = choice.message.tool_calls
    assert 1 <= len(calls) <= 4
    for call in calls:
        _valid(call)

    streamed = client.chat.completions.create(
        model=model,
        messages=QUESTION,
        tools=[WEATHER, TIME],
        tool_choice="required",
        temperature=0,
        max_tokens=200,
        stream=True,
    )
    pieces: dict[int, dict] = {}
    finish = None
    for chunk in streamed:
        for delta_call in chunk.choices[0].delta.tool_calls or []:
            entry = pieces.setdefault(delta_call.index, {"id": None, "name": None, "arguments": ""})
            if delta_call.id:
                assert entry["id"] is None, "id and name come once, first"
                entry.update(id=delta_call.id, name=delta_call.function.name)
            entry["arguments"] += delta_call.function.arguments or ""
        finish = chunk.choices[0].finish_reason or finish
    assert finish == "tool_calls"
    assert [(p["name"], json.loads(p["arguments"])) for p in pieces.values()] == [
        (c.function.name, json.loads(c.function.arguments)) for c in calls
    ], "the same calls at temperature 0, streamed"

    # the second turn: the assistant's calls (content null) and their results. The call ids
    # are fixed: the gateway's are random, they are part of the prompt, and at temperature 0 a
    # different prompt is a different answer (CI: SmolLM2 spent the 200 tokens of one such
    # prompt on the JSON's whitespace and answered nothing).
    named = [{**c.model_dump(), "id": f"call_{n}"} for n, c in enumerate(calls)]
    follow = QUESTION + [
        {"role": "assistant", "content": None, "tool_calls": named},
        *[
            {
                "role": "tool",
                "tool_call_id": c["id"],
                "content": json.dumps({"temperature": 21, "sky": "sunny"}),
            }
            for c in named
        ],
    ]
    answered = client.chat.completions.create(
        model=model, messages=follow, tools=[WEATHER, TIME], tool_choice="none", temperature=0, max_tokens=48
    )
    assert answered.choices[0].message.content and not answered.choices[0].message.tool_calls
    again = client.chat.completions.create(
        model=model, messages=follow, tools=[WEATHER, TIME], temperature=0, max_tokens=200
    )
    reply = again.choices[0]
    # auto: the model chooses; whichever it chose is well formed
    if reply.finish_reason == "tool_calls":
        for call in reply.message.tool_calls:
            _valid(call)
    else:
        assert reply.message.content


def test_named_choice_no_parallel_and_what_is_refused(gateway):  # noqa: F811
    client = openai.OpenAI(base_url=f"{gateway}/v1", api_key="unused", max_retries=0)
    named = client.chat.completions.create(
        model="smollm2",
        messages=QUESTION,
        tools=[WEATHER, TIME],
        tool_choice={"type": "function", "function": {"name": "get_time"}},
        parallel_tool_calls=False,
        temperature=0,
        max_tokens=120,
    )
    calls = named.choices[0].message.tool_calls
    assert len(calls) == 1 and calls[0].function.name == "get_time"
    _valid(calls[0])
    plain = client.chat.completions.create(
        model="smollm2", messages=QUESTION, tools=[WEATHER], tool_choice="none", max_tokens=8
    )
    assert plain.choices[0].message.tool_calls is None and plain.choices[0].message.content is not None

    def refused(body: dict) -> dict:
        answer = httpx.post(
            f"{gateway}/v1/chat/completions", json={"model": "smollm2", "max_tokens": 8, **body}, timeout=60
        )
        assert answer.status_code == 400, answer.text
        return answer.json()["error"]

    unconvertible = {
        **WEATHER,
        "function": {
            **WEATHER["function"],
            "parameters": {"type": "object", "properties": {"x": {"$ref": "#/nowhere"}}},
        },
    }
    error = refused({"messages": QUESTION, "tools": [TIME, unconvertible]})
    assert error["param"] == "tools.1.function.parameters" and "get_weather" in error["message"]
    error = refused(
        {
            "messages": QUESTION,
            "tools": [WEATHER],
            "tool_choice": {"type": "function", "function": {"name": "nope"}},
        }
    )
    assert error["param"] == "tool_choice"
    error = refused({"messages": QUESTION, "tool_choice": "required"})
    assert error["param"] == "tool_choice"
    error = refused({"messages": [{"role": "tool", "content": "21 C"}]})
    assert error["param"].startswith("messages.0")
    error = refused({"messages": QUESTION, "functions": [WEATHER["function"]]})
    assert error["param"] == "functions" and "tools" in error["message"]


def test_the_responses_api_calls_functions_and_takes_their_output(gateway):  # noqa: F811
    client = openai.OpenAI(base_url=f"{gateway}/v1", api_key="unused", max_retries=0)
    flat = [{"type": "function", **WEATHER["function"]}]  # the Responses API's tool shape
    asked = client.responses.create(
        model="smollm2",
        input="What is the weather in Paris?",
        tools=flat,
        tool_choice="required",
        temperature=0,
        max_output_tokens=200,
    )
    assert asked.status == "completed" and asked.output[0].type == "function_call"
    call = asked.output[0]
    assert call.name == "get_weather" and call.call_id.startswith("call_")
    jsonschema.validate(json.loads(call.arguments), WEATHER["function"]["parameters"])

    with client.responses.stream(
        model="smollm2",
        input="What is the weather in Paris?",
        tools=flat,
        tool_choice="required",
        temperature=0,
        max_output_tokens=200,
    ) as stream:
        kinds = [event.type for event in stream]
        final = stream.get_final_response()
    assert kinds[:3] == ["response.created", "response.in_progress", "response.output_item.added"]
    assert "response.function_call_arguments.delta" in kinds and kinds[-1] == "response.completed"
    assert "response.output_text.delta" not in kinds
    assert final.output[0].arguments == call.arguments, "the same call at temperature 0"

    answered = client.responses.create(
        model="smollm2",
        previous_response_id=asked.id,
        input=[{"type": "function_call_output", "call_id": call.call_id, "output": "sunny, 21 C"}],
        tools=flat,
        tool_choice="none",
        temperature=0,
        max_output_tokens=40,
    )
    assert answered.output[0].type == "message" and answered.output_text.strip()
    conversation = [
        {"role": "user", "content": "What is the weather in Paris?"},
        {"type": "function_call", "call_id": call.call_id, "name": call.name, "arguments": call.arguments},
        {"type": "function_call_output", "call_id": call.call_id, "output": "sunny, 21 C"},
    ]
    whole = client.responses.create(model="smollm2", input=conversation, temperature=0, max_output_tokens=40)
    assert whole.output_text == answered.output_text, "the same conversation, sent whole or by reference"
    with pytest.raises(openai.BadRequestError) as refused:
        client.responses.create(model="smollm2", input=[{"type": "web_search_call", "id": "x"}])
    assert refused.value.param == "input.0"
