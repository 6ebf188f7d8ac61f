"""Grammar-held tool calls (local_models/tool_calls.py): the conversation rewrite, the parse, and
calls from SmolLM2 that fit their tool's schema on 100 schemas hypothesis makes up."""

from __future__ import annotations

import json

import jsonschema
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from local_models import tool_calls
from workbench.core.errors import UnsupportedParameter

# Model-heavy gateway tests run one at a time across the xdist workers (conftest.decoding_alone):
# two llama.cpp processes decoding at once on 2 cores spin against each other (ggml's barriers
# busy-wait), and the 32x20 load test beside another decoding test slowed both past their timeouts.
pytestmark = pytest.mark.usefixtures("decoding_alone")

NAME = st.from_regex(r"[a-z][a-z_]{2,10}", fullmatch=True)
LEAF = st.one_of(
    st.just({"type": "string", "maxLength": 12}),
    st.just({"type": "integer", "minimum": 0, "maximum": 999}),
    st.just({"type": "number"}),
    st.just({"type": "boolean"}),
    st.lists(st.from_regex(r"[a-z]{3,8}", fullmatch=True), min_size=2, max_size=4, unique=True).map(
        lambda values: {"type": "string", "enum": values}
    ),
    st.just({"type": "array", "items": {"type": "integer", "minimum": 0, "maximum": 99}, "maxItems": 3}),
)


@st.composite
def object_schema(draw, depth: int = 0):
    names = draw(st.lists(NAME, min_size=1, max_size=4, unique=True))
    properties = {
        name: draw(object_schema(depth + 1)) if depth == 0 and draw(st.booleans()) and i == 0 else draw(LEAF)
        for i, name in enumerate(names)
    }
    required = draw(st.lists(st.sampled_from(names), unique=True))
    schema = {"type": "object", "properties": properties}
    if required:
        schema["required"] = required
    return schema


def _tool(name: str, parameters: dict) -> dict:
    return {
        "type": "function",
        "function": {"name": name, "description": f"Does {name}", "parameters": parameters},
    }


@pytest.fixture(scope="module")
def service(tmp_path_factory, fetched_models):
    from workbench.services import Service, init_workspace

    root, _ = init_workspace(tmp_path_factory.mktemp("tools"))
    for entry in fetched_models.iterdir():
        if not entry.name.startswith("."):
            (root / "models" / entry.name).symlink_to(entry)
    service = Service(root)
    yield service
    service.close()


@settings(max_examples=1, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
@given(tools=st.lists(st.tuples(NAME, object_schema()), min_size=100, max_size=100))
def test_calls_fit_their_schema(service, tools):
    """100 schemas at once (one hypothesis example of 100): asked together, the local model
    decodes them in one batch, four at a time."""
    import concurrent.futures

    def call(entry):
        name, schema = entry
        return service.chat(
            "smollm2",
            [{"role": "user", "content": f"Call {name} for the user."}],
            {
                "temperature": 0,
                "max_tokens": 256,
                "tools": (_tool(name, schema),),
                "tool_choice": "required",
                "parallel_tool_calls": False,
            },
        )

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        results = list(pool.map(call, tools))
    for (name, schema), result in zip(tools, results):
        assert result.finish_reason == "tool_calls", (schema, result.extra.get("unfinished_tool_answer"))
        (made,) = result.tool_calls
        assert made["function"]["name"] == name
        jsonschema.validate(json.loads(made["function"]["arguments"]), schema)


def test_a_conversation_with_calls_and_results_is_rewritten_for_any_template():
    weather = tool_calls.check_tools(
        [_tool("get_weather", {"type": "object", "properties": {"city": {"type": "string"}}})]
    )
    call = {
        "id": "call_1",
        "type": "function",
        "function": {"name": "get_weather", "arguments": '{"city": "Oslo"}'},
    }
    messages = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Weather in Oslo?"},
        {"role": "assistant", "content": None, "tool_calls": [call]},
        {"role": "tool", "tool_call_id": "call_1", "content": "rain"},
        {"role": "tool", "tool_call_id": "call_1", "content": "5 C"},
    ]
    calling = tool_calls.prompt_messages(messages, weather, "auto")
    assert [m["role"] for m in calling] == ["system", "user", "assistant", "user"], "roles alternate"
    assert (
        calling[0]["content"].startswith("Be brief.\n\nYou can call tools.")
        and "earlier calls" in calling[0]["content"]
    )
    assert json.loads(calling[2]["content"]) == {
        "tool_calls": [{"name": "get_weather", "arguments": {"city": "Oslo"}}]
    }
    assert (
        calling[3]["content"]
        == "Result of tool get_weather (call call_1):\nrain\n\nResult of tool get_weather (call call_1):\n5 C"
    )
    words = tool_calls.prompt_messages(messages, weather, "none")
    assert (
        words[2]["content"] == 'I called get_weather({"city": "Oslo"}).'
        and "plain words" in words[0]["content"]
    )
    assert tool_calls.repeats(messages, [call]) and not tool_calls.repeats(
        messages, [{**call, "function": {"name": "get_weather", "arguments": '{"city": "Bergen"}'}}]
    )


def test_the_parse_and_what_is_refused():
    content, calls = tool_calls.parse_answer(
        '{"tool_calls": [{"name": "f", "arguments": {"a": 1}}, {"name": "f", "arguments": {"a": 1}}]}', "m"
    )
    assert content is None and len(calls) == 1 and json.loads(calls[0]["function"]["arguments"]) == {"a": 1}
    assert tool_calls.parse_answer('{"response": "hi"}', "m") == ("hi", [])
    schema = tool_calls.call_schema(
        tool_calls.check_tools([_tool("f", {"type": "object"})]), "auto", parallel=False
    )
    jsonschema.validate({"tool_calls": [{"name": "f", "arguments": {}}]}, schema)
    jsonschema.validate({"response": "hi"}, schema)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({"tool_calls": [{"name": "f", "arguments": {}}] * 2}, schema)
    for bad, param in [
        ([{"type": "retrieval"}], "tools.0"),
        ([_tool("", {})], "tools.0.function.name"),
        ([_tool("f", {"type": "object"}), _tool("f", {"type": "object"})], "tools"),
    ]:
        with pytest.raises(UnsupportedParameter) as caught:
            tool_calls.check_tools(bad)
        assert caught.value.param == param


def test_the_whole_calls_of_an_answer_cut_short_are_kept():
    cut = '{ "tool_calls": [{"name": "f", "arguments": {"a": 1}}, {"name": "f", "arguments": {"a": 1}}, {"'
    assert json.loads(tool_calls.complete_calls(cut)) == {
        "tool_calls": [{"name": "f", "arguments": {"a": 1}}, {"name": "f", "arguments": {"a": 1}}]
    }
    assert tool_calls.complete_calls('{"tool_calls": [{"name": "f", "argu') is None
    assert tool_calls.complete_calls('{"response": "It is') is None
