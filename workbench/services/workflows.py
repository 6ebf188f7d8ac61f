"""Workflows as the service layer offers them: specs in <workspace>/workflows/, runs with the
workbench's own models, collections and tools, checks of a spec against this workspace, and
exports. The LangGraph side lives in agents/; this module is the Runtime it runs on."""

from __future__ import annotations

import builtins
import re
import secrets
import threading
from collections import Counter
from collections.abc import Callable
from importlib import resources
from pathlib import Path
from typing import Any

from agents.nodes import Refused
from agents.spec import (
    AgentNode,
    EscalateNode,
    GenerateNode,
    GradeNode,
    Problem,
    RetrieveNode,
    RouteNode,
    Spec,
    SpecError,
)
from workbench.core.errors import UsageError, WorkbenchError, WorkflowError, WorkflowNotFound
from workbench.core.tracing import current_span

__all__ = ["Workflows", "WorkbenchRuntime", "TEMPLATES", "describe_update"]

TEMPLATES = ("rag", "router", "agent")
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]{0,63}$")


class WorkbenchRuntime:
    """The agents.nodes.Runtime of the workbench: local llama.cpp, cloud endpoints, the router,
    LanceDB collections, the trace store; every node a span under the run's root span."""

    def __init__(
        self, service, root, usage: list | None = None, cancel: threading.Event | None = None
    ) -> None:
        self.service, self.root = service, root
        self.usage = usage  # every GenerationResult of the run, when the caller counts them (evals)
        self.cancel = cancel  # the run's stop: it also cuts the answer being generated short

    def span(self, name: str, attributes: dict[str, Any]):
        # LangGraph may run a node on a thread of its own: the root span is the parent then.
        return self.service.tracer.span(name, "workflow", attributes, parent=current_span() or self.root)

    def chat(self, model: str, messages, params: dict[str, Any], on_text) -> dict[str, Any]:
        result = self.service.chat(model, messages, _generation(params), on_text, cancel=self.cancel)
        if self.usage is not None:
            self.usage.append(result)
        return {
            "text": result.text,
            "model": result.model,
            "escalation_reason": result.extra.get("escalation_reason"),
            "tool_calls": result.tool_calls,
        }

    def tool_specs(self, names: builtins.list[str]) -> builtins.list[dict[str, Any]]:
        from agents.tools import ToolFailed

        known, _ = self.service.workflows.tools()
        missing = [name for name in names if name not in known]
        if missing:
            raise ToolFailed(f"no tool {', '.join(missing)} (see `workbench tools list`)")
        return [known[name].spec() for name in names]

    def call_tool(self, name: str, arguments: dict[str, Any], files: builtins.list[str]) -> str:
        from agents.tool_registry import run_user_tool
        from agents.tools import ToolFailed

        known, _ = self.service.workflows.tools()
        tool = known.get(name)
        if tool is None:
            raise ToolFailed(f"no tool {name!r}")
        if tool.function is None and tool.mcp_tool is None:  # a built-in: its one text argument
            return self.tool(name, tool.builtin_text(arguments), files)
        attributes = _tool_attributes(name)
        if tool.mcp_tool is not None:
            attributes["workbench.mcp.server"] = tool.source.removeprefix("mcp:")
        with self.span(f"execute_tool {name}", attributes) as span:
            span.set_payload(arguments=arguments)
            try:
                output = (
                    run_user_tool(tool, arguments) if tool.mcp_tool is None else self._mcp(tool, arguments)
                )
            except ToolFailed as exc:
                span.fail(f"ToolFailed: {exc}")
                raise
            span.set_payload(result=output[:2000])
            return output

    def _mcp(self, tool, arguments: dict[str, Any]) -> str:
        from agents.mcp_client import call_tool
        from agents.tool_registry import check_arguments, cut

        check_arguments(tool, arguments)
        server = tool.source.removeprefix("mcp:")
        config = self.service.config.mcp[server]
        return cut(call_tool(server, config, self.service.workspace.root, tool.mcp_tool, arguments))

    def escalate(self, model: str | None, messages, params: dict[str, Any], on_text) -> dict[str, Any]:
        from workbench.core.errors import CloudError

        router = self.service.router
        target = model or self.service.config.router.escalate_to
        if not target:
            raise Refused("no cloud model: set [router] escalate_to in workbench.toml or `model` on the node")
        refused = router.budget_refusal()
        if refused:
            raise Refused(refused)
        endpoint, _, name = target.partition("/")
        try:
            result = self.service.cloud.chat(
                endpoint, name, messages, _generation(params), on_text, cancel=self.cancel
            )
        except CloudError as exc:
            raise Refused(exc.one_line()) from None
        if self.usage is not None:
            self.usage.append(result)
        return {"text": result.text, "model": result.model}

    def retrieve(self, collection: str, query: str, k: int, mode: str) -> builtins.list[dict[str, Any]]:
        hits = self.service.search(collection, query, mode=mode, k=k)
        return [
            {"id": h["id"], "path": h["path"], "text": h["text"], "score": round(float(h["score"]), 4)}
            for h in hits
        ]

    def tool(self, name: str, text: str, files: builtins.list[str]) -> str:
        """One tool call, traced as OpenTelemetry's GenAI conventions name it: a span
        `execute_tool NAME` with the tool's name, a call id, and the input and output as payloads."""
        from agents import tools

        with self.span(f"execute_tool {name}", _tool_attributes(name)) as span:
            span.set_payload(arguments=text)
            try:
                output = self._tool(name, text, files)
            except tools.ToolFailed as exc:
                span.fail(f"ToolFailed: {exc}")
                raise
            span.set_payload(result=output[: tools.MAX_OUTPUT])
            return output

    def _tool(self, name: str, text: str, files: builtins.list[str]) -> str:
        from agents import tools

        if name == "calculator":
            return tools.calculator(text)
        if name == "read_file":
            workspace = self.service.workspace
            roots = [workspace.root / folder for folder in files]  # an absolute folder stays as it is
            private = [workspace.root / n for n in tools.PRIVATE]
            private += [workspace.models_dir, workspace.root / "lancedb", workspace.root / "responses"]
            return tools.read_file(roots, text, private=private)
        if name == "sql":
            return read_only_sql(self.service, text)
        raise tools.ToolFailed(f"no tool {name!r}")

    def redact(self, text: str) -> tuple[str, dict[str, int]]:
        from workbench.core.redaction import redact

        counts: Counter[str] = Counter()
        return redact(text, counts), dict(counts)


def read_only_sql(service, query: str) -> str:
    """The sql tool: one SELECT over the traces, at most SQL_ROWS rows and SQL_TIMEOUT_S seconds,
    as text (workflows' tool nodes and `workbench mcp`'s query_traces)."""
    from agents import tools
    from workbench.core.errors import QueryError

    service.flush_traces()
    try:
        columns, rows = service.store.sql(
            tools.check_select(query), limit=tools.SQL_ROWS, timeout_s=tools.SQL_TIMEOUT_S
        )
    except QueryError as exc:
        raise tools.ToolFailed(exc.message) from None
    return "\n".join([" | ".join(columns)] + [" | ".join(map(str, row)) for row in rows])


def query_traces(service, query: str) -> str:
    """read_only_sql for callers above the services (`workbench mcp`): a refusal is a QueryError."""
    from agents import tools
    from workbench.core.errors import QueryError

    try:
        return read_only_sql(service, query)
    except tools.ToolFailed as exc:
        raise QueryError(str(exc), "one SELECT over `spans`, `traces` or `scores`") from None


def describe_update(update: dict[str, Any]) -> str:
    """One line saying what a node did, for progress displays: `4 passages; 1 dropped`."""
    parts = []
    for key, value in update.items():
        if key == "context" and isinstance(value, list):
            parts.append(f"{len(value)} passages")
        elif key == "grade" and isinstance(value, dict):
            parts.append("judge failed" if value.get("failed") else f"grade {value.get('score')}")
        elif key in ("route_reason", "escalation_reason", "label"):
            parts.append(f"{key.replace('_', ' ')}: {value}")
        elif key == "guardrail" and isinstance(value, dict):
            if value["check"] == "injection":
                parts.append(f"{len(value.get('dropped', []))} passages dropped as prompt injection")
            elif value["check"] == "redact":
                parts.append(f"{value.get('redacted', 0)} redacted")
            else:
                parts.append("blocked by the output filter" if value.get("blocked") else "output passed")
        elif key == "observations" and value:
            last = value[-1]
            parts.append(f"{last['tool']}({last['input']}) -> {str(last['output'])[:60]}")
    return "; ".join(parts)


def _generation(params: dict[str, Any]):
    from local_models.types import GenerationParams

    return GenerationParams(
        temperature=params.get("temperature", 0.0),
        max_tokens=params.get("max_tokens", 256),
        seed=params.get("seed"),
        json_schema=params.get("json_schema"),
        tools=tuple(params.get("tools") or ()),
        tool_choice=params.get("tool_choice"),
    )


def _tool_attributes(name: str) -> dict[str, Any]:
    """A tool call's span attributes, as OpenTelemetry's GenAI conventions name them."""
    return {
        "gen_ai.operation.name": "execute_tool",
        "gen_ai.tool.name": name,
        "gen_ai.tool.call.id": f"call_{secrets.token_hex(12)}",
        "gen_ai.tool.type": "function",
    }


class Workflows:
    def __init__(self, service) -> None:
        self.service = service
        self.dir: Path = service.workspace.workflows_dir
        self._tools: tuple[Any, Any] | None = None  # (files and [mcp] stamp, (tools, problems))

    def tools(self) -> tuple[dict[str, Any], builtins.list[str]]:
        """Every tool by name (built-ins, <workspace>/tools/*.py, then the [mcp.NAME] servers')
        and the problems of the files and servers that gave none; loaded again when a file
        there or the [mcp] config changed."""
        from agents.tool_registry import builtin_tools, load_user_tools, mcp_tools

        folder = self.service.workspace.root / "tools"
        files = builtins.list(folder.glob("*.py")) if folder.is_dir() else []
        servers = self.service.config.mcp
        stamp = (
            max((f.stat().st_mtime for f in files), default=0.0),
            len(files),
            repr(sorted((name, server.model_dump_json()) for name, server in servers.items())),
        )
        if self._tools is None or self._tools[0] != stamp:
            user, problems = load_user_tools(folder)
            served, down = mcp_tools(servers, self.service.workspace.root)
            for name in builtins.sorted(set(served) & (set(user) | set(builtin_tools()))):
                problems.append(f"{served[name].source}: {name} is already a tool")
            self._tools = (stamp, ({**served, **builtin_tools(), **user}, problems + down))
        return self._tools[1]

    def path(self, name: str) -> Path:
        if not _NAME.match(name):
            raise WorkflowNotFound(f"{name!r} is not a workflow name", "use letters, digits, _ or -")
        path = self.dir / f"{name}.yaml"
        if not path.is_file():
            known = ", ".join(self.names()) or "none yet"
            raise WorkflowNotFound(
                f"no workflow {name!r} in {self.dir} (workflows: {known})",
                f"create one with `workbench workflows new {name} --from rag`",
            )
        return path

    def names(self) -> builtins.list[str]:
        return sorted(p.stem for p in self.dir.glob("*.yaml")) if self.dir.is_dir() else []

    def list(self) -> builtins.list[dict[str, Any]]:
        rows = []
        for name in self.names():
            problems = self.check(name)
            try:
                spec = self.load(name)
                description, nodes = spec.description.strip(), len(spec.nodes)
            except SpecError:
                description, nodes = "", None
            rows.append(
                {
                    "name": name,
                    "nodes": nodes,
                    "valid": not problems,
                    "problems": len(problems),
                    "description": description,
                }
            )
        return rows

    def load(self, name: str) -> Spec:
        from agents.checks import load_spec

        return load_spec(self.path(name))

    def describe(self, name: str) -> dict[str, Any]:
        """A workflow as plain data: its spec, where it lives, and its graph as lines of text."""
        from agents.graph import outline

        spec = self.load(name)
        return {
            "name": spec.name,
            "description": spec.description.strip(),
            "path": str(self.path(name)),
            "max_steps": spec.max_steps,
            "outline": outline(spec),
            "spec": spec.model_dump(by_alias=True),
        }

    def text(self, name: str) -> str:
        return self.path(name).read_text(encoding="utf-8")

    def new(self, name: str, template: str) -> Path:
        if template not in TEMPLATES:
            raise WorkflowError(f"no template {template!r}", f"use one of {', '.join(TEMPLATES)}")
        if not _NAME.match(name):
            raise WorkflowNotFound(f"{name!r} is not a workflow name", "use letters, digits, _ or -")
        target = self.dir / f"{name}.yaml"
        if target.exists():
            raise WorkflowError(f"{target} already exists", "pick another name, or delete the file first")
        text = resources.files("agents.templates").joinpath(f"{template}.yaml").read_text(encoding="utf-8")
        text = re.sub(r"^name: .*$", f"name: {name}", text, count=1, flags=re.MULTILINE)
        self.dir.mkdir(parents=True, exist_ok=True)
        tmp = target.with_suffix(".yaml.tmp")
        tmp.write_text(text, encoding="utf-8")
        tmp.replace(target)
        return target

    def check(self, name: str) -> builtins.list[Problem]:
        """Every problem of the spec: its own, then what this workspace lacks (models, collections)."""
        try:
            spec = self.load(name)
        except SpecError as exc:
            return exc.problems
        return self._workspace_problems(spec, str(self.path(name)))

    def _workspace_problems(self, spec: Spec, file: str) -> builtins.list[Problem]:
        problems = []
        models = set(self.service.model_choices()) | {"auto"}
        collections = set(self.service.collections.names())
        for name, node in spec.nodes.items():
            used = []
            if isinstance(node, GenerateNode | GradeNode | AgentNode):
                used.append(("model", node.model))
            if isinstance(node, AgentNode):
                known, _ = self.tools()
                for index, tool in enumerate(node.tools):
                    if tool not in known:
                        problems.append(
                            Problem(
                                file,
                                None,
                                f"nodes.{name}.tools.{index}",
                                f"tool {tool!r} is not a built-in, in <workspace>/tools nor an [mcp] server's (`workbench tools list`)",
                            )
                        )
            if isinstance(node, RouteNode) and node.classify:
                used.append(("classify.model", node.classify.model))
            if isinstance(node, EscalateNode) and node.model:
                used.append(("model", node.model))
            for field, model in used:
                if model not in models and not self._resolves(model):
                    problems.append(
                        Problem(
                            file,
                            None,
                            f"nodes.{name}.{field}",
                            f"model {model!r} is not in this workspace (`workbench models list`)",
                        )
                    )
            if isinstance(node, RetrieveNode) and node.collection not in collections:
                problems.append(
                    Problem(
                        file,
                        None,
                        f"nodes.{name}.collection",
                        f"collection {node.collection!r} does not exist yet "
                        f"(`workbench ingest PATH -c {node.collection}`)",
                    )
                )
        return problems

    def _resolves(self, model: str) -> bool:
        from local_models.catalog import resolve_model

        if not self.service.is_local(model):
            return False
        try:
            return resolve_model(self.service.workspace, model).present
        except WorkbenchError:
            return False

    def validate(self, name: str) -> Spec:
        problems = self.check(name)
        if problems:
            raise SpecError(problems)
        return self.load(name)

    def run(
        self,
        name: str | None,
        text: str | None,
        thread_id: str | None = None,
        emit: Callable[[dict[str, Any]], None] | None = None,
        stop: threading.Event | None = None,
        owner: str | None = None,
        decision: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Run workflow ``name`` on ``text``, or resume run ``thread_id``. One trace per call.
        Setting ``stop`` ends the run at its next node boundary (RunStopped; resumable).
        ``owner``: the gateway key the run belongs to, which alone may resume it (None: the
        local user, who may resume any). A run that waits for approval returns with "waiting";
        its resume gives ``decision`` ({"approved": bool, "note": str})."""
        from agents.run import Runs, execute

        spec_text = None
        if thread_id is None:
            if not name or text is None:
                raise UsageError("a run needs a workflow and --input", "or --resume THREAD_ID")
            if not text.strip():
                raise UsageError("the input is empty", 'pass --input "your question"')
            self.validate(name)
            spec_text = self.text(name)
        runs = Runs(self.service.workspace.root / "checkpoints.sqlite")
        attributes = {"workbench.workflow": name or "", "workbench.resumed": thread_id is not None}
        with self.service.tracer.span("workflow.run", "workflow", attributes) as root:
            root.set_payload(input=text)
            outcome = execute(
                runs,
                WorkbenchRuntime(self.service, root, cancel=stop),
                name,
                spec_text,
                text,
                thread_id,
                emit,
                root.trace_id,
                stop,
                owner,
                decision,
            )
            state = outcome["state"]
            root.update(
                {
                    "workbench.workflow": outcome["workflow"],
                    "workbench.thread_id": outcome["thread_id"],
                    "workbench.skipped_nodes": outcome["skipped"],
                }
            )
            if state.get("escalation_reason"):
                root.set("workbench.escalation_reason", state["escalation_reason"])
            if outcome.get("waiting"):
                root.set("workbench.waiting_for", [ask["tool"] for ask in outcome["waiting"]["asks"]])
            if decision is not None:
                root.set("workbench.approved", decision["approved"])
            root.set_payload(answer=state.get("answer"))
        self.service.flush_traces()
        return {**outcome, "trace_id": root.trace_id}

    def chat_with_tools(
        self,
        model: str,
        messages: builtins.list[dict[str, Any]],
        tools: builtins.list[str],
        params: dict[str, Any] | None = None,
        on_text: Callable[[str], None] | None = None,
        emit: Callable[[dict[str, Any]], None] | None = None,
        cancel: threading.Event | None = None,
        max_steps: int = 6,
    ):
        """A chat turn whose model may call ``tools`` (the Playground's): its calls run and
        their results go back, as an agent node's do, until it answers in words. Returns
        (the answer, the conversation with the turn's calls and results added). One trace."""
        from agents.nodes import run_calls
        from agents.spec import AgentNode

        node = AgentNode.model_validate(
            {
                "type": "agent",
                "model": model,
                "prompt": {"id": "playground", "template": "{input}"},
                "tools": tools,
            }
        )
        conversation = builtins.list(messages)
        with self.service.tracer.span("chat.tools", "workflow", {"workbench.tools": tools}) as root:
            runtime = WorkbenchRuntime(self.service, root, cancel=cancel)
            asked = {**(params or {}), "tools": tuple(runtime.tool_specs(tools)), "tool_choice": "auto"}
            for step in range(max_steps):
                last = step == max_steps - 1  # the last model call must answer in words
                result = self.service.chat(
                    model,
                    conversation,
                    {**asked, "tool_choice": "none"} if last else asked,
                    on_text,
                    cancel=cancel,
                )
                if not result.tool_calls or (cancel is not None and cancel.is_set()):
                    break
                conversation.append({"role": "assistant", "content": None, "tool_calls": result.tool_calls})
                run_calls(
                    node, runtime, result.tool_calls, conversation, [], None, emit or (lambda e: None), "chat"
                )
            root.set_payload(answer=result.text)
        result.trace_id = root.trace_id
        conversation.append({"role": "assistant", "content": result.text})
        return result, conversation

    def invoke(self, spec: Spec, text: str, usage: builtins.list | None = None) -> tuple[dict[str, Any], str]:
        """Run a spec once, with no checkpoints (evals resume case by case); (state, trace id)."""
        from agents.graph import build_graph, initial_state

        with self.service.tracer.span("workflow.run", "workflow", {"workbench.workflow": spec.name}) as root:
            from langgraph.errors import GraphRecursionError

            graph = build_graph(spec, WorkbenchRuntime(self.service, root, usage))
            try:
                state = graph.invoke(initial_state(text), {"recursion_limit": spec.max_steps})
            except GraphRecursionError:
                raise WorkflowError(
                    f"{spec.name} stopped after {spec.max_steps} node steps (its max_steps)",
                    "a loop did not reach its exit",
                ) from None
            root.set_payload(answer=state.get("answer"))
        return state, root.trace_id

    def as_model(self, name: str, messages: builtins.list[dict[str, Any]]):
        """Workflow ``name`` answering a chat as if it were a model (the gateway's
        `workflow/NAME`): it runs on the last user message, once, without checkpoints; a
        GenerationResult with the answer and the tokens and cost of every model call it made."""
        from local_models.types import GenerationResult

        text = next((str(m.get("content") or "") for m in reversed(messages) if m.get("role") == "user"), "")
        if not text.strip():
            raise UsageError("a workflow answers the last user message, and there is none", "send one")
        spec = self.validate(name)
        usage: builtins.list = []
        state, trace_id = self.invoke(spec, text, usage)
        result = GenerationResult(f"workflow/{name}", text=str(state.get("answer") or ""))
        result.input_tokens = sum(u.input_tokens for u in usage)
        result.output_tokens = sum(u.output_tokens for u in usage)
        result.cost_usd = sum(u.cost_usd or 0.0 for u in usage)
        result.trace_id = trace_id
        result.extra = {
            "route": "cloud" if any(u.extra.get("route") == "cloud" for u in usage) else "local",
            "escalation_reason": state.get("escalation_reason"),
        }
        return result

    def runs(self, limit: int = 50) -> builtins.list[dict[str, Any]]:
        from agents.run import Runs

        return Runs(self.service.workspace.root / "checkpoints.sqlite").list(limit)

    # -- export ---------------------------------------------------------------------------------

    def export(self, name: str, target: str, out: str | Path | None = None) -> builtins.list[Path]:
        """Write ``target``'s files for workflow ``name`` into ``out`` (default
        <workspace>/exports/NAME/TARGET); returns the files written."""
        from agents.export import TARGETS, export

        if target not in TARGETS:
            raise WorkflowError(f"unknown export target {target!r}", f"use one of {', '.join(TARGETS)}")
        spec = self.validate(name)
        folder = Path(out) if out else self.service.workspace.exports_dir / name / target
        if folder.exists() and not folder.is_dir():
            raise WorkflowError(f"{folder} is a file", "pass --out a folder")
        return export(spec, self.text(name), target, folder, self.export_context(spec))

    def export_context(self, spec: Spec):
        from agents.export import ExportContext, ModelRef, models_used
        from local_models.catalog import resolve_model

        config = self.service.config
        escalation = [m for m in [config.router.escalate_to] if m]
        for node in spec.nodes.values():
            if isinstance(node, EscalateNode) and node.model and node.model not in escalation:
                escalation.append(node.model)
        models = {}
        for model in (
            models_used(spec, config.router.local, escalation[0] if escalation else None) + escalation
        ):
            if self.service.is_local(model):
                info = resolve_model(self.service.workspace, model)
                models[model] = ModelRef(model, "local", path=str(info.path))
            else:
                endpoint_name, _, remote = model.partition("/")
                endpoint = config.cloud[endpoint_name]
                models[model] = ModelRef(
                    model,
                    "cloud",
                    endpoint=endpoint_name,
                    provider=endpoint.kind,
                    base_url=endpoint.base_url,
                    remote_model=remote,
                    api_key_env=endpoint.api_key_env,
                )
        collections = {}
        for node in spec.nodes.values():
            if isinstance(node, RetrieveNode):
                meta = self.service.collections.meta(node.collection)
                collections[node.collection] = {"embedding_model": meta.get("model_path", "")}
        from indexes.fusion import Fusion

        documents = config.documents
        fusion = Fusion(documents.fusion, documents.fusion_vector_weight, rrf_k=documents.rrf_k)
        mcp = {name: server.model_dump() for name, server in config.mcp.items()}
        return ExportContext(
            self.service.workspace.root, models, escalation, config.router.local, collections, fusion, mcp=mcp
        )

    def preview(self, name: str, target: str) -> dict[str, str]:
        """The files an export would write, relative path -> text, without writing them."""
        import tempfile

        with tempfile.TemporaryDirectory(prefix="workbench-export-") as folder:
            written = self.export(name, target, folder)
            root = Path(folder).resolve()
            return {str(p.relative_to(root)): p.read_text(encoding="utf-8") for p in written}
