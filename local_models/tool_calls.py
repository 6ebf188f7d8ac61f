"""Function calling for local models whose chat template knows no tools (SmolLM2's and Gemma's
GGUFs carry none): the tools go into a system message, and a grammar made from their parameter
schemas holds the answer to one of two JSON shapes, so that even a 135M model returns a call
that parses and fits the schema:

    {"tool_calls": [{"name": "get_weather", "arguments": {"city": "Paris"}}]}
    {"response": "It is sunny in Paris."}

This is llama.cpp's "generic" tool format (its server uses it for templates without tools).
``tool_choice`` picks the shapes the grammar allows: "auto" both, "required" the calls only, a
named function that one only, "none" no tools at all. A conversation that holds earlier calls
(assistant messages with ``tool_calls``) and their results (``tool`` messages) is rewritten
into plain turns the template can render: the calls as the JSON the model writes, the results
as a user turn that names them.

Everything here is plain data in, plain data out: the OpenAI wire shapes (the gateway's typed
protocol turns its requests into these dicts), the JSON schema, the parse.
"""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass
from typing import Any

from workbench.core.errors import ModelError, UnsupportedParameter

__all__ = [
    "Tool",
    "check_tools",
    "check_choice",
    "call_schema",
    "prompt_messages",
    "parse_answer",
    "new_call_id",
    "needs_rewrite",
]


MAX_PARALLEL = 4  # calls one answer may hold


@dataclass(frozen=True)
class Tool:
    name: str
    description: str
    parameters: dict[str, Any]


def check_tools(tools: list[dict[str, Any]], grammar: bool = True) -> list[Tool]:
    """OpenAI ``tools`` ([{"type": "function", "function": {name, description, parameters}}])
    as Tools; with ``grammar`` (the calls are to be held by one), a tool whose parameters no
    grammar can hold is refused by name."""
    from llama_cpp import LlamaGrammar

    found: list[Tool] = []
    for index, raw in enumerate(tools):
        function = raw.get("function") if isinstance(raw, dict) else None
        if (
            not isinstance(raw, dict)
            or raw.get("type", "function") != "function"
            or not isinstance(function, dict)
        ):
            raise UnsupportedParameter(
                f"tools.{index}", "each tool must be {'type': 'function', 'function': {...}}"
            )
        name = function.get("name")
        if not isinstance(name, str) or not name or len(name) > 64:
            raise UnsupportedParameter(
                f"tools.{index}.function.name", "a tool needs a name of 1 to 64 characters"
            )
        parameters = function.get("parameters") or {"type": "object", "properties": {}}
        if not isinstance(parameters, dict):
            raise UnsupportedParameter(
                f"tools.{index}.function.parameters", f"tool {name}: parameters must be a JSON schema"
            )
        try:
            if grammar:
                LlamaGrammar.from_json_schema(json.dumps(parameters), verbose=False)
        except Exception as exc:  # noqa: BLE001 - the converter raises what it raises; say which tool
            raise UnsupportedParameter(
                f"tools.{index}.function.parameters",
                f"tool {name}: its parameters schema cannot be turned into a grammar ({type(exc).__name__}: {exc})",
            ) from None
        found.append(Tool(name, str(function.get("description") or ""), parameters))
    names = [tool.name for tool in found]
    if len(set(names)) != len(names):
        raise UnsupportedParameter("tools", "two tools share a name")
    return found


def _chosen(tools: list[Tool], choice: Any) -> tuple[list[Tool], bool]:
    """The tools the answer may call and whether it must call one."""
    if choice in (None, "auto"):
        return tools, False
    if choice == "required":
        return tools, True
    if isinstance(choice, dict):
        name = (choice.get("function") or {}).get("name") if choice.get("type") == "function" else None
        match = [tool for tool in tools if tool.name == name]
        if not match:
            raise UnsupportedParameter(
                "tool_choice", f"tool_choice names {name!r}, which is not among the tools"
            )
        return match, True
    raise UnsupportedParameter(
        "tool_choice", "tool_choice is none, auto, required or {'type': 'function', ...}"
    )


def check_choice(tools: list[Tool], choice: Any) -> None:
    """Refuse a ``tool_choice`` that names no tool of the request, or is no choice at all."""
    _chosen(tools, choice)


def call_schema(tools: list[Tool], choice: Any, parallel: bool = True) -> dict[str, Any]:
    """The JSON schema the answer is held to (its grammar)."""
    allowed, required = _chosen(tools, choice)
    one_call = [
        {
            "type": "object",
            "properties": {"name": {"const": tool.name}, "arguments": held(tool.parameters)},
            "required": ["name", "arguments"],
        }
        for tool in allowed
    ]
    calls: dict[str, Any] = {
        "type": "object",
        "properties": {
            "tool_calls": {
                "type": "array",
                "items": one_call[0] if len(one_call) == 1 else {"oneOf": one_call},
                "minItems": 1,
                # Small models repeat a call until max_tokens (Gemma 3 270M wrote the same call
                # five times over): a few parallel calls at most, duplicates dropped in parse.
                "maxItems": MAX_PARALLEL if parallel else 1,
            }
        },
        "required": ["tool_calls"],
    }
    if required:
        return calls
    # minLength: an empty answer after the tool results (SmolLM2 gave one) answers nothing
    answer = {
        "type": "object",
        "properties": {"response": {"type": "string", "minLength": 1}},
        "required": ["response"],
    }
    return {"oneOf": [calls, answer]}


# Integer ranges up to this many values become an enum: llama-cpp-python's schema grammar
# ignores minimum and maximum, an enum it holds exactly.
ENUM_RANGE = 1000


def held(schema: Any) -> Any:
    """``schema`` as the grammar is made from: what the converter would ignore turned into what
    it holds (small integer ranges as enums). Constraints left unheld (number ranges, large
    integer ranges, multipleOf) are checked on the parsed call (`check_arguments`)."""
    if isinstance(schema, list):
        return [held(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    out = {key: held(value) for key, value in schema.items()}
    low, high = schema.get("minimum"), schema.get("maximum")
    if schema.get("type") == "integer" and isinstance(low, int) and isinstance(high, int):
        low += 1 if schema.get("exclusiveMinimum") is True else 0
        high -= 1 if schema.get("exclusiveMaximum") is True else 0
        if 0 <= high - low < ENUM_RANGE and "enum" not in schema:
            out = {"enum": list(range(low, high + 1))}
    return out


def check_arguments(tool: Tool, arguments: Any, model: str) -> None:
    """Refuse a call whose arguments break its tool's schema where the grammar could not hold it."""
    import jsonschema

    try:
        jsonschema.validate(arguments, tool.parameters)
    except jsonschema.ValidationError as exc:
        where = "/".join(str(part) for part in exc.absolute_path) or "(the arguments)"
        raise ModelError(
            f"{model}'s call to {tool.name} breaks its schema at {where}: {exc.message}",
            "the grammar holds types and shapes; ranges it cannot hold are checked after: ask again",
        ) from None
    except jsonschema.SchemaError:
        return  # a schema jsonschema cannot read: the grammar's shape is what holds


def _instructions(tools: list[Tool], choice: Any, answered: bool = False) -> str:
    """The system message's part on tools; ``answered``: the conversation holds tool results
    already (small models otherwise call the same tool again and again)."""
    allowed, required = _chosen(tools, choice)
    listed = json.dumps(
        [{"name": t.name, "description": t.description, "parameters": t.parameters} for t in allowed],
        ensure_ascii=False,
    )
    shape = '{"tool_calls": [{"name": NAME, "arguments": {...}}]}'
    if required:
        return f"You call tools. The tools:\n{listed}\nReply with JSON only: {shape}"
    after = (
        " The results of your earlier calls are in the conversation: when they hold what the user "
        'asked, answer with {"response": TEXT} built from them instead of calling again.'
        if answered
        else ""
    )
    return (
        f"You can call tools. The tools:\n{listed}\nReply with JSON only: {shape} to call tools, "
        f'or {{"response": TEXT}} to answer the user.{after}'
    )


def needs_rewrite(messages: list[dict[str, Any]]) -> bool:
    """Whether ``messages`` hold tool calls or results the chat template cannot render as they are."""
    return any(m.get("role") == "tool" or m.get("tool_calls") or m.get("content") is None for m in messages)


def prompt_messages(
    messages: list[dict[str, Any]], tools: list[Tool] | None, choice: Any
) -> list[dict[str, str]]:
    """``messages`` (OpenAI shapes, tool calls and results included) as plain role/content turns,
    the tools described in the system message when the answer may call them. Consecutive turns
    of one role are joined: some templates (Gemma's) insist that roles alternate."""
    calling = bool(tools) and choice != "none"
    plain: list[dict[str, str]] = []
    for message in messages:
        role, content = message.get("role", "user"), message.get("content")
        if role == "tool":
            name = message.get("name") or _name_of(messages, message.get("tool_call_id"))
            text = f"Result of tool {name} (call {message.get('tool_call_id', '?')}):\n{content or ''}"
            plain.append({"role": "user", "content": text})
        elif role == "assistant" and message.get("tool_calls"):
            calls = [
                {"name": c["function"]["name"], "arguments": _arguments(c["function"].get("arguments"))}
                for c in message["tool_calls"]
            ]
            if calling:  # the JSON the grammar holds the model to, as it wrote it
                text = json.dumps({"tool_calls": calls}, ensure_ascii=False)
            else:  # in words: a model asked for prose copies the JSON it sees otherwise
                text = " ".join(
                    f"I called {c['name']}({json.dumps(c['arguments'], ensure_ascii=False)})." for c in calls
                )
            plain.append({"role": "assistant", "content": text})
        else:
            plain.append({"role": role, "content": content or ""})
    results = any(m.get("role") == "tool" for m in messages)
    instructions = ""
    if calling:
        instructions = _instructions(tools or [], choice, results)
    elif results:
        instructions = "Answer the user in plain words from the tool results in the conversation."
    if instructions:
        if plain and plain[0]["role"] == "system":
            plain[0] = {"role": "system", "content": f"{plain[0]['content']}\n\n{instructions}"}
        else:
            plain.insert(0, {"role": "system", "content": instructions})
    merged: list[dict[str, str]] = []
    for turn in plain:
        if merged and merged[-1]["role"] == turn["role"] and turn["role"] != "system":
            merged[-1] = {"role": turn["role"], "content": f"{merged[-1]['content']}\n\n{turn['content']}"}
        else:
            merged.append(turn)
    return merged


def _name_of(messages: list[dict[str, Any]], call_id: str | None) -> str:
    for message in messages:
        for call in message.get("tool_calls") or []:
            if call.get("id") == call_id:
                return call["function"]["name"]
    return "?"


def _arguments(value: Any) -> Any:
    """Arguments as the model wrote them (an OpenAI client sends them back as a JSON string)."""
    if isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value if value is not None else {}


def repeats(messages: list[dict[str, Any]], calls: list[dict[str, Any]]) -> bool:
    """Whether every call of ``calls`` was made before in ``messages`` with the same arguments
    and has its result there."""
    answered = {m.get("tool_call_id") for m in messages if m.get("role") == "tool"}
    made = {
        (c["function"]["name"], json.dumps(_arguments(c["function"].get("arguments")), sort_keys=True))
        for m in messages
        for c in m.get("tool_calls") or []
        if c.get("id") in answered
    }
    asked = {
        (c["function"]["name"], json.dumps(_arguments(c["function"]["arguments"]), sort_keys=True))
        for c in calls
    }
    return bool(made) and asked <= made


def new_call_id() -> str:
    return "call_" + secrets.token_hex(12)


def complete_calls(text: str) -> str | None:
    """The calls of a grammar-held answer cut short (max_tokens) that were written whole, as a
    whole answer; None when there is none. Small models repeat a call until the cut (Gemma 3
    270M and SmolLM2 both did): the calls before it are what they meant."""
    start = text.find("[", text.find('"tool_calls"'))
    if '"tool_calls"' not in text or start < 0:
        return None
    decoder, index, calls = json.JSONDecoder(strict=False), start + 1, []
    while True:
        while index < len(text) and text[index] in " \t\r\n,":
            index += 1
        try:
            call, index = decoder.raw_decode(text, index)
        except ValueError:
            break
        calls.append(call)
    return json.dumps({"tool_calls": calls}, ensure_ascii=False) if calls else None


def parse_answer(text: str, model: str, tools: list[Tool] = ()) -> tuple[str | None, list[dict[str, Any]]]:
    """(text answer or None, tool calls as OpenAI gives them: [{"id", "type", "function": {"name",
    "arguments" (a JSON string)}}]) from a grammar-held answer."""
    try:
        # strict=False: llama-cpp-python's schema grammar lets a string hold raw control
        # characters (its `char` rule is [^"\\]), which strict JSON refuses
        data = json.loads(text, strict=False)
    except ValueError:
        # Only an answer cut by max_tokens (or a stop) leaves the grammar's JSON unfinished.
        raise ModelError(
            f"{model} stopped before its tool call was complete: {text[:120]!r}",
            "raise max_tokens, or lower the number of tools",
        ) from None
    if isinstance(data, dict) and "response" in data:
        return str(data["response"]), []
    calls = data.get("tool_calls") if isinstance(data, dict) else None
    if not isinstance(calls, list):
        raise ModelError(f"{model}'s answer is neither a tool call nor a response: {text[:120]!r}")
    by_name = {tool.name: tool for tool in tools}
    for call in calls:
        if call.get("name") in by_name:
            check_arguments(by_name[call["name"]], call.get("arguments", {}), model)
    unique: dict[str, dict[str, Any]] = {}
    for call in calls:  # the same call twice is one call (a model looping on it)
        arguments = json.dumps(call.get("arguments", {}), ensure_ascii=False)
        unique.setdefault(f"{call['name']}\0{arguments}", {"name": call["name"], "arguments": arguments})
    return None, [{"id": new_call_id(), "type": "function", "function": call} for call in unique.values()]
