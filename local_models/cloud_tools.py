"""Tools through cloud endpoints: OpenAI-compatible ones take OpenAI's ``tools`` and tool turns
as they are; Anthropic's Messages API has its own shapes, mapped both ways here:

    OpenAI                                         Anthropic
    tools[].function {name, description, parameters}   tools[] {name, description, input_schema}
    tool_choice auto | required | none | {function}    {"type": auto | any | none | tool, name}
    parallel_tool_calls false                           tool_choice.disable_parallel_tool_use
    assistant {content, tool_calls[]}                   assistant [text, tool_use {id, name, input}]
    tool {tool_call_id, content} (one per result)       user [tool_result {tool_use_id, content}]
    finish_reason "tool_calls"                          stop_reason "tool_use"

And the calls of a streamed answer, gathered from their deltas (OpenAI: by ``index``, the id and
name first, argument fragments after; Anthropic: a ``tool_use`` content block, then
``input_json_delta`` fragments).
"""

from __future__ import annotations

import json
from typing import Any

from local_models.types import GenerationParams
from workbench.core.errors import CloudError

__all__ = ["openai_tool_fields", "anthropic_tool_fields", "anthropic_messages", "CallDeltas"]


def openai_tool_fields(params: GenerationParams) -> dict[str, Any]:
    if not params.tools:
        return {"tool_choice": "none"} if params.tool_choice == "none" else {}
    fields: dict[str, Any] = {"tools": list(params.tools)}
    if params.tool_choice is not None:
        fields["tool_choice"] = params.tool_choice
    if not params.parallel_tool_calls:
        fields["parallel_tool_calls"] = False
    return fields


def anthropic_tool_fields(params: GenerationParams) -> dict[str, Any]:
    if not params.tools:
        return {}
    tools = []
    for tool in params.tools:
        function = tool.get("function") or {}
        entry = {
            "name": function.get("name"),
            "input_schema": function.get("parameters") or {"type": "object", "properties": {}},
        }
        if function.get("description"):
            entry["description"] = function["description"]
        tools.append(entry)
    choice = params.tool_choice
    if choice in (None, "auto"):
        mapped: dict[str, Any] = {"type": "auto"}
    elif choice == "required":
        mapped = {"type": "any"}
    elif choice == "none":
        mapped = {"type": "none"}
    else:
        mapped = {"type": "tool", "name": (choice.get("function") or {}).get("name")}
    if not params.parallel_tool_calls and mapped["type"] != "none":
        mapped["disable_parallel_tool_use"] = True
    return {"tools": tools, "tool_choice": mapped}


def anthropic_messages(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The conversation without its system turns (Anthropic takes those apart), tool calls as
    ``tool_use`` blocks and results as ``tool_result`` blocks; the results of one turn's calls
    go in one user message, as the API asks."""
    mapped: list[dict[str, Any]] = []
    for message in messages:
        role, content = message.get("role"), message.get("content")
        if role == "system":
            continue
        if role == "tool":
            block = {
                "type": "tool_result",
                "tool_use_id": message.get("tool_call_id", ""),
                "content": content if isinstance(content, str) else json.dumps(content),
            }
            previous = mapped[-1] if mapped else None
            if previous and previous["role"] == "user" and _all_results(previous["content"]):
                previous["content"].append(block)
            else:
                mapped.append({"role": "user", "content": [block]})
        elif role == "assistant" and message.get("tool_calls"):
            blocks: list[dict[str, Any]] = [{"type": "text", "text": content}] if content else []
            for call in message["tool_calls"]:
                blocks.append(
                    {
                        "type": "tool_use",
                        "id": call.get("id", ""),
                        "name": call["function"]["name"],
                        "input": _input(call["function"].get("arguments")),
                    }
                )
            mapped.append({"role": "assistant", "content": blocks})
        else:
            mapped.append({"role": role, "content": content or ""})
    return mapped


def _all_results(content: Any) -> bool:
    return isinstance(content, list) and all(block.get("type") == "tool_result" for block in content)


def _input(arguments: Any) -> dict[str, Any]:
    if isinstance(arguments, str):
        try:
            arguments = json.loads(arguments or "{}")
        except ValueError:
            raise CloudError(
                f"a tool call's arguments are not JSON: {arguments[:80]!r}",
                "send each call's arguments back as the model gave them",
            ) from None
    return arguments if isinstance(arguments, dict) else {}


class CallDeltas:
    """The tool calls of a streamed answer, gathered from their pieces by position."""

    def __init__(self) -> None:
        self._calls: dict[int, dict[str, Any]] = {}

    def start(self, index: int, call_id: str | None, name: str | None) -> None:
        call = self._calls.setdefault(index, {"id": "", "name": "", "arguments": ""})
        call["id"] = call_id or call["id"]
        call["name"] = name or call["name"]

    def add(self, index: int, fragment: str | None) -> None:
        self._calls.setdefault(index, {"id": "", "name": "", "arguments": ""})["arguments"] += fragment or ""

    def openai_delta(self, delta: dict[str, Any]) -> None:
        """One entry of an OpenAI chunk's ``delta.tool_calls``."""
        function = delta.get("function") or {}
        self.start(delta.get("index", 0), delta.get("id"), function.get("name"))
        self.add(delta.get("index", 0), function.get("arguments"))

    def calls(self) -> list[dict[str, Any]]:
        return [
            {
                "id": call["id"],
                "type": "function",
                "function": {"name": call["name"], "arguments": call["arguments"] or "{}"},
            }
            for _, call in sorted(self._calls.items())
        ]
