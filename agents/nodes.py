"""The node library: what each node type of a spec does to the run's state.

Nodes reach models, collections and tools only through a Runtime, so the same functions run in
the workbench (local llama.cpp, LanceDB, the trace store) and in an exported deployment (an
OpenAI-compatible endpoint, LanceDB on its own).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any, Protocol

from agents.guardrails import fence, filter_output, looks_like_injection
from agents.prompt_template import fill_template
from agents.spec import (
    AgentNode,
    Condition,
    EscalateNode,
    GenerateNode,
    GradeNode,
    GuardrailNode,
    Prompt,
    RetrieveNode,
    RouteNode,
    Spec,
    ToolNode,
)

__all__ = ["Runtime", "Refused", "make_node", "render", "prompt_messages", "run_calls", "GRADE_SCHEMA"]

State = dict[str, Any]
Emit = Callable[[dict[str, Any]], None]


class Refused(Exception):
    """The runtime would not escalate (offline, over budget, no cloud model configured)."""


class Runtime(Protocol):
    def chat(
        self,
        model: str,
        messages: list[dict[str, str]],
        params: dict[str, Any],
        on_text: Callable[[str], None] | None,
    ) -> dict[str, Any]:
        """-> {"text", "model", and for model `auto`: "escalation_reason"; with ``tools`` in
        ``params``: "tool_calls" (OpenAI's shape) when the model calls some}"""

    def escalate(
        self,
        model: str | None,
        messages: list[dict[str, str]],
        params: dict[str, Any],
        on_text: Callable[[str], None] | None,
    ) -> dict[str, Any]:
        """The cloud model's answer, or Refused."""

    def retrieve(self, collection: str, query: str, k: int, mode: str) -> list[dict[str, Any]]:
        """-> [{"id", "path", "text", "score"}, ...] best first"""

    def tool(self, name: str, text: str, files: list[str]) -> str:
        """Run a tool of agents.tools.TOOLS; raises ToolFailed. ``files``: the folders the
        node lets read_file read."""

    def tool_specs(self, names: list[str]) -> list[dict[str, Any]]:
        """The tools ``names`` as OpenAI function tools (built-ins and the workspace's own)."""

    def call_tool(self, name: str, arguments: dict[str, Any], files: list[str]) -> str:
        """Run tool ``name`` with the model's arguments; raises ToolFailed."""

    def redact(self, text: str) -> tuple[str, dict[str, int]]: ...


def render(value: Any) -> str:
    """State values as prompt text: passages numbered with their source, observations as lines."""
    if isinstance(value, list):
        lines = []
        for i, item in enumerate(value, 1):
            if isinstance(item, dict) and "text" in item:
                lines.append(f"[{i}] ({item.get('path', '?')})\n{item['text']}")
            elif isinstance(item, dict) and "tool" in item:
                lines.append(f"{i}. {item['tool']}({item.get('input', '')}) -> {item.get('output', '')}")
            else:
                lines.append(f"{i}. {item}")
        if lines and all(isinstance(item, dict) and "text" in item for item in value):
            return fence("\n\n".join(lines))  # passages: quoted data, not instructions
        return "\n\n".join(lines) if lines else "(none)"
    if isinstance(value, dict):
        return json.dumps(value, ensure_ascii=False)
    return "" if value is None else str(value)


def fill(template: str, state: State) -> str:
    return fill_template(template, state, render)


def prompt_messages(prompt: Prompt, state: State) -> list[dict[str, str]]:
    messages = [{"role": "system", "content": fill(prompt.system, state)}] if prompt.system else []
    return messages + [{"role": "user", "content": fill(prompt.template, state)}]


def _params(node: GenerateNode) -> dict[str, Any]:
    return {
        "temperature": node.temperature,
        "max_tokens": node.max_tokens,
        "seed": node.seed,
        "json_schema": node.json_schema,
    }


def _parse_json(node_name: str, text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return {"error": f"{node_name} did not return valid JSON", "raw": text}


GRADE_SCHEMA = {
    "type": "object",
    "properties": {
        "score": {"type": "integer", "enum": [1, 2, 3, 4, 5]},
        "reason": {"type": "string", "maxLength": 160},
    },
    "required": ["score", "reason"],
}
_GRADE_PROMPTS = {
    "groundedness": (
        "You check answers against their sources. Reply with JSON only.",
        "Sources:\n{context}\n\nAnswer:\n{answer}\n\nIs every claim of the answer supported by the sources? "
        'Give a score from 1 (not supported) to 5 (fully supported) and a short reason: {{"score": N, "reason": "..."}}',
    ),
    "relevance": (
        "You check whether answers address the question. Reply with JSON only.",
        "Question:\n{input}\n\nAnswer:\n{answer}\n\nDoes the answer address the question? Give a score from 1 "
        '(not at all) to 5 (fully) and a short reason: {{"score": N, "reason": "..."}}',
    ),
}


def make_node(spec: Spec, name: str, runtime: Runtime, emit: Emit) -> Callable[[State], State]:
    """The function LangGraph calls for node ``name``: state in, state update out."""
    node = spec.nodes[name]

    def tokens(piece: str) -> None:
        emit({"event": "token", "node": name, "text": piece})

    if isinstance(node, RetrieveNode):

        def retrieve(state: State) -> State:
            query = fill(node.query, state)
            return {node.output: runtime.retrieve(node.collection, query, node.k, node.mode)}

        return retrieve

    if isinstance(node, GenerateNode):

        def generate(state: State) -> State:
            result = runtime.chat(node.model, prompt_messages(node.prompt, state), _params(node), tokens)
            update: State = {
                node.output: _parse_json(name, result["text"]) if node.json_schema else result["text"]
            }
            if result.get("escalation_reason"):
                update["escalation_reason"] = result["escalation_reason"]
            return update

        return generate

    if isinstance(node, GradeNode):
        system, template = _GRADE_PROMPTS[node.criterion]

        def grade(state: State) -> State:
            view = {**state, "answer": state.get(node.answer), "context": state.get("context", [])}
            messages = [
                {"role": "system", "content": system},
                {"role": "user", "content": fill(template, view)},
            ]
            params = {"temperature": 0.0, "max_tokens": 96, "seed": 0, "json_schema": GRADE_SCHEMA}
            text = runtime.chat(node.model, messages, params, None)["text"]
            verdict = _parse_json(name, text)
            if not isinstance(verdict, dict) or verdict.get("score") not in (1, 2, 3, 4, 5):
                # A judge that gave no verdict is a failure on record, never a silent zero.
                return {
                    node.output: {"failed": True, "score": None, "raw": text, "criterion": node.criterion}
                }
            return {
                node.output: {
                    "failed": False,
                    "score": (verdict["score"] - 1) / 4,
                    "reason": str(verdict.get("reason", "")),
                    "criterion": node.criterion,
                }
            }

        return grade

    if isinstance(node, RouteNode):
        conditions = [(Condition.parse(route.when), route.goto) for route in node.routes]

        def route(state: State) -> State:
            update: State = {}
            if node.classify is not None:
                update[node.classify.output] = _classify(node, runtime, state)
            view = {**state, **update}
            for condition, target in conditions:
                if condition.holds(view):
                    actual = view
                    for part in condition.key.split("."):
                        actual = actual.get(part) if isinstance(actual, dict) else None
                    return {
                        **update,
                        "route_to": target,
                        "route_reason": f"{condition.key} = {actual!r}: {condition}",
                    }
            return {**update, "route_to": node.default, "route_reason": "default route"}

        return route

    if isinstance(node, EscalateNode):
        source = spec.nodes[node.prompt_from]
        assert isinstance(source, GenerateNode)

        def escalate(state: State) -> State:
            reason = state.get("route_reason") or "the workflow asked for it"
            messages = prompt_messages(source.prompt, state)
            try:
                result = runtime.escalate(node.model, messages, _params(source), tokens)
            except Refused as exc:
                update: State = {
                    "escalation_reason": f"{reason}; escalation refused: {exc}",
                    "escalated_to": None,
                }
                if state.get(node.output) is None:  # nothing to fall back on: answer locally
                    update[node.output] = runtime.chat(source.model, messages, _params(source), tokens)[
                        "text"
                    ]
                return update
            return {node.output: result["text"], "escalation_reason": reason, "escalated_to": result["model"]}

        return escalate

    if isinstance(node, GuardrailNode):
        return _guardrail(node, runtime)

    if isinstance(node, ToolNode):

        def tool(state: State) -> State:
            action = state.get(node.call) or {}
            steps = int(state.get("steps") or 0) + 1
            name_, text = str(action.get("tool", "")), str(action.get("input", ""))
            observations = list(state.get(node.output) or [])
            if name_ == "final":
                return {"answer": text, "steps": steps}
            if name_ not in node.tools:
                output = f"refused: tool {name_!r} is not allowed here (allowed: {', '.join(node.tools)})"
            else:
                from agents.tools import MAX_OUTPUT, ToolFailed

                try:
                    output = runtime.tool(name_, text, node.files)[:MAX_OUTPUT]
                except ToolFailed as exc:
                    output = f"error: {exc}"
            observations.append({"tool": name_, "input": text, "output": output})
            return {node.output: observations, "steps": steps}

        return tool

    if isinstance(node, AgentNode):
        return _agent(name, node, runtime, tokens, emit)

    raise TypeError(f"no implementation for node type {type(node).__name__}")  # spec validation prevents it


def _classify(node: RouteNode, runtime: Runtime, state: State) -> str:
    classify = node.classify
    assert classify is not None
    if classify.prompt is not None:
        messages = prompt_messages(classify.prompt, state)
    else:
        messages = [
            {
                "role": "user",
                "content": f"Classify this text as one of: {', '.join(classify.labels)}.\n"
                f"Text: {render(state.get('input'))}\nLabel:",
            }
        ]
    schema = {"type": "object", "properties": {"label": {"enum": classify.labels}}, "required": ["label"]}
    params = {"temperature": 0.0, "max_tokens": 32, "seed": 0, "json_schema": schema}
    text = runtime.chat(classify.model, messages, params, None)["text"]
    verdict = _parse_json("classify", text)
    label = verdict.get("label") if isinstance(verdict, dict) else None
    return label if label in classify.labels else classify.labels[-1]


def _guardrail(node: GuardrailNode, runtime: Runtime) -> Callable[[State], State]:
    def guardrail(state: State) -> State:
        value = state.get(node.target)
        record: dict[str, Any] = {"check": node.check, "target": node.target}
        if node.check == "redact":
            if isinstance(value, list):
                texts = [
                    runtime.redact(item["text"] if isinstance(item, dict) else str(item)) for item in value
                ]
                value = [
                    ({**item, "text": t} if isinstance(item, dict) else t)
                    for item, (t, _) in zip(value, texts)
                ]
                record["redacted"] = sum(sum(c.values()) for _, c in texts)
            else:
                value, counts = runtime.redact(render(value))
                record["redacted"] = sum(counts.values())
        elif node.check == "injection":
            items = value if isinstance(value, list) else [value]
            kept, dropped = [], []
            for item in items:
                phrase = looks_like_injection(item["text"] if isinstance(item, dict) else render(item))
                (dropped if phrase else kept).append(
                    {"id": item.get("id") if isinstance(item, dict) else None, "phrase": phrase}
                    if phrase
                    else item
                )
            record["dropped"] = dropped
            value = kept if isinstance(value, list) else (kept[0] if kept else "")
        else:
            pattern = filter_output(render(value), node.block)
            record["blocked"] = pattern
            if pattern is not None:
                value = "[withheld: the answer matched an output filter of this workflow]"
        return {node.target: value, "guardrail": record}

    return guardrail


def _agent(
    name: str, node: AgentNode, runtime: Runtime, tokens: Callable[[str], None] | None, emit: Emit
) -> Callable[[State], State]:
    """The model-tools loop: tools to the model, its calls run (those of the allow-list), their
    results back as `tool` messages, until it answers in words or runs out of steps. A call to a
    tool of ``approve`` ends the node's turn with the loop's progress in ``agent_progress``:
    the graph's approval node asks a person (a LangGraph interrupt) and comes back here with
    the decision, and the loop goes on where it was, no model call made twice."""

    def agent(state: State) -> State:
        specs = runtime.tool_specs(node.tools)
        progress = state.get("agent_progress") or {}
        if progress.get("node") == name and progress.get("decision") is not None:
            messages = list(progress["messages"])
            observations, steps, first = list(progress["observations"]), progress["steps"], progress["first"]
            run_calls(
                node, runtime, progress["pending"], messages, observations, progress["decision"], emit, name
            )
        else:
            messages = list(prompt_messages(node.prompt, state))
            observations = list(state.get("observations") or [])
            steps = first = int(state.get("steps") or 0)
        params = {
            "temperature": node.temperature,
            "max_tokens": node.max_tokens,
            "seed": node.seed,
            "tools": tuple(specs),
            "tool_choice": "auto",
        }
        while steps - first < node.max_steps:
            steps += 1
            reply = runtime.chat(node.model, messages, params, tokens)
            calls = reply.get("tool_calls") or []
            if not calls:
                done = {node.output: reply["text"], "observations": observations, "steps": steps}
                return {**done, "agent_progress": None}
            messages.append({"role": "assistant", "content": None, "tool_calls": calls})
            asks = [
                {"id": c["id"], "tool": c["function"]["name"], "arguments": c["function"].get("arguments")}
                for c in calls
                if c["function"]["name"] in node.approve
            ]
            if asks:
                waiting = {"node": name, "messages": messages, "observations": observations}
                waiting.update(steps=steps, first=first, pending=calls, asks=asks, decision=None)
                return {"agent_progress": waiting, "steps": steps}
            run_calls(node, runtime, calls, messages, observations, None, emit, name)
        stopped = f"(no answer: the agent stopped after {node.max_steps} model calls)"
        return {node.output: stopped, "observations": observations, "steps": steps, "agent_progress": None}

    return agent


def run_calls(
    node: AgentNode,
    runtime: Runtime,
    calls: list[dict[str, Any]],
    messages: list[dict[str, Any]],
    observations: list[dict[str, Any]],
    decision: dict[str, Any] | None,
    emit: Emit,
    node_name: str,
) -> None:
    """Run the calls of one model answer, each result a `tool` message; a call that needed
    approval runs only if ``decision`` approved it."""
    import json as json_

    from agents.tools import MAX_OUTPUT, ToolFailed

    for call in calls:
        name, raw = call["function"]["name"], call["function"].get("arguments") or "{}"
        if name not in node.tools:  # the grammar holds the model to the list; a runtime may not
            output = f"refused: tool {name!r} is not allowed here (allowed: {', '.join(node.tools)})"
        elif name in node.approve and not (decision or {}).get("approved"):
            note = (decision or {}).get("note") or ""
            output = "denied: the user did not approve this call" + (f" ({note})" if note else "")
        else:
            try:
                output = runtime.call_tool(name, json_.loads(raw), node.files)[:MAX_OUTPUT]
            except ToolFailed as exc:
                output = f"error: {exc}"
            except ValueError:
                output = "error: the arguments are not JSON"
        messages.append({"role": "tool", "tool_call_id": call["id"], "name": name, "content": output})
        observations.append({"tool": name, "input": raw, "output": output})
        emit({"event": "tool", "node": node_name, "tool": name, "arguments": raw, "output": output[:500]})
