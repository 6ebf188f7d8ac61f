"""Reading a workflow spec and checking it before any run: YAML into typed nodes (agents/spec.py),
then the graph: node names, edges to missing nodes, unreachable nodes, loops without a way out,
template variables no earlier node provides. Every problem names the spec file and its line.

Like spec.py, this module is copied verbatim by `workbench export --target langgraph`.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from agents.spec import (
    BUILTIN_KEYS,
    END,
    NAME,
    NODE_TYPES,
    AgentNode,
    Condition,
    EscalateNode,
    GenerateNode,
    GradeNode,
    GuardrailNode,
    Problem,
    RetrieveNode,
    RouteNode,
    Spec,
    SpecError,
    ToolNode,
    template_keys,
)

__all__ = ["load_spec", "parse_spec"]


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


def _without_tag(loc: tuple) -> tuple:
    """pydantic puts the node's union tag into an error's location (nodes.x.generate.prompt):
    drop it by its place, third, never by its value: a node named `retrieve` of type retrieve
    lost its own name, and its errors pointed at `nodes:`."""
    if len(loc) > 2 and loc[0] == "nodes" and loc[2] in NODE_TYPES:
        return loc[:2] + loc[3:]
    return loc


def _line_of(lines: dict[tuple, int], loc: tuple) -> int | None:
    loc = tuple(loc)
    while loc:
        if loc in lines:
            return lines[loc]
        loc = loc[:-1]
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
    problems = check_graph(spec, file, lines)
    if problems:
        raise SpecError(problems)
    return spec


def _problem(file: str, lines: dict, error: dict, data: dict) -> Problem:
    loc = _without_tag(tuple(error["loc"]))
    where = ".".join(str(p) for p in loc)
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


def check_graph(spec: Spec, file: str, lines: dict) -> list[Problem]:
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
                braces = "" if "{" in str(exc) else " (write {{ and }} for literal braces)"
                add(loc, f"not a valid template: {exc}{braces}")
        if isinstance(node, AgentNode):
            for i, tool in enumerate(node.approve):
                if tool not in node.tools:
                    add(("nodes", name, "approve", i), f"{tool!r} is not among the node's tools")
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
            add(
                ("nodes", sorted(loop)[0]),
                f"loop {' -> '.join(sorted(loop))} has no way out: add a route to "
                "`end` or to a node outside it",
            )
    ancestors = {name: _ancestors(spec, name) for name in spec.nodes}
    for name, node in spec.nodes.items():
        available = set(BUILTIN_KEYS)
        for other in ancestors[name]:
            available |= spec.provides(other)
        for loc, keys in _reads(name, node):
            for key in sorted(keys - available):
                add(
                    loc,
                    f"template variable {{{key}}} is provided by no node before {name!r} "
                    f"(available: {', '.join(sorted(available))})",
                )
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
    if isinstance(node, GenerateNode | AgentNode):
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
    return {
        name
        for name in spec.nodes
        if any(target in _reachable(spec, s) for s in spec.successors(name) if s != END)
    }


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
