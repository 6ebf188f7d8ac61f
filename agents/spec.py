"""Workflow specs: YAML in <workspace>/workflows/, read into typed nodes and checked before any
run. Every problem names the spec file and the line it is on.

This module, graph.py, nodes.py and tools.py import nothing of the workbench (errors aside, see
below): `workbench export --target langgraph` copies them verbatim next to the generated module,
so a deployment builds the very same graph.
"""

from __future__ import annotations

import re
import string
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

try:  # inside the workbench: one error hierarchy; in an export: a plain exception
    from workbench.errors import WorkflowError as _Base
except ImportError:  # pragma: no cover - only in exported copies
    _Base = Exception  # type: ignore[misc,assignment]

__all__ = ["Spec", "SpecError", "Problem", "load_spec", "parse_spec", "END", "BUILTIN_KEYS", "Condition"]

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


class SpecError(_Base):
    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        first = problems[0].file if problems else "spec"
        message = f"{first} has {len(problems)} problem{'s' * (len(problems) != 1)}:\n" + "\n".join(
            f"  {p}" for p in problems
        )
        hint = "fix the spec, then run `workbench workflows validate NAME`"
        try:
            super().__init__(message, hint)
        except TypeError:  # pragma: no cover - plain Exception in an export
            super().__init__(message)


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


Node = Annotated[
    RetrieveNode | GenerateNode | GradeNode | RouteNode | EscalateNode | GuardrailNode | ToolNode,
    Field(discriminator="type"),
]
NODE_TYPES = ("retrieve", "generate", "grade", "route", "escalate", "guardrail", "tool")


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


def template_keys(template: str) -> set[str]:
    """State keys a format string reads: `{grade[score]}` and `{grade.score}` read `grade`."""
    keys = set()
    for _, field, _, _ in string.Formatter().parse(template):
        if field is not None:
            keys.add(re.split(r"[.\[]", field, maxsplit=1)[0])
    return keys


# -- loading with line numbers ------------------------------------------------------------------


def _lines(node: yaml.Node, path: tuple = (), out: dict | None = None) -> dict[tuple, int]:
    """Where each value of the document starts: path of keys -> 1-based line."""
    out = {} if out is None else out
    out[path] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            _lines(value, path + (key.value,), out)
            out[path + (key.value,)] = key.start_mark.line + 1  # the key's line, not its value's
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            _lines(item, path + (index,), out)
    return out


def _line_of(lines: dict[tuple, int], loc: tuple) -> int | None:
    loc = tuple(loc)
    while loc:
        if loc in lines:
            return lines[loc]
        # pydantic puts the union tag into the location (nodes.x.generate.prompt): drop it
        loc = tuple(p for p in loc if p not in NODE_TYPES) if any(p in NODE_TYPES for p in loc) else loc[:-1]
    return lines.get(())


def load_spec(path: Path) -> Spec:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise SpecError([Problem(str(path), None, "", f"cannot read it: {exc}")]) from None
    return parse_spec(text, str(path))


def parse_spec(text: str, file: str = "spec") -> Spec:
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        reason = getattr(exc, "problem", None) or str(exc)
        raise SpecError([Problem(file, line, "", f"not valid YAML: {reason}")]) from None
    if not isinstance(data, dict):
        raise SpecError([Problem(file, 1, "", "a workflow spec is a mapping with name, start and nodes")])
    lines = _lines(root)
    try:
        spec = Spec.model_validate(data)
    except ValidationError as exc:
        raise SpecError([_problem(file, lines, error, data) for error in exc.errors()]) from None
    problems = _check_graph(spec, file, lines)
    if problems:
        raise SpecError(problems)
    return spec


def _problem(file: str, lines: dict, error: dict, data: dict) -> Problem:
    loc = tuple(error["loc"])
    where = ".".join(str(p) for p in loc if p not in NODE_TYPES)
    message = error["msg"]
    if error["type"] == "union_tag_invalid":
        found = error.get("input", {}).get("type") if isinstance(error.get("input"), dict) else None
        message = f"unknown node type {found!r}; known types: {', '.join(NODE_TYPES)}"
        where = where + ".type"
        loc = loc + ("type",)
    elif error["type"] == "union_tag_not_found":
        message = f"a node needs a `type`; one of {', '.join(NODE_TYPES)}"
    elif error["type"] == "extra_forbidden":
        message = f"unknown field `{loc[-1]}`"
    elif error["type"] == "missing":
        message = f"`{loc[-1]}` is required"
    return Problem(file, _line_of(lines, loc), where, message)


def _check_graph(spec: Spec, file: str, lines: dict) -> list[Problem]:
    problems: list[Problem] = []

    def add(loc: tuple, message: str) -> None:
        problems.append(Problem(file, _line_of(lines, loc), ".".join(map(str, loc)), message))

    names = set(spec.nodes)
    for name in spec.nodes:
        if not re.match(NAME, name) or name == END:
            add(("nodes", name), f"node name {name!r} must be a word (letters, digits, _ or -) and not `end`")
    if spec.start not in names:
        add(("start",), f"start node {spec.start!r} does not exist; nodes: {', '.join(sorted(names))}")
    for name, node in spec.nodes.items():
        targets: list[tuple[tuple, str]] = []
        if isinstance(node, RouteNode):
            targets += [(("nodes", name, "routes", i, "goto"), r.goto) for i, r in enumerate(node.routes)]
            targets.append((("nodes", name, "default"), node.default))
            if not node.routes and node.classify is None:
                add(("nodes", name), "a route node needs `routes` (conditions) or `classify`")
        else:
            targets.append((("nodes", name, "next"), node.next))
        for loc, target in targets:
            if target != END and target not in names:
                add(loc, f"edge to missing node {target!r}; nodes: {', '.join(sorted(names))}, or `end`")
        if isinstance(node, GuardrailNode):
            for i, pattern in enumerate(node.block):
                try:
                    re.compile(pattern)
                except re.error as exc:
                    add(("nodes", name, "block", i), f"not a regular expression: {exc}")
        for loc, template in _templates(name, node):
            try:
                template_keys(template)
            except ValueError as exc:
                add(loc, f"not a valid template: {exc} (write {{{{ and }}}} for literal braces)")
        if isinstance(node, EscalateNode) and not isinstance(spec.nodes.get(node.prompt_from), GenerateNode):
            add(
                ("nodes", name, "prompt_from"),
                f"{node.prompt_from!r} is not a generate node of this workflow",
            )
    if problems:
        return problems  # the checks below walk the graph, which needs its edges to exist

    reachable = _reachable(spec, spec.start)
    for name in spec.nodes:
        if name not in reachable:
            add(("nodes", name), f"node {name!r} is never reached from start {spec.start!r}")
    for loop in _loops(spec):
        if not any(t == END or t not in loop for n in loop for t in spec.successors(n)):
            add(("nodes", sorted(loop)[0]), f"loop {' -> '.join(sorted(loop))} has no way out: add a route to "
                                            "`end` or to a node outside it")  # fmt: skip
    ancestors = {name: _ancestors(spec, name) for name in spec.nodes}
    for name, node in spec.nodes.items():
        available = set(BUILTIN_KEYS)
        for other in ancestors[name]:
            available |= spec.provides(other)
        for loc, keys in _reads(name, node):
            for key in sorted(keys - available):
                add(loc, f"template variable {{{key}}} is provided by no node before {name!r} "
                         f"(available: {', '.join(sorted(available))})")  # fmt: skip
        if isinstance(node, RouteNode):
            for i, route in enumerate(node.routes):
                try:
                    condition = Condition.parse(route.when)
                except ValueError as exc:
                    add(("nodes", name, "routes", i, "if"), str(exc))
                    continue
                key = condition.key.split(".")[0]
                own = {node.classify.output} if node.classify else set()
                if key not in available | own:
                    add(("nodes", name, "routes", i, "if"), f"`{key}` is provided by no node before {name!r}")
    return problems


def _templates(name: str, node: Any) -> list[tuple[tuple, str]]:
    found = []
    if isinstance(node, RetrieveNode):
        found.append((("nodes", name, "query"), node.query))
    if isinstance(node, GenerateNode):
        found.append((("nodes", name, "prompt", "template"), node.prompt.template))
        if node.prompt.system:
            found.append((("nodes", name, "prompt", "system"), node.prompt.system))
    if isinstance(node, RouteNode) and node.classify and node.classify.prompt:
        found.append((("nodes", name, "classify", "prompt", "template"), node.classify.prompt.template))
    return found


def _reads(name: str, node: Any) -> list[tuple[tuple, set[str]]]:
    reads = []
    for loc, template in _templates(name, node):
        try:
            reads.append((loc, template_keys(template)))
        except ValueError:
            pass  # reported as an invalid template
    if isinstance(node, GradeNode | GuardrailNode | ToolNode):
        key = {GradeNode: "answer", GuardrailNode: "target", ToolNode: "call"}[type(node)]
        reads.append((("nodes", name, key), {getattr(node, key)}))
    return reads


def _reachable(spec: Spec, start: str) -> set[str]:
    seen, todo = set(), [start]
    while todo:
        name = todo.pop()
        if name in seen or name == END:
            continue
        seen.add(name)
        todo.extend(spec.successors(name))
    return seen


def _ancestors(spec: Spec, target: str) -> set[str]:
    """Nodes from which `target` can be reached (itself included only when it is in a loop)."""
    return {name for name in spec.nodes if any(target in _reachable(spec, s) for s in spec.successors(name)
                                                if s != END)}  # fmt: skip


def _loops(spec: Spec) -> list[set[str]]:
    """Strongly connected components that are cycles (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    loops: list[set[str]] = []

    def visit(name: str) -> None:
        index[name] = low[name] = len(index)
        stack.append(name)
        on_stack.add(name)
        for succ in spec.successors(name):
            if succ == END:
                continue
            if succ not in index:
                visit(succ)
                low[name] = min(low[name], low[succ])
            elif succ in on_stack:
                low[name] = min(low[name], index[succ])
        if low[name] == index[name]:
            component = set()
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.add(member)
                if member == name:
                    break
            if len(component) > 1 or name in spec.successors(name):
                loops.append(component)

    for name in spec.nodes:
        if name not in index:
            visit(name)
    return loops
