"""Runs of a workflow, checkpointed with LangGraph's SQLite checkpointer after every node step, so
a run killed mid-way resumes where it stopped without redoing finished nodes.

<workspace>/checkpoints.sqlite holds LangGraph's checkpoints and our table of runs (thread id,
workflow, the spec text it started with, input, status). Resuming rebuilds the graph from that
stored spec text, so editing the spec file meanwhile cannot change a run half-way.
"""

from __future__ import annotations

import secrets
import sqlite3
import threading
import time
from contextlib import closing
from pathlib import Path
from typing import Any

from agents.checks import parse_spec
from agents.graph import Stopped, build_graph, initial_state
from agents.nodes import Emit, Runtime
from workbench.core.errors import RunStopped, UsageError, WorkflowError, WorkflowNotFound

__all__ = ["Runs", "execute"]


class Runs:
    def __init__(self, path: Path) -> None:
        self.path = path

    def connect(self) -> sqlite3.Connection:
        # Several processes may run workflows at once: wait for the lock rather than fail.
        con = sqlite3.connect(self.path, timeout=30, check_same_thread=False, isolation_level=None)
        con.execute("PRAGMA journal_mode=WAL")
        for path in (self.path, Path(f"{self.path}-wal"), Path(f"{self.path}-shm")):
            if path.exists() and path.stat().st_mode & 0o077:
                path.chmod(0o600)  # runs hold inputs and answers: the owner's only
        con.execute(
            "CREATE TABLE IF NOT EXISTS workbench_runs (thread_id TEXT PRIMARY KEY, workflow TEXT NOT NULL, "
            "spec TEXT NOT NULL, input TEXT NOT NULL, status TEXT NOT NULL, started_ns INTEGER NOT NULL, "
            "ended_ns INTEGER, trace_ids TEXT NOT NULL DEFAULT '', error TEXT)"
        )
        columns = {row[1] for row in con.execute("PRAGMA table_info(workbench_runs)")}
        if "owner" not in columns:
            # The gateway key that started a run (NULL: this machine's user, in process). A
            # workspace from before it keeps its runs, owned by the local user.
            con.execute("ALTER TABLE workbench_runs ADD COLUMN owner TEXT")
        return con

    def start(
        self, con: sqlite3.Connection, workflow: str, spec_text: str, text: str, owner: str | None = None
    ) -> str:
        thread_id = f"{workflow}-{time.strftime('%Y%m%d-%H%M%S')}-{secrets.token_hex(3)}"
        con.execute(
            "INSERT INTO workbench_runs (thread_id, workflow, spec, input, status, started_ns, owner) "
            "VALUES (?, ?, ?, ?, 'running', ?, ?)",
            (thread_id, workflow, spec_text, text, time.time_ns(), owner),
        )
        return thread_id

    def get(self, con: sqlite3.Connection, thread_id: str, owner: str | None = None) -> dict[str, Any]:
        """The run ``thread_id``; with ``owner`` (a gateway key), only a run that key started:
        another key's run is answered as one that does not exist."""
        cursor = con.execute("SELECT * FROM workbench_runs WHERE thread_id = ?", (thread_id,))
        row = cursor.fetchone()
        if row is not None and owner is not None:
            if dict(zip([c[0] for c in cursor.description], row)).get("owner") != owner:
                row = None
        if row is None:
            raise WorkflowNotFound(
                f"no workflow run {thread_id!r} in this workspace",
                "see `workbench workflows runs` for the thread ids",
            )
        return dict(zip([c[0] for c in cursor.description], row))

    def list(self, limit: int = 50) -> list[dict[str, Any]]:
        if not self.path.exists():
            return []
        with closing(self.connect()) as con:
            cursor = con.execute(
                "SELECT thread_id, workflow, input, status, started_ns, ended_ns, trace_ids, error "
                "FROM workbench_runs ORDER BY started_ns DESC LIMIT ?",
                (limit,),
            )
            return [dict(zip([c[0] for c in cursor.description], row)) for row in cursor.fetchall()]

    def finish(
        self, con: sqlite3.Connection, thread_id: str, status: str, trace_id: str, error: str | None
    ) -> None:
        con.execute(
            "UPDATE workbench_runs SET status = ?, ended_ns = ?, error = ?, "
            "trace_ids = trim(trace_ids || ' ' || ?) WHERE thread_id = ?",
            (status, time.time_ns(), error, trace_id, thread_id),
        )


def execute(
    runs: Runs,
    runtime: Runtime,
    workflow: str | None,
    spec_text: str | None,
    text: str | None,
    thread_id: str | None,
    emit: Emit | None,
    trace_id: str,
    stop: threading.Event | None = None,
    owner: str | None = None,
    decision: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Start a run (``text``) or resume one (``thread_id``); returns {"thread_id", "state",
    "resumed", "skipped"} where skipped lists the nodes a resume did not redo, and "waiting"
    (the calls an agent node asks a person to approve) when the run waits, status "waiting":
    its resume gives ``decision`` ({"approved": bool, "note": str}). Setting ``stop`` ends the
    run at its next node boundary, status "stopped", resumable."""
    from langgraph.checkpoint.sqlite import SqliteSaver
    from langgraph.errors import GraphRecursionError
    from langgraph.types import Command

    con = runs.connect()
    try:
        if thread_id is None:
            assert workflow is not None and spec_text is not None and text is not None
            thread_id = runs.start(con, workflow, spec_text, text, owner)
            resumed = False
        else:
            row = runs.get(con, thread_id, owner)
            spec_text, workflow, resumed = row["spec"], row["workflow"], True
        spec = parse_spec(spec_text, f"{workflow} (run {thread_id})")
        graph = build_graph(spec, runtime, emit, SqliteSaver(con), stop)
        config = {"configurable": {"thread_id": thread_id}, "recursion_limit": spec.max_steps}
        skipped: list[str] = []
        if resumed:
            snapshot = graph.get_state(config)
            asked = _waiting(snapshot)
            if asked is not None and decision is None:
                raise UsageError(
                    f"run {thread_id} waits for approval of {_asks(asked)}",
                    f"answer it: workbench run --resume {thread_id} --approve (or --deny [--note WHY])",
                )
            if asked is None and decision is not None:
                raise UsageError(
                    f"run {thread_id} waits for no approval", f"resume it: workbench run --resume {thread_id}"
                )
            skipped = [name for name in _done_nodes(graph, config)]
            if not snapshot.next and snapshot.values:  # finished before: nothing to redo
                runs.finish(con, thread_id, "done", trace_id, None)
                return {
                    "thread_id": thread_id,
                    "state": snapshot.values,
                    "resumed": True,
                    "skipped": skipped,
                    "workflow": workflow,
                }
        if emit is not None:
            emit(
                {
                    "event": "run_start",
                    "thread_id": thread_id,
                    "workflow": workflow,
                    "resumed": resumed,
                    "skipped": skipped,
                }
            )
        try:
            # durability="sync": a step's checkpoint is on disk before the next node starts, so a
            # kill at any point loses at most the node that was running.
            start: Any = initial_state(text or "")
            if resumed:
                start = Command(resume=decision) if decision is not None else None
            graph.invoke(start, config, durability="sync")
        except GraphRecursionError:
            runs.finish(con, thread_id, "failed", trace_id, f"stopped after {spec.max_steps} steps")
            raise WorkflowError(
                f"{workflow} stopped after {spec.max_steps} node steps (its max_steps)",
                "a loop did not reach its exit: check its route conditions, or raise max_steps",
            ) from None
        except (Stopped, KeyboardInterrupt) as exc:
            why = str(exc) if isinstance(exc, Stopped) else "stopped by ctrl+c"
            runs.finish(con, thread_id, "stopped", trace_id, why)
            raise RunStopped(
                f"{workflow} run {thread_id} {why}",
                f"what its finished nodes did is kept: workbench run --resume {thread_id}",
            ) from None
        except BaseException as exc:
            message = getattr(exc, "message", None) or f"{type(exc).__name__}: {exc}"
            runs.finish(con, thread_id, "failed", trace_id, message)
            raise
        snapshot = graph.get_state(config)
        asked = _waiting(snapshot)
        runs.finish(con, thread_id, "done" if asked is None else "waiting", trace_id, None)
        outcome = {
            "thread_id": thread_id,
            "state": snapshot.values,
            "resumed": resumed,
            "skipped": skipped,
            "workflow": workflow,
        }
        if asked is not None:
            outcome["waiting"] = asked
            if emit is not None:
                emit({"event": "approval", "thread_id": thread_id, **asked})
        return outcome
    finally:
        con.close()


def _waiting(snapshot) -> dict[str, Any] | None:
    """What the run's interrupt asks ({"node", "asks": [{"id", "tool", "arguments"}]}), if it waits."""
    for interrupt in getattr(snapshot, "interrupts", ()) or ():
        if isinstance(interrupt.value, dict) and "asks" in interrupt.value:
            return interrupt.value
    return None


def _asks(asked: dict[str, Any]) -> str:
    return ", ".join(f"{ask['tool']}({ask['arguments']})" for ask in asked["asks"])


def _done_nodes(graph, config) -> list[str]:
    """Nodes that already ran in this thread, oldest first, from the checkpoint history."""
    done: list[str] = []
    for snapshot in reversed(list(graph.get_state_history(config))):
        for name in (snapshot.metadata or {}).get("writes", {}) or {}:
            if not name.startswith("__"):
                done.append(name)
    if not done:  # newer LangGraph keeps no `writes` in metadata: fall back to the steps' tasks
        for snapshot in reversed(list(graph.get_state_history(config))):
            done += [
                task.name
                for task in snapshot.tasks
                if task.result is not None and not task.name.startswith("__")
            ]
    return done
