"""A spec compiled into a LangGraph StateGraph: one graph node per spec node, plain edges for
`next`, conditional edges for route nodes. Each node runs inside a span the runtime opens, and
reports its start and end through ``emit``."""

from __future__ import annotations

import threading
import time
from contextlib import nullcontext
from typing import Any

from langgraph.graph import END, START, StateGraph

# typing's TypedDict before Python 3.12 cannot be introspected as pydantic needs, so LangGraph's
# server (langgraph-api) could not produce the graph's input schema on 3.11.
from typing_extensions import TypedDict

from agents.nodes import Emit, Runtime, State, make_node
from agents.spec import END as SPEC_END
from agents.spec import AgentNode, GenerateNode, RouteNode, Spec

__all__ = ["Stopped", "build_graph", "initial_state", "approval_node"]


class Stopped(Exception):
    """The run's stop was set: raised at a node boundary. (Plain, not a workbench error: this
    module is copied into LangGraph exports, which have no workbench.)"""

    def __init__(self, node: str) -> None:
        super().__init__(f"stopped at node {node}")
        self.node = node


def initial_state(text: str) -> State:
    return {"input": text, "steps": 0, "observations": []}


def build_graph(
    spec: Spec,
    runtime: Runtime,
    emit: Emit | None = None,
    checkpointer: Any = None,
    stop: threading.Event | None = None,
    approvals: bool | None = None,
):
    """``stop``, once set, ends the run before its next node, or at the end of the one running
    (whose update is then not kept: a resume runs that node again, whole). ``approvals``:
    whether a call that needs approval waits for it (an interrupt, which needs a checkpointer:
    by default, whether one is given; LangGraph's server brings its own) or is denied."""
    if approvals is None:
        approvals = checkpointer is not None
    emit = emit or (lambda event: None)
    # The state schema is the spec's own keys, so LangGraph checks every update against it.
    keys = spec.state_keys() | {"route_to", "agent_progress"}
    schema = TypedDict("State", {key: Any for key in sorted(keys)}, total=False)
    graph = StateGraph(schema)
    for name in spec.nodes:
        graph.add_node(name, _traced(spec, name, make_node(spec, name, runtime, emit), runtime, emit, stop))
    graph.add_edge(START, spec.start)
    for name, node in spec.nodes.items():
        if isinstance(node, RouteNode):
            targets = {t for t in [r.goto for r in node.routes] + [node.default]}
            graph.add_conditional_edges(name, _route_to, {t: (END if t == SPEC_END else t) for t in targets})
            continue
        after = END if node.next == SPEC_END else node.next
        if isinstance(node, AgentNode) and node.approve:
            asking = approval_node(name)
            graph.add_node(asking, _approval(name, asks=approvals))
            graph.add_conditional_edges(name, _waits_for(name), {True: asking, False: after})
            graph.add_edge(asking, name)
        else:
            graph.add_edge(name, after)
    return graph.compile(checkpointer=checkpointer)


def approval_node(name: str) -> str:
    """The graph node that asks a person about agent node ``name``'s calls."""
    return f"{name}__approval"


def _waits_for(name: str):
    def waits(state: State) -> bool:
        progress = state.get("agent_progress") or {}
        return progress.get("node") == name and progress.get("decision") is None

    return waits


def _approval(name: str, asks: bool):
    """A LangGraph interrupt with the calls to approve; the resume value is the decision:
    {"approved": bool, "note": str} (True/False alone will do). A run with no checkpointer (an
    eval, a workflow answering as a model) has no one to ask: its calls are denied."""

    def approval(state: State) -> State:
        from langgraph.types import interrupt

        progress = dict(state["agent_progress"])
        if not asks:
            decision: Any = {
                "approved": False,
                "note": "no one to approve it in this run (an eval or a model call)",
            }
        else:
            decision = interrupt({"node": name, "asks": progress["asks"]})
        if not isinstance(decision, dict):
            decision = {"approved": bool(decision)}
        progress["decision"] = {
            "approved": bool(decision.get("approved")),
            "note": str(decision.get("note") or ""),
        }
        return {"agent_progress": progress}

    approval.__name__ = approval_node(name)
    return approval


def _route_to(state: State) -> str:
    return state["route_to"]


def _traced(spec: Spec, name: str, function, runtime: Runtime, emit: Emit, stop: threading.Event | None):
    node = spec.nodes[name]
    attributes: dict[str, Any] = {"workbench.node": name, "workbench.node_type": node.type}
    if isinstance(node, GenerateNode):
        attributes.update(
            {
                "workbench.prompt.template_id": node.prompt.id,
                "workbench.prompt.template_version": str(node.prompt.version),
                "workbench.node_model": node.model,
            }
        )
    span_of = getattr(runtime, "span", None)

    def stopped() -> None:
        if stop is not None and stop.is_set():
            raise Stopped(name)

    def run(state: State) -> State:
        stopped()
        emit({"event": "node_start", "node": name, "type": node.type})
        start = time.perf_counter()
        with span_of(f"node.{name}", dict(attributes)) if span_of else nullcontext() as span:
            update = function(state)
            stopped()  # raised, the update is not checkpointed: it may be an answer cut short
            if span is not None:
                span.set_payload(update=update)
                for key in ("route_reason", "escalation_reason", "escalated_to"):
                    if update.get(key):
                        span.set(f"workbench.{key}", update[key])
        emit(
            {
                "event": "node_end",
                "node": name,
                "type": node.type,
                "update": update,
                "ms": round((time.perf_counter() - start) * 1000, 2),
            }
        )
        return update

    run.__name__ = name
    return run


def outline(spec: Spec) -> list[str]:
    """The graph as lines of text, start first, in the order a run visits nodes:
    `answer (generate smollm2) -> grade`; route nodes list their conditions."""
    from agents.spec import AgentNode, EscalateNode, GradeNode, RetrieveNode, ToolNode

    def label(name: str) -> str:
        node = spec.nodes[name]
        detail = {
            RetrieveNode: lambda n: f"{n.collection}, k={n.k}, {n.mode}",
            GenerateNode: lambda n: f"{n.model}, prompt {n.prompt.id} v{n.prompt.version}",
            GradeNode: lambda n: f"{n.model}, {n.criterion}",
            EscalateNode: lambda n: n.model or "router escalate_to",
            ToolNode: lambda n: ", ".join(n.tools),
            AgentNode: lambda n: f"{n.model} with {', '.join(n.tools)}, at most {n.max_steps} steps",
        }.get(
            type(node),
            lambda n: (
                getattr(n, "check", "")
                or (f"classify by {n.classify.model}" if getattr(n, "classify", None) else "")
            ),
        )
        text = detail(node)
        return f"{name} ({node.type}{': ' + text if text else ''})"

    order, todo = [], [spec.start]
    while todo:
        name = todo.pop(0)
        if name in order or name == SPEC_END:
            continue
        order.append(name)
        todo.extend(spec.successors(name))
    lines = [f"start -> {spec.start}"]
    for name in order + [n for n in spec.nodes if n not in order]:
        node = spec.nodes[name]
        if isinstance(node, RouteNode):
            lines.append(label(name))
            lines += [f"    if {route.when} -> {route.goto}" for route in node.routes]
            lines.append(f"    else -> {node.default}")
        else:
            lines.append(f"{label(name)} -> {node.next}")
    return lines
