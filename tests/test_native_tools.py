"""Function calling through a model's own chat template (local_models/native_tools.py): the
formats models write their calls in, read back as OpenAI tool calls; and, end to end, SmolLM2
given a tool-aware template (Qwen 2.5's Hermes-style one, written into a copy of its GGUF with
the `gguf` package, as a model from the Hub carries it)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from local_models.native_tools import parse_native, tool_format
from local_models.tool_calls import check_tools
from workbench.core.errors import ModelError

pytestmark = pytest.mark.usefixtures("decoding_alone")

TEMPLATE = Path(__file__).parent / "data" / "hermes_tools.jinja"
WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather of a city",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}, "days": {"type": "integer", "minimum": 1}},
            "required": ["city"],
        },
    },
}
TOOLS = check_tools([WEATHER], grammar=False)


def _calls(calls):
    return [(c["function"]["name"], json.loads(c["function"]["arguments"])) for c in calls]


@pytest.mark.parametrize(
    "fmt, text, content, expected",
    [
        (
            "hermes",
            'Let me look.\n<tool_call>\n{"name": "get_weather", "arguments": {"city": "Oslo"}}\n</tool_call>\n'
            '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Rome", "days": 2}}\n</tool_call>',
            "Let me look.",
            [("get_weather", {"city": "Oslo"}), ("get_weather", {"city": "Rome", "days": 2})],
        ),
        # cut before its closing tag (a stop string took it): still one call
        (
            "hermes",
            '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Oslo"}}',
            None,
            [("get_weather", {"city": "Oslo"})],
        ),
        (
            "llama3",
            '<|python_tag|>{"name": "get_weather", "parameters": {"city": "a;b"}}; '
            '{"name": "get_weather", "parameters": {"city": "Rome"}}',
            None,
            [("get_weather", {"city": "a;b"}), ("get_weather", {"city": "Rome"})],
        ),
        (
            "llama3",
            '{"name": "get_weather", "parameters": {"city": "Oslo"}}',
            None,
            [("get_weather", {"city": "Oslo"})],
        ),
        (
            "mistral",
            '[TOOL_CALLS][{"name": "get_weather", "arguments": {"city": "Oslo"}}]',
            None,
            [("get_weather", {"city": "Oslo"})],
        ),
        (
            "mistral",
            'Sure. [TOOL_CALLS]get_weather[ARGS]{"city": "Oslo"}[TOOL_CALLS]get_weather[ARGS]{"city": "Rome"}',
            "Sure.",
            [("get_weather", {"city": "Oslo"}), ("get_weather", {"city": "Rome"})],
        ),
        (
            "json",
            '```json\n{"name": "get_weather", "arguments": {"city": "Oslo"}}\n```',
            None,
            [("get_weather", {"city": "Oslo"})],
        ),
        (
            "json",
            '{"tool_calls": [{"name": "get_weather", "arguments": "{\\"city\\": \\"Oslo\\"}"}]}',
            None,
            [("get_weather", {"city": "Oslo"})],
        ),
    ],
)
def test_each_format_reads_as_openai_tool_calls(fmt, text, content, expected):
    got_content, calls = parse_native(text, fmt, "m", TOOLS)
    assert got_content == content
    assert _calls(calls) == expected
    assert all(c["id"].startswith("call_") and c["type"] == "function" for c in calls)


@pytest.mark.parametrize(
    "text",
    [
        "It is sunny in Oslo.",
        '{"city": "Oslo", "weather": "rain"}',  # JSON the user asked for is an answer, not a call
        "[1, 2, 3]",
    ],
)
def test_text_without_a_call_is_the_answer(text):
    assert parse_native(text, "hermes", "m", TOOLS) == (text, [])


@pytest.mark.parametrize(
    "text, says",
    [
        ("<tool_call>\n{name: get_weather}\n</tool_call>", "m wrote a <tool_call> call that is not JSON"),
        (
            '<tool_call>{"name": "rm_rf", "arguments": {}}</tool_call>',
            "m called 'rm_rf', which is not among the tools (get_weather)",
        ),
        ('<tool_call>{"name": "get_weather", "arguments": {"days": 0}}</tool_call>', "breaks its schema"),
    ],
)
def test_a_call_that_is_not_one_is_an_error_naming_the_model(text, says):
    with pytest.raises(ModelError) as raised:
        parse_native(text, "hermes", "m", TOOLS)
    assert says in str(raised.value)


def test_the_format_is_read_from_the_template():
    assert tool_format(TEMPLATE.read_text()) == "hermes"
    llama = "{% if tools %}{{ tools | tojson }}{% endif %}<|python_tag|>{{ messages }}"
    assert tool_format(llama) == "llama3"
    assert tool_format("{% for t in tools %}{{ t }}{% endfor %}[TOOL_CALLS]") == "mistral"
    assert tool_format("{% if tools %}{{ tools }}{% endif %}") == "json"
    # SmolLM2's own template never reads tools: the grammar path
    assert tool_format("{% for m in messages %}<|im_start|>{{ m['content'] }}{% endfor %}") is None
    assert tool_format(None) is None


@pytest.fixture(scope="module")
def native(tmp_path_factory, fetched_models):
    """A service with SmolLM2 under a tool-aware template, registered as `smol-tools`."""
    from workbench.services import Service, init_workspace

    folder = tmp_path_factory.mktemp("native")
    gguf = folder / "smol-tools.gguf"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "gguf.scripts.gguf_new_metadata",
            str(fetched_models / "SmolLM2-135M-Instruct.Q4_1.gguf"),
            str(gguf),
            "--chat-template-file",
            str(TEMPLATE),
            "--force",
        ],
        check=True,
        capture_output=True,
    )
    root, _ = init_workspace(folder / "ws")
    service = Service(root)
    service.register_model(str(gguf), "smol-tools")  # and used at once, in the same process
    yield service
    service.close()


def _span(service, trace_id: str) -> dict:
    service.tracer.flush()
    _, rows = service.sql(f"select attributes from spans where trace_id = '{trace_id}' and name = 'llm.chat'")
    return json.loads(rows[0][0])


def test_a_native_model_calls_through_its_own_template(native):
    params = {"temperature": 0, "max_tokens": 60, "tools": (WEATHER,)}
    asked = (
        'Repeat exactly: <tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n</tool_call>'
    )
    result = native.chat("smol-tools", [{"role": "user", "content": asked}], params)
    # SmolLM2-135M was never trained on tool calls: it copies the call it is shown, in the
    # template's format, and that text comes back as an OpenAI call
    assert result.finish_reason == "tool_calls" and result.text == ""
    assert _calls(result.tool_calls) == [("get_weather", {"city": "Paris"})]
    assert _span(native, result.trace_id)["workbench.tool_format"] == "hermes"
    assert native.model_info("smol-tools").tool_format == "hermes"  # `models show`, the Models screen

    # the template saw the tools: the same question without them is ~100 tokens shorter
    plain = native.chat("smol-tools", [{"role": "user", "content": asked}], {**params, "tools": ()})
    assert result.input_tokens - plain.input_tokens > 80

    # the next turn: the call as a client sends it back (arguments a JSON string, content
    # null) and its result, rendered by the template (its `tojson` needs an object)
    follow = [
        {"role": "user", "content": "What is the weather in Paris?"},
        {"role": "assistant", "content": None, "tool_calls": result.tool_calls},
        {"role": "tool", "tool_call_id": result.tool_calls[0]["id"], "content": "sunny, 21 C"},
    ]
    answer = native.chat("smol-tools", follow, params)
    assert answer.finish_reason == "stop" and answer.text and not answer.tool_calls


def test_a_required_call_on_a_native_model_is_held_by_the_grammar(native):
    result = native.chat(
        "smol-tools",
        [{"role": "user", "content": "Weather in Oslo?"}],
        {"temperature": 0, "max_tokens": 60, "tools": (WEATHER,), "tool_choice": "required"},
    )
    assert result.finish_reason == "tool_calls"
    assert result.tool_calls[0]["function"]["name"] == "get_weather"
    assert _span(native, result.trace_id)["workbench.tool_format"] == "grammar"
