"""The langgraph target: langgraph.json, a module that builds the same graph without the
workbench (the node library copied next to it), its requirements and a README."""

from __future__ import annotations

import hashlib
import json
from importlib import resources

from agents.export.context import ExportContext, Writer, models_used
from agents.spec import Spec
from workbench.core.errors import WorkflowError

# Copied verbatim (imports renamed): the export runs the very code the workbench runs.
_VENDORED = {
    "wb_agents/spec.py": ("agents", "spec.py"),
    "wb_agents/checks.py": ("agents", "checks.py"),
    "wb_agents/nodes.py": ("agents", "nodes.py"),
    "wb_agents/graph.py": ("agents", "graph.py"),
    "wb_agents/tools.py": ("agents", "tools.py"),
    "wb_agents/guardrails.py": ("agents", "guardrails.py"),
    "wb_agents/prompt_template.py": ("agents", "prompt_template.py"),
    "wb_agents/tool_registry.py": ("agents", "tool_registry.py"),
    "wb_agents/mcp_client.py": ("agents", "mcp_client.py"),
    "wb_agents/redaction.py": ("workbench.core", "redaction.py"),
    "wb_agents/fusion.py": ("indexes", "fusion.py"),
    "wb_agents/sampling.py": ("local_models", "sampling.py"),
    "wb_runtime.py": ("agents.export", "http_runtime.py"),
}
REQUIREMENTS = [
    "langgraph==1.2.22",
    "pydantic==2.14.3",
    "PyYAML==6.0.3",
    "httpx==0.28.1",
    "lancedb==0.40.0",
    "sentence-transformers==6.2.0",
    "typing_extensions==4.16.0",
    # agent nodes: tool arguments checked against their schemas, and MCP servers' tools
    "jsonschema==4.26.0",
    "mcp==2.3.0",
    "httpx2==2.17.0",
]


def _vendored(package: str, name: str) -> str:
    text = resources.files(package).joinpath(name).read_text(encoding="utf-8")
    text = text.replace("from agents.", "from wb_agents.").replace(
        "from agents import", "from wb_agents import"
    )
    text = text.replace("from indexes.fusion import", "from wb_agents.fusion import")
    text = text.replace("from local_models.sampling import", "from wb_agents.sampling import")
    return text.replace("from workbench.core.redaction import", "from wb_agents.redaction import")


def write_langgraph(spec: Spec, spec_text: str, context: ExportContext, writer: Writer) -> None:
    module = f"{spec.name.replace('-', '_')}_graph"
    digest = hashlib.sha256(spec_text.encode()).hexdigest()[:16]
    writer.write(f"{spec.name}.yaml", spec_text)
    for relative, (package, name) in _VENDORED.items():
        writer.write(relative, _vendored(package, name))
    writer.write("wb_agents/__init__.py", '"""The workbench node library, copied by `workbench export`."""\n')
    _write_tools(spec, context, writer)
    writer.write(f"{module}.py", _MODULE.format(name=spec.name, digest=digest))
    writer.write("requirements.txt", "\n".join(REQUIREMENTS) + "\n")
    writer.write("Dockerfile", _DOCKERFILE)
    config = {
        "$schema": "https://langgra.ph/schema.json",
        "dependencies": ["."],
        "graphs": {spec.name: f"./{module}.py:graph"},
        "env": ".env",
        "python_version": "3.11",
    }
    path = writer.write("langgraph.json", json.dumps(config, indent=2) + "\n")
    used = models_used(spec, context.router_local, context.escalation[0] if context.escalation else None)
    collection = next(iter(context.collections.values()), {})
    writer.write(
        ".env.example",
        _ENV.format(
            router=context.router_local or "",
            escalate=context.escalation[0] if context.escalation else "",
            embedding=collection.get("embedding_model", ""),
            lancedb=context.workspace / "lancedb",
            workspace=context.workspace,
            fusion=context.fusion.method,
            vector_weight=context.fusion.vector_weight,
            rrf_k=context.fusion.rrf_k,
        ),
    )
    writer.write(
        "README.md",
        _README.format(name=spec.name, module=module, models=", ".join(used) or "none", digest=digest),
    )
    _validate(path)


def _write_tools(spec: Spec, context: ExportContext, writer: Writer) -> None:
    """What agent nodes call: the user's tools (<workspace>/tools/*.py, copied as they are) and
    the settings of the MCP servers whose tools they name (mcp.json; secrets by variable name,
    as in workbench.toml)."""
    from agents.mcp_client import SEPARATOR
    from agents.spec import AgentNode

    named = {tool for node in spec.nodes.values() if isinstance(node, AgentNode) for tool in node.tools}
    if not named:
        return
    folder = context.workspace / "tools"
    for path in sorted(folder.glob("*.py")) if folder.is_dir() else []:
        writer.write(f"tools/{path.name}", path.read_text(encoding="utf-8"))
    servers = {tool.split(SEPARATOR, 1)[0] for tool in named if SEPARATOR in tool}
    used = {name: settings for name, settings in context.mcp.items() if name in servers}
    if used:
        writer.write("mcp.json", json.dumps(used, indent=2) + "\n")


def _validate(path) -> None:
    """langgraph.json checked by the LangGraph CLI package's own validator."""
    import click
    from langgraph_cli.config import validate_config_file

    try:
        validate_config_file(path)
    except (click.UsageError, ValueError) as exc:
        raise WorkflowError(
            f"the generated {path.name} is not valid for the LangGraph CLI: {exc}",
            "this is a bug in the export; please report it",
        ) from None


_MODULE = '''"""The `{name}` workflow as a LangGraph graph, generated by `workbench export --target langgraph`
from {name}.yaml (sha256 {digest}...). It needs no workbench: the node library is in wb_agents/,
models are reached through an OpenAI-compatible endpoint and collections through LanceDB
(settings: .env.example).

    from {name}_graph import graph, run
    print(run("your question")["answer"])
"""

from pathlib import Path

from wb_agents.graph import build_graph, initial_state
from wb_agents.checks import parse_spec
from wb_runtime import HttpRuntime

SPEC = parse_spec((Path(__file__).parent / "{name}.yaml").read_text(encoding="utf-8"), "{name}.yaml")


def make_graph(runtime=None, checkpointer=None, approvals=None):
    return build_graph(SPEC, runtime or HttpRuntime.from_env(), checkpointer=checkpointer, approvals=approvals)


# What langgraph.json serves. The LangGraph server adds its own checkpointer, so a call an agent
# node marks `approve` interrupts the run there, for a person to resume (Command(resume=...)).
graph = make_graph(approvals=True)


def run(text: str, runtime=None) -> dict:
    """One run in this process, no checkpointer: calls that need approval are denied."""
    return make_graph(runtime).invoke(initial_state(text), {{"recursion_limit": SPEC.max_steps}})
'''

_ENV = """\
# OpenAI-compatible endpoint for every model of the workflow: the LiteLLM proxy of the litellm
# export (it routes local names to vLLM and falls back to the cloud), or vLLM / llama.cpp directly.
WORKFLOW_LLM_BASE_URL=http://localhost:4000/v1
WORKFLOW_LLM_API_KEY=
# openai (OpenAI or the LiteLLM proxy), vllm, or llamacpp (python -m llama_cpp.server)
WORKFLOW_LLM_KIND=openai
WORKFLOW_ROUTER_MODEL={router}
WORKFLOW_ESCALATE_MODEL={escalate}
# Collections: the workbench's LanceDB folder (copy it, or point at object storage).
LANCEDB_URI={lancedb}
EMBEDDING_MODEL={embedding}
# Hybrid search's fusion, as this workspace's [documents] settings (a collection's own reranker
# is not part of a deployment: it searches as with `--rerank none`).
WORKFLOW_FUSION={fusion}
WORKFLOW_FUSION_VECTOR_WEIGHT={vector_weight}
WORKFLOW_RRF_K={rrf_k}
# The folder the read_file tool may read.
DATA_DIR={workspace}
"""

_DOCKERFILE = """\
# The workflow on LangGraph's server (langgraph dev: in-memory, no Postgres or Redis needed).
FROM python:3.11-slim
WORKDIR /app
COPY requirements.txt .
# torch from the CPU index: sentence-transformers would otherwise pull a multi-GB CUDA build
RUN pip install --no-cache-dir --extra-index-url https://download.pytorch.org/whl/cpu \\
    torch==2.13.0 -r requirements.txt "langgraph-cli[inmem]==0.4.40" "langgraph-api==0.16.7"
COPY . .
# langgraph.json names .env: settings come from the container's environment (compose.yaml)
RUN touch .env
EXPOSE 2024
CMD ["langgraph", "dev", "--host", "0.0.0.0", "--port", "2024", "--no-browser", "--no-reload"]
"""

_README = """\
# {name}: LangGraph deployment

Generated by `workbench export {name} --target langgraph` (spec sha256 {digest}...).

- `langgraph.json`: the LangGraph CLI config (validated with langgraph-cli when exported);
  serves graph `{name}` from `{module}.py:graph`.
- `{module}.py`: builds the same graph as the workbench, from `{name}.yaml`, with the node
  library in `wb_agents/` (copied from the workbench) and `wb_runtime.py` for models and retrieval.
- `requirements.txt`: pinned dependencies. `.env.example`: the settings; copy it to `.env`.
- `Dockerfile`: the graph on LangGraph's server (in-memory), port 2024; the vllm export's
  compose.yaml builds it.

Models this workflow calls: {models}. Serve them behind one OpenAI-compatible endpoint (the
`litellm` export, or llama.cpp's server: `python -m llama_cpp.server --model MODEL.gguf
--model_alias NAME --port 8000`, then WORKFLOW_LLM_BASE_URL=http://127.0.0.1:8000/v1 and
WORKFLOW_LLM_KIND=llamacpp in `.env`), then, in this folder:

    cp .env.example .env      # and edit it
    pip install torch==2.13.0 -r requirements.txt 'langgraph-cli[inmem]==0.4.40' 'langgraph-api==0.16.7'
    python -c 'from {module} import run; print(run("your question")["answer"])'
    langgraph dev --host 127.0.0.1 --port 2024 --no-browser

Agent nodes: their tools are the built-ins, the workspace's own (copied into `tools/`) and
those of the MCP servers in `mcp.json` (the workbench's [mcp.NAME] settings; their secrets by
variable name, to set in the environment). A call to a tool the node marks `approve` interrupts
the run on the LangGraph server; resume it with a command, as LangGraph Studio does:
`POST /threads/THREAD/runs/wait {{"assistant_id": "{name}", "command": {{"resume": {{"approved": true}}}}}}`
(`false`, with a `"note"`, denies it). `run()` in this process has no one to ask: it denies them.

Runs are checkpointed by the LangGraph server. Traces: see the `otel` export.
"""
