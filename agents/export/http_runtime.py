"""The Runtime of an exported workflow: the same nodes and graph as in the workbench, with models
behind an OpenAI-compatible endpoint (a LiteLLM proxy, vLLM, llama.cpp's server) and retrieval
straight from LanceDB. `workbench export --target langgraph` copies this file as wb_runtime.py.

Settings come from the environment (see .env.example in the export):
  WORKFLOW_LLM_BASE_URL   OpenAI-compatible base URL, e.g. http://litellm:4000/v1
  WORKFLOW_LLM_API_KEY    its key, if it needs one
  WORKFLOW_LLM_KIND       what serves it: openai (OpenAI, a LiteLLM proxy: the default), vllm or
                          llamacpp; picks the structured-output form and the sampler settings
                          each takes, so answers match the workbench's
  WORKFLOW_ROUTER_MODEL   the model name that `auto` nodes use (the proxy's fallbacks escalate)
  WORKFLOW_ESCALATE_MODEL the cloud model escalate nodes use when the spec names none
  LANCEDB_URI             the LanceDB folder or object-store URI holding the collections
  EMBEDDING_MODEL         the sentence-transformers model folder the collections were built with
  DATA_DIR                the folder the read_file tool may read
  WORKFLOW_TOOLS_DIR      the user's tools (a copy of <workspace>/tools; default: tools/ here)
  WORKFLOW_MCP_CONFIG     the MCP servers' settings (default: mcp.json here)
  WORKFLOW_FUSION, WORKFLOW_FUSION_VECTOR_WEIGHT, WORKFLOW_RRF_K
                          hybrid search's fusion, as [documents] in the workbench's config
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Callable
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

from agents import tools
from agents.nodes import Refused
from indexes.fusion import Fusion, fuse
from local_models.sampling import MIN_P, REPEAT_PENALTY, TOP_K
from workbench.core.redaction import redact

__all__ = ["HttpRuntime"]


class _NoSpan:
    def set(self, key: str, value: Any) -> None:
        pass

    def set_payload(self, **values: Any) -> None:
        pass


class HttpRuntime:
    def __init__(
        self,
        base_url: str,
        api_key: str | None = None,
        router_model: str | None = None,
        escalate_model: str | None = None,
        lancedb_uri: str | None = None,
        embedding_model: str | None = None,
        data_dir: str | None = None,
        timeout_s: float = 120.0,
        fusion: Fusion | None = None,
        kind: str = "openai",
        tools_dir: str | None = None,
        mcp_config: str | None = None,
    ) -> None:
        if kind not in ("openai", "vllm", "llamacpp"):
            raise ValueError(f"WORKFLOW_LLM_KIND={kind!r}: use openai, vllm or llamacpp")
        self.kind = kind
        self.base_url = base_url.rstrip("/")
        self.headers = {"authorization": f"Bearer {api_key}"} if api_key else {}
        self.router_model, self.escalate_model = router_model, escalate_model
        self.lancedb_uri, self.embedding_model, self.data_dir = lancedb_uri, embedding_model, data_dir
        self.timeout_s = timeout_s
        self.fusion = fusion or Fusion()  # the workbench's hybrid search, same code and settings
        self._db = self._embedder = None
        here = Path(__file__).parent
        self.tools_dir = Path(tools_dir) if tools_dir else here / "tools"
        self.mcp_config = Path(mcp_config) if mcp_config else here / "mcp.json"
        self._tools: dict[str, Any] | None = None

    @classmethod
    def from_env(cls, **overrides: Any) -> HttpRuntime:
        env = os.environ.get
        settings = {
            "base_url": env("WORKFLOW_LLM_BASE_URL", "http://localhost:4000/v1"),
            "api_key": env("WORKFLOW_LLM_API_KEY"),
            "kind": env("WORKFLOW_LLM_KIND") or "openai",
            "router_model": env("WORKFLOW_ROUTER_MODEL"),
            "escalate_model": env("WORKFLOW_ESCALATE_MODEL"),
            "lancedb_uri": env("LANCEDB_URI"),
            "embedding_model": env("EMBEDDING_MODEL"),
            "data_dir": env("DATA_DIR"),
            "tools_dir": env("WORKFLOW_TOOLS_DIR"),
            "mcp_config": env("WORKFLOW_MCP_CONFIG"),
            "fusion": Fusion(
                method=env("WORKFLOW_FUSION") or Fusion.method,
                vector_weight=float(env("WORKFLOW_FUSION_VECTOR_WEIGHT") or Fusion.vector_weight),
                rrf_k=int(env("WORKFLOW_RRF_K") or Fusion.rrf_k),
            ),
        }
        return cls(**{**settings, **overrides})

    @contextmanager
    def span(self, name: str, attributes: dict[str, Any]):
        yield _NoSpan()  # the LangGraph server traces runs itself; see the otel export for shipping

    def _complete(self, model: str, messages, params: dict[str, Any]) -> dict[str, Any]:
        body: dict[str, Any] = {
            "model": model,
            "messages": messages,
            "stream": False,
            "temperature": params.get("temperature", 0.0),
            "top_p": params.get("top_p", 0.95),
            "max_tokens": params.get("max_tokens", 256),
        }
        if params.get("seed") is not None:
            body["seed"] = params["seed"]
        if params.get("tools"):  # an agent node's: OpenAI's function tools, as the workbench sends them
            body["tools"] = list(params["tools"])
            body["tool_choice"] = params.get("tool_choice") or "auto"
        # The workbench's local sampler settings (local_models/sampling.py, copied with this file):
        # llama.cpp's server would otherwise apply its own repetition penalty of 1.1.
        if self.kind == "llamacpp":
            body.update(repeat_penalty=REPEAT_PENALTY, top_k=TOP_K, min_p=MIN_P)
        elif self.kind == "vllm":
            body.update(repetition_penalty=REPEAT_PENALTY, top_k=TOP_K, min_p=MIN_P)
        if params.get("json_schema") is not None:
            if self.kind == "llamacpp":  # its server answers 500 to json_schema; this form works
                body["response_format"] = {"type": "json_object", "schema": params["json_schema"]}
            else:
                body["response_format"] = {
                    "type": "json_schema",
                    "json_schema": {"name": "answer", "schema": params["json_schema"], "strict": True},
                }
        response = httpx.post(
            f"{self.base_url}/chat/completions", json=body, headers=self.headers, timeout=self.timeout_s
        )
        response.raise_for_status()
        data = response.json()
        message = data["choices"][0]["message"]
        return {
            "text": message.get("content") or "",
            "model": data.get("model", model),
            "tool_calls": message.get("tool_calls") or None,
        }

    def chat(self, model: str, messages, params: dict[str, Any], on_text: Callable[[str], None] | None):
        if model == "auto":
            model = self.router_model or model
        result = self._complete(model, messages, params)
        if on_text is not None and result["text"]:
            on_text(result["text"])
        return result

    def escalate(self, model: str | None, messages, params: dict[str, Any], on_text):
        target = model or self.escalate_model
        if not target:
            raise Refused("no cloud model: set WORKFLOW_ESCALATE_MODEL")
        try:
            result = self._complete(target, messages, params)
        except httpx.HTTPError as exc:
            raise Refused(f"{target}: {exc}") from None
        if on_text is not None:
            on_text(result["text"])
        return result

    def retrieve(self, collection: str, query: str, k: int, mode: str) -> list[dict[str, Any]]:
        import lancedb

        if self._db is None:
            if not self.lancedb_uri or not self.embedding_model:
                raise RuntimeError("set LANCEDB_URI and EMBEDDING_MODEL to use retrieve nodes")
            from sentence_transformers import SentenceTransformer

            self._db = lancedb.connect(self.lancedb_uri)
            self._embedder = SentenceTransformer(self.embedding_model, device="cpu", local_files_only=True)
        table = self._db.open_table(collection)
        columns = ["id", "path", "text"]

        def vector(limit: int) -> list[dict[str, Any]]:
            query_vector = self._embedder.encode([query], normalize_embeddings=True, convert_to_numpy=True)[0]
            rows = (
                table.search(query_vector, vector_column_name="vector")
                .distance_type("cosine")
                .select([*columns, "_distance"])
                .limit(limit)
                .to_list()
            )
            return [{**r, "score": 1.0 - float(r.pop("_distance"))} for r in rows]

        def fts(limit: int) -> list[dict[str, Any]]:
            rows = (
                table.search(query, query_type="fts", fts_columns="text")
                .select([*columns, "_score"])
                .limit(limit)
            )
            return [{**r, "score": float(r.pop("_score"))} for r in rows.to_list()]

        if mode == "vector":
            hits = vector(k)
        elif mode == "fts":
            hits = fts(k)
        else:  # both legs fused as the workbench does (indexes/fusion.py, copied with this file)
            pool = self.fusion.pool(k)
            hits = fuse({"vector": vector(pool), "fts": fts(pool)}, self.fusion)[:k]
        return [
            {"id": h["id"], "path": h["path"], "text": h["text"], "score": round(float(h["score"]), 4)}
            for h in hits
        ]

    def tool(self, name: str, text: str, files: list[str]) -> str:
        if name == "calculator":
            return tools.calculator(text)
        if name == "read_file":
            if not self.data_dir:
                raise tools.ToolFailed("read_file needs DATA_DIR in this deployment")
            # the node's folders, under DATA_DIR (the workspace's documents, deployed with it)
            return tools.read_file([Path(self.data_dir) / folder for folder in files], text)
        raise tools.ToolFailed(f"tool {name!r} is not available in this deployment")

    def _registry(self) -> dict[str, Any]:
        """The tools an agent node may call: the built-ins, the user's (tools/*.py), the MCP
        servers' (mcp.json), as the workbench's registry gives them."""
        if self._tools is None:
            import json

            from agents.tool_registry import builtin_tools, load_user_tools, mcp_tools

            user, problems = load_user_tools(self.tools_dir)
            servers = {}
            if self.mcp_config.is_file():
                servers = {
                    name: _McpSettings(**settings)
                    for name, settings in json.loads(self.mcp_config.read_text(encoding="utf-8")).items()
                }
            served, down = mcp_tools(servers, self.tools_dir.parent)
            self._tools = {**served, **builtin_tools(), **user}
            for problem in problems + down:
                print(f"tools: {problem}", flush=True)  # the server's log: no tool is dropped in silence
        return self._tools

    def tool_specs(self, names: list[str]) -> list[dict[str, Any]]:
        known = self._registry()
        missing = [name for name in names if name not in known]
        if missing:
            raise tools.ToolFailed(f"no tool {', '.join(missing)} in this deployment")
        return [known[name].spec() for name in names]

    def call_tool(self, name: str, arguments: dict[str, Any], files: list[str]) -> str:
        from agents.tool_registry import check_arguments, cut, run_user_tool

        tool = self._registry().get(name)
        if tool is None:
            raise tools.ToolFailed(f"no tool {name!r} in this deployment")
        if tool.mcp_tool is not None:
            from agents.mcp_client import call_tool

            check_arguments(tool, arguments)
            server = tool.source.removeprefix("mcp:")
            settings = self._mcp_settings(server)
            return cut(call_tool(server, settings, self.tools_dir.parent, tool.mcp_tool, arguments))
        if tool.function is None:  # a built-in: its one text argument
            return self.tool(name, tool.builtin_text(arguments), files)
        return run_user_tool(tool, arguments)

    def _mcp_settings(self, server: str) -> Any:
        import json

        return _McpSettings(**json.loads(self.mcp_config.read_text(encoding="utf-8"))[server])

    def redact(self, text: str) -> tuple[str, dict[str, int]]:
        counts: Counter[str] = Counter()
        return redact(text, counts), dict(counts)


class _McpSettings:
    """One server of mcp.json: the fields of the workbench's [mcp.NAME]."""

    def __init__(
        self,
        command: str | None = None,
        args: list[str] | None = None,
        cwd: str | None = None,
        env: list[str] | None = None,
        url: str | None = None,
        bearer_env: str | None = None,
        timeout_s: float = 30.0,
    ) -> None:
        self.command, self.args, self.cwd, self.env = command, list(args or []), cwd, list(env or [])
        self.url, self.bearer_env, self.timeout_s = url, bearer_env, timeout_s
