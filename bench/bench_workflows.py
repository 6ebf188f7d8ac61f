"""Per-node framework overhead of a workflow run, in ms, against raw LangGraph.

A chain of 40 generate nodes over a runtime whose model answers at once (nothing to wait for),
so what is left is the framework: our node wrapper, template filling, the span per node and the
trace writer, against a raw StateGraph of 40 functions that do the same state update. Both are
measured without a checkpointer and with LangGraph's SQLite checkpointer (durability="sync",
what `workbench run` uses), in the same process.
"""

from __future__ import annotations

import sqlite3
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any, TypedDict

from figures import emit

NODES = 40
REPEATS = 15


class FastRuntime:
    """Models that answer instantly; spans go to the real trace writer."""

    def __init__(self, tracer) -> None:
        self.tracer = tracer

    def span(self, name: str, attributes: dict[str, Any]):
        return self.tracer.span(name, "workflow", attributes)

    def chat(self, model, messages, params, on_text):
        return {"text": "ok", "model": model}


def spec_text() -> str:
    lines = ["name: chain", "start: n0", f"max_steps: {NODES + 5}", "nodes:"]
    for i in range(NODES):
        lines += [
            f"  n{i}:",
            "    type: generate",
            "    model: stub",
            "    prompt: {id: p, template: '{input}'}",
            f"    next: {'n' + str(i + 1) if i + 1 < NODES else 'end'}",
        ]
    return "\n".join(lines) + "\n"


def raw_graph(checkpointer=None):
    from langgraph.graph import END, START, StateGraph

    class State(TypedDict, total=False):
        input: str
        answer: str

    graph = StateGraph(State)
    for i in range(NODES):
        graph.add_node(f"n{i}", lambda state: {"answer": "ok"})
    graph.add_edge(START, "n0")
    for i in range(NODES):
        graph.add_edge(f"n{i}", f"n{i + 1}" if i + 1 < NODES else END)
    return graph.compile(checkpointer=checkpointer)


def timed(run) -> float:
    run(0)  # warm up
    samples = []
    for repeat in range(REPEATS):
        start = time.perf_counter()
        run(repeat + 1)
        samples.append(time.perf_counter() - start)
    return statistics.median(samples) / NODES * 1000  # ms per node


def main() -> None:
    from langgraph.checkpoint.sqlite import SqliteSaver

    from agents.checks import parse_spec
    from agents.graph import build_graph, initial_state
    from workbench.core.tracing import SpoolWriter, Tracer, TraceStore

    spec = parse_spec(spec_text())
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        sink = SpoolWriter(root / "spool", TraceStore(root), flush_interval_s=1.0)
        runtime = FastRuntime(Tracer(sink))

        def config(i: int) -> dict:
            return {"configurable": {"thread_id": f"t{i}-{time.time_ns()}"}, "recursion_limit": NODES + 5}

        raw = raw_graph()
        ours = build_graph(spec, runtime)
        raw_ms = timed(lambda i: raw.invoke({"input": "q"}))
        ours_ms = timed(lambda i: ours.invoke(initial_state("q")))

        con = sqlite3.connect(root / "cp.sqlite", check_same_thread=False, isolation_level=None)
        con.execute("PRAGMA journal_mode=WAL")
        raw_cp = raw_graph(SqliteSaver(con))
        ours_cp = build_graph(spec, runtime, checkpointer=SqliteSaver(con))
        raw_cp_ms = timed(lambda i: raw_cp.invoke({"input": "q"}, config(i), durability="sync"))
        ours_cp_ms = timed(lambda i: ours_cp.invoke(initial_state("q"), config(i), durability="sync"))
        build_ms = timed(lambda i: build_graph(spec, runtime)) * NODES
        sink.close()

    emit(
        "workflow node overhead, no checkpointer",
        ours_ms,
        "ms/node",
        "report",
        None,
        ours_ms / raw_ms,
        f"raw LangGraph {raw_ms:.3f} ms/node; the difference is our wrapper, templates and span",
    )
    emit(
        "workflow node overhead, SQLite checkpoint per step",
        ours_cp_ms,
        "ms/node",
        "report",
        None,
        ours_cp_ms / raw_cp_ms,
        f"raw LangGraph + same SqliteSaver {raw_cp_ms:.3f} ms/node",
    )
    emit("workflow graph build (40 nodes)", build_ms, "ms", "report", None, None, "once per run")


if __name__ == "__main__":
    main()
