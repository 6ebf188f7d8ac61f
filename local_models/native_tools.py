"""Function calling through a model's own chat template, for GGUFs whose template knows tools
(Qwen, Hermes, Llama 3.x, Mistral...): the tools and the tool turns are rendered by the template
as the model was trained on them (the Hugging Face conventions: ``tools``, assistant
``tool_calls`` with arguments as objects, ``tool`` messages), and the calls the model writes are
read back from the formats in use:

    hermes   <tool_call>{"name": ..., "arguments": {...}}</tool_call>   (Hermes, Qwen 2.5/3)
    llama3   <|python_tag|>{"name": ..., "parameters": {...}}          (Llama 3.1-3.3; tag optional)
    mistral  [TOOL_CALLS][{"name": ..., "arguments": {...}}]           (and [TOOL_CALLS]name[ARGS]{...})
    json     {"name": ..., "arguments": {...}}, a list of them, or {"tool_calls": [...]}

Templates that know no tools (SmolLM2's, Gemma's) go through the grammar instead
(local_models.tool_calls), as do ``tool_choice: "required"`` and a named function on any model.
"""

from __future__ import annotations

import json
import re
from typing import Any

from local_models.tool_calls import Tool, check_arguments, new_call_id
from workbench.core.errors import ModelError

__all__ = ["tool_format", "native_messages", "parse_native"]

FORMATS = ("hermes", "llama3", "mistral", "json")


def tool_format(template: str | None) -> str | None:
    """The tool-call format a chat template trains its model on, or None when it knows no tools
    (it never reads the ``tools`` variable)."""
    if not template:
        return None
    import jinja2
    from jinja2 import meta
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    try:
        variables = meta.find_undeclared_variables(
            ImmutableSandboxedEnvironment(extensions=["jinja2.ext.loopcontrols"]).parse(template)
        )
    except jinja2.TemplateSyntaxError:
        # llama-cpp-python's formatter knows a tag or two more ({% generation %}); a plain
        # look at the text is enough to tell
        variables = {"tools"} if re.search(r"\btools\b", template) else set()
    if "tools" not in variables:
        return None
    if "<tool_call>" in template:
        return "hermes"
    if "[TOOL_CALLS]" in template:
        return "mistral"
    if "<|python_tag|>" in template or "ipython" in template:
        return "llama3"
    return "json"


def native_messages(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """OpenAI messages as chat templates read them: a call's arguments as an object (clients
    send a JSON string, templates write it with ``tojson``), content never None."""
    shaped = []
    for message in messages:
        message = dict(message)
        if message.get("content") is None:
            message["content"] = ""
        if message.get("tool_calls"):
            message["tool_calls"] = [
                {
                    **call,
                    "function": {
                        "name": call["function"]["name"],
                        "arguments": _as_object(call["function"].get("arguments")),
                    },
                }
                for call in message["tool_calls"]
            ]
        shaped.append(message)
    return shaped


def _as_object(arguments: Any) -> Any:
    if isinstance(arguments, str):
        try:
            return json.loads(arguments)
        except ValueError:
            return arguments
    return {} if arguments is None else arguments


_HERMES = re.compile(r"<tool_call>\s*(.*?)\s*(?:</tool_call>|$)", re.DOTALL)
_FENCE = re.compile(r"^```(?:json)?\s*(.*?)\s*```$", re.DOTALL)


def parse_native(
    text: str, fmt: str, model: str, tools: list[Tool]
) -> tuple[str | None, list[dict[str, Any]]]:
    """(text answer or None, OpenAI tool calls) from what a model wrote in its own format. Text
    that holds no call is the answer; a call that is not JSON, names no tool of the request or
    breaks its schema is an error naming the model."""
    content, raw = _split(text, fmt, model)
    if not raw:
        return text, []
    by_name = {tool.name: tool for tool in tools}
    calls = []
    for entry in raw:
        name = entry.get("name") if isinstance(entry, dict) else None
        if name not in by_name:
            raise ModelError(
                f"{model} called {name!r}, which is not among the tools ({', '.join(by_name) or 'none'})",
                "ask again, or describe the tools more plainly",
            )
        arguments = entry.get("arguments", entry.get("parameters", {}))
        arguments = _as_object(arguments)
        if not isinstance(arguments, dict):
            raise ModelError(
                f"{model}'s call to {name} has arguments that are not a JSON object: {arguments!r}"
            )
        check_arguments(by_name[name], arguments, model)
        calls.append(
            {
                "id": new_call_id(),
                "type": "function",
                "function": {"name": name, "arguments": json.dumps(arguments, ensure_ascii=False)},
            }
        )
    return (content or None), calls


def _split(text: str, fmt: str, model: str) -> tuple[str, list[Any]]:
    """(the text beside the calls, the calls as decoded JSON) for ``fmt``; no calls when the
    text holds none in that format or as plain JSON."""
    if fmt == "hermes" and "<tool_call>" in text:
        bodies = _HERMES.findall(text)
        return _HERMES.sub("", text).strip(), [_decode(body, model, "<tool_call>") for body in bodies]
    if fmt == "mistral" and "[TOOL_CALLS]" in text:
        before, _, after = text.partition("[TOOL_CALLS]")
        return before.strip(), _mistral(after.strip(), model)
    stripped = text.strip()
    if fmt == "llama3" and stripped.startswith("<|python_tag|>"):
        body = stripped.removeprefix("<|python_tag|>").strip()
        return "", [_decode(part, model, "<|python_tag|>") for part in _semicolon_parts(body)]
    return "", _plain_json(stripped, fmt)


def _decode(body: str, model: str, marker: str) -> Any:
    try:
        return json.loads(body, strict=False)
    except ValueError:
        raise ModelError(
            f"{model} wrote a {marker} call that is not JSON: {body[:120]!r}",
            "raise max_tokens if the answer was cut, or ask with tool_choice=required (a grammar holds the call)",
        ) from None


def _mistral(after: str, model: str) -> list[Any]:
    if after.startswith("["):
        calls = _decode(after, model, "[TOOL_CALLS]")
        return calls if isinstance(calls, list) else [calls]
    # the v11+ tokenizer's form: name[ARGS]{...} for each call
    calls = []
    for part in after.split("[TOOL_CALLS]"):
        name, marker, arguments = part.partition("[ARGS]")
        if not marker:
            raise ModelError(f"{model} wrote a [TOOL_CALLS] call that is not JSON: {part[:120]!r}")
        calls.append({"name": name.strip(), "arguments": _decode(arguments, model, "[ARGS]")})
    return calls


def _semicolon_parts(body: str) -> list[str]:
    """Llama 3 writes several calls separated by semicolons; a semicolon inside a string is
    not a separator, so the text is cut only where what comes before decodes."""
    parts, start = [], 0
    for index, char in enumerate(body):
        if char == ";" and _is_json(body[start:index]):
            parts.append(body[start:index])
            start = index + 1
    parts.append(body[start:])
    return [part for part in parts if part.strip()]


def _is_json(text: str) -> bool:
    try:
        json.loads(text, strict=False)
    except ValueError:
        return False
    return True


def _plain_json(text: str, fmt: str) -> list[Any]:
    """Calls written as bare JSON (any format's models do it): an object with a name and
    arguments (or Llama's parameters), a list of them, or the generic {"tool_calls": [...]}."""
    fenced = _FENCE.match(text)
    body = fenced.group(1) if fenced else text
    if not body.startswith(("{", "[")):
        return []
    parts = _semicolon_parts(body) if fmt == "llama3" else [body]
    found: list[Any] = []
    for part in parts:
        try:
            data = json.loads(part, strict=False)
        except ValueError:
            return []
        if isinstance(data, dict) and isinstance(data.get("tool_calls"), list):
            data = data["tool_calls"]
        entries = data if isinstance(data, list) else [data]
        if not all(_looks_like_call(entry) for entry in entries):
            return []  # JSON, but an answer (a user may ask for JSON): not calls
        found.extend(entries)
    return found


def _looks_like_call(entry: Any) -> bool:
    return (
        isinstance(entry, dict)
        and isinstance(entry.get("name"), str)
        and ("arguments" in entry or "parameters" in entry)
        and set(entry) <= {"name", "arguments", "parameters", "id", "type"}
    )
