"""Workflow specs: the typed nodes a YAML spec in <workspace>/workflows/ is read into. Reading
and checking a spec (every problem with its file and line) is agents/checks.py.

This module, graph.py, nodes.py and tools.py import nothing of the workbench (errors aside, see
below): `workbench export --target langgraph` copies them verbatim next to the generated module,
so a deployment builds the very same graph.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field

from agents.prompt_template import template_keys  # noqa: F401 - spec users import it here

__all__ = ["Spec", "SpecError", "Problem", "END", "BUILTIN_KEYS", "NODE_TYPES", "Condition"]

END = "end"
BUILTIN_KEYS = {"input", "steps", "observations"}  # set by the run itself before the first node
NAME = r"^[A-Za-z_][A-Za-z0-9_-]{0,63}$"


@dataclass(frozen=True)
class Problem:
    file: str
    line: int | None
    where: str
    message: str

    def __str__(self) -> str:
        place = f"{self.file}:{self.line}" if self.line else self.file
        return f"{place}: {self.message}" + (f" (at {self.where})" if self.where else "")


try:  # inside the workbench: the one error hierarchy (workbench.core.errors)
    from workbench.core.errors import SpecError
except ImportError:  # pragma: no cover - only in exported copies, which run without the workbench

    class SpecError(Exception):  # type: ignore[no-redef]
        def __init__(self, problems: list[Problem]) -> None:
            self.problems = problems
            super().__init__("\n".join(str(p) for p in problems))


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class Prompt(_Model):
    id: str
    """A stable id for this prompt, recorded on every span that uses it (evals compare by it)."""
    version: int = Field(1, ge=1)
    system: str | None = None
    template: str
    """Python format string over the run's state: {input}, {context}, {answer}, ..."""


class _Node(_Model):
    description: str = ""
    next: str = END


class RetrieveNode(_Node):
    type: Literal["retrieve"]
    collection: str
    k: int = Field(4, ge=1, le=50)
    mode: Literal["vector", "fts", "hybrid"] = "hybrid"
    query: str = "{input}"
    output: str = "context"


class GenerateNode(_Node):
    type: Literal["generate"]
    model: str
    """A local alias, ENDPOINT/MODEL for a cloud model, or `auto` for the router."""
    prompt: Prompt
    temperature: float = Field(0.0, ge=0.0, le=5.0)
    max_tokens: int = Field(256, ge=1)
    seed: int | None = 0
    json_schema: dict[str, Any] | None = None
    """Constrain the answer to JSON valid against this schema; the state then holds the object."""
    output: str = "answer"


class GradeNode(_Node):
    type: Literal["grade"]
    model: str
    criterion: Literal["groundedness", "relevance"] = "groundedness"
    answer: str = "answer"
    output: str = "grade"


class Route(_Model):
    when: str = Field(alias="if")
    goto: str


class Classifier(_Model):
    model: str
    labels: list[str] = Field(min_length=2)
    prompt: Prompt | None = None
    output: str = "label"


class RouteNode(_Model):
    type: Literal["route"]
    description: str = ""
    classify: Classifier | None = None
    routes: list[Route] = Field(default_factory=list)
    default: str = END


class EscalateNode(_Node):
    type: Literal["escalate"]
    model: str | None = None
    """ENDPOINT/MODEL; default: [router] escalate_to of workbench.toml."""
    prompt_from: str
    """The generate node whose prompt is sent to the cloud model."""
    output: str = "answer"


class GuardrailNode(_Node):
    type: Literal["guardrail"]
    check: Literal["redact", "injection", "output_filter"]
    target: str = "input"
    block: list[str] = Field(default_factory=list)
    """output_filter: regular expressions an answer must not match; a match replaces it."""


class ToolNode(_Node):
    type: Literal["tool"]
    tools: list[str] = Field(min_length=1)
    """The allow-list: a call to any other tool is refused and recorded."""
    call: str = "action"
    """State key holding {"tool": NAME, "input": TEXT}, usually a generate node's JSON output."""
    output: str = "observations"
    files: list[str] = []
    """The folders read_file may read (relative to the workspace, or absolute); none: read_file
    reads nothing. The workspace's own files (its config, traces, models) are never readable."""


class AgentNode(_Node):
    """The model-tools loop on native function calling, as LangGraph's prebuilt ReAct agent runs
    it: the model is given the tools, each call it makes runs and its result goes back, until it
    answers in words or ``max_steps`` model calls have been made."""

    type: Literal["agent"]
    model: str
    """A local alias, ENDPOINT/MODEL for a cloud model (the tools passed through), or `auto`
    (local first; a call the local model fails to make goes to the cloud model whole)."""
    prompt: Prompt
    tools: list[str] = Field(min_length=1)
    """The allow-list: built-ins (calculator, read_file, sql) and the workspace's own tools
    (<workspace>/tools/*.py); a call to any other is refused and the model told so."""
    files: list[str] = []
    """The folders read_file may read, as on a tool node."""
    approve: list[str] = []
    """Tools of ``tools`` that run only once a person approves the call (its arguments shown):
    the run waits (a LangGraph interrupt) for `workbench run --resume ID --approve|--deny`, the
    app's approval prompt or the gateway's resume; a denied call's result says so to the model."""
    max_steps: int = Field(6, ge=1, le=50)
    temperature: float = Field(0.0, ge=0.0, le=5.0)
    max_tokens: int = Field(256, ge=1)
    seed: int | None = 0
    output: str = "answer"


Node = Annotated[
    RetrieveNode | GenerateNode | GradeNode | RouteNode | EscalateNode | GuardrailNode | ToolNode | AgentNode,
    Field(discriminator="type"),
]
NODE_TYPES = ("retrieve", "generate", "grade", "route", "escalate", "guardrail", "tool", "agent")


class Spec(_Model):
    name: str = Field(pattern=NAME)
    description: str = ""
    start: str
    max_steps: int = Field(25, ge=1, le=1000)
    """LangGraph's recursion limit: a run stops with an error after this many node steps."""
    nodes: dict[str, Node] = Field(min_length=1)

    def successors(self, name: str) -> list[str]:
        node = self.nodes[name]
        if isinstance(node, RouteNode):
            return [r.goto for r in node.routes] + [node.default]
        return [node.next]

    def provides(self, name: str) -> set[str]:
        """State keys a node writes."""
        node = self.nodes[name]
        if isinstance(node, RouteNode):
            return {"route_reason"} | ({node.classify.output} if node.classify else set())
        if isinstance(node, EscalateNode):
            return {node.output, "escalation_reason", "escalated_to"}
        if isinstance(node, GuardrailNode):
            return {node.target, "guardrail"}
        if isinstance(node, ToolNode):
            return {node.output, "steps", "answer"}
        if isinstance(node, AgentNode):
            return {node.output, "observations", "steps"}
        if isinstance(node, GenerateNode):
            return {node.output, "escalation_reason"} if node.model == "auto" else {node.output}
        return {node.output}

    def state_keys(self) -> set[str]:
        keys = set(BUILTIN_KEYS)
        for name in self.nodes:
            keys |= self.provides(name)
        return keys


# -- conditions of route nodes: `KEY[.FIELD...] OP LITERAL` ----------------------------------

_CONDITION = re.compile(
    r"^\s*(?P<key>[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*)\s*(?P<op>==|!=|<=|>=|<|>|in|not in)\s*(?P<value>.+?)\s*$"
)


@dataclass(frozen=True)
class Condition:
    key: str
    op: str
    value: Any

    @classmethod
    def parse(cls, text: str) -> Condition:
        match = _CONDITION.match(text)
        if not match:
            raise ValueError(f"cannot read condition {text!r}: write KEY OP VALUE, e.g. `grade.score < 0.6`")
        try:
            value = yaml.safe_load(match["value"])
        except yaml.YAMLError as exc:
            raise ValueError(f"cannot read the value in {text!r}") from exc
        if match["op"] in ("in", "not in") and not isinstance(value, list):
            raise ValueError(f"`{match['op']}` needs a list, e.g. `label in [math, code]`")
        return cls(match["key"], match["op"], value)

    def holds(self, state: dict[str, Any]) -> bool:
        actual: Any = state
        for part in self.key.split("."):
            actual = actual.get(part) if isinstance(actual, dict) else None
        try:
            return {
                "==": lambda: actual == self.value,
                "!=": lambda: actual != self.value,
                "<": lambda: actual is not None and actual < self.value,
                "<=": lambda: actual is not None and actual <= self.value,
                ">": lambda: actual is not None and actual > self.value,
                ">=": lambda: actual is not None and actual >= self.value,
                "in": lambda: actual in self.value,
                "not in": lambda: actual not in self.value,
            }[self.op]()
        except TypeError:  # e.g. a string compared with a number: the condition does not hold
            return False

    def __str__(self) -> str:
        return f"{self.key} {self.op} {self.value!r}"


# -- loading with line numbers ------------------------------------------------------------------
