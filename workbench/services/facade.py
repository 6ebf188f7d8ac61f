"""The service facade shared by the app, the CLI and the gateway (workbench serve). Widgets and commands
call this and only this; it knows nothing of Textual or of the terminal, and hands back plain
types. Each area lives in a module of its own (generation, documents, workflows, evals, usage,
doctor); this class opens them on first use, once, under a lock, since the app calls it from
several worker threads at once."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from workbench.core.config import load_config
from workbench.core.errors import ModelError
from workbench.core.tracing import Tracer, open_store, open_tracer
from workbench.core.workspace import Workspace, resolve_workspace_path

if TYPE_CHECKING:
    from workbench.core.hardware import Check
    from workbench.services.documents import Documents
    from workbench.services.evals import Evals
    from workbench.services.generation import Generation
    from workbench.services.responses import ResponseStore
    from workbench.services.usage import Usage
    from workbench.services.workflows import Workflows

__all__ = ["Service", "init_workspace"]

_Part = TypeVar("_Part")


class Service:
    def __init__(
        self,
        workspace: str | os.PathLike[str] | None = None,
        offline: bool = False,
        tracer: Tracer | None = None,
    ):
        """``tracer``: where spans go instead of the workspace's trace store (a Ray worker's
        spans go back to the driver, which alone writes the store)."""
        self.workspace = Workspace.open(workspace)
        self.config = self.workspace.config  # validate now: a broken file fails early and clearly
        self.offline = offline or self.config.offline
        # One store per workspace and process: the tracer's compactions and the app's reads
        # share its warnings (a quarantined segment reaches the doctor and the app).
        self.store = open_store(self.workspace.root)
        self._lock = threading.RLock()
        self._parts: dict[str, Any] = {} if tracer is None else {"tracer": tracer}

    def _part(self, name: str, build: Callable[[], _Part]) -> _Part:
        part = self._parts.get(name)
        if part is None:
            with self._lock:
                part = self._parts.get(name)
                if part is None:
                    part = self._parts[name] = build()
        return part

    # -- the areas ------------------------------------------------------------------------------

    @property
    def tracer(self) -> Tracer:
        return self._part("tracer", lambda: open_tracer(self.workspace, self.store))

    @property
    def generation(self) -> Generation:
        from workbench.services.generation import Generation

        return self._part("generation", lambda: Generation(self))

    @property
    def documents(self) -> Documents:
        from workbench.services.documents import Documents

        return self._part("documents", lambda: Documents(self))

    @property
    def workflows(self) -> Workflows:
        """Specs, runs and exports of <workspace>/workflows (services/workflows.py)."""
        from workbench.services.workflows import Workflows

        return self._part("workflows", lambda: Workflows(self))

    @property
    def evals(self) -> Evals:
        """Datasets, eval runs, comparisons and gates (services/evals.py)."""
        from workbench.services.evals import Evals

        return self._part("evals", lambda: Evals(self))

    @property
    def responses(self) -> ResponseStore:
        """The gateway's stored Responses-API answers (services/responses.py)."""
        from workbench.services.responses import ResponseStore

        return self._part("responses", lambda: ResponseStore(self.workspace.root))

    @property
    def usage(self) -> Usage:
        """Cost, latency, escalation and feedback over a window, each a SQL over spans."""
        from workbench.services.usage import Usage

        return self._part("usage", lambda: Usage(self))

    @property
    def models(self):
        """The loaded local models of this process (kept warm between calls)."""
        return self.generation.models

    @property
    def cloud(self):
        return self.generation.cloud

    @property
    def router(self):
        return self.generation.router

    @property
    def collections(self):
        return self.documents.collections

    def flush_traces(self) -> None:
        """Make every span of this process so far visible to readers (blocking)."""
        if "tracer" in self._parts:
            self.tracer.flush()

    def keep_traces(self) -> str | None:
        """Write this process's spans so far to the spool, where they are safe (the store takes
        them in when it compacts); None when they were written, else why not (a full disk). A
        command prints a trace id only after this, so an id always names a trace that exists."""
        if "tracer" not in self._parts:
            return None
        flush = getattr(self.tracer.sink, "flush", None)
        if flush is None:
            return None
        try:
            flush()
        except OSError as exc:
            return f"{exc.strerror or exc} ({self.workspace.root})"
        return None

    def close(self) -> None:
        """Unload the models of this process and write its last spans."""
        if "generation" in self._parts:
            self.generation.close()
        self.flush_traces()

    # -- status and doctor ----------------------------------------------------------------------

    def status(self) -> dict[str, Any]:
        from workbench.services.doctor import status

        return status(self)

    def next_steps(self, status: dict[str, Any]) -> list[str]:
        from workbench.services.doctor import next_steps

        return next_steps(status)

    def doctor(self) -> list[Check]:
        from workbench.services.doctor import doctor

        return doctor(self)

    def trace_warnings(self) -> list[str]:
        """What the trace store had to set aside (a damaged log, an unreadable segment)."""
        return list(self.store.warnings)

    # -- models ---------------------------------------------------------------------------------

    def list_models(self):
        return self.generation.list_models()

    def fetch_models(
        self, aliases: list[str] | None = None, progress: Callable[[str, str], None] | None = None
    ):
        from local_models.fetch import fetch_models

        with self.tracer.span("models.fetch_all", "io"):
            return fetch_models(self.workspace.models_dir, aliases, progress, self.tracer)

    def search_hub(self, text: str, kind: str = "gguf", limit: int = 20) -> list[dict[str, Any]]:
        """Repos on the Hugging Face Hub (HF_ENDPOINT honoured) matching ``text``."""
        from local_models.hub import search

        self._refuse_offline("search the Hub")
        return search(text, kind, limit)

    def pull_model(
        self,
        spec: str,
        n_ctx: int = 4096,
        force: bool = False,
        alias: str | None = None,
        progress: Callable[[str], None] = lambda line: None,
        on_bytes: Callable[[int, int], None] | None = None,
        cancel: threading.Event | None = None,
        kind: str = "gguf",
    ):
        """Pull ``REPO[:QUANT|FILE]`` from the Hub, the quant chosen by fit when none is
        named, and register it; pulling the same file again registers nothing new. ``kind``
        embedding or reranker pulls a sentence-transformers folder instead."""
        from local_models.catalog import list_models, register_model
        from local_models.hub import pull, pull_folder

        self._refuse_offline("pull a model")

        def register(path, name: str, record: dict[str, Any], model_kind: str = "gguf") -> str:
            for model in list_models(self.workspace):
                if model.path == path.resolve():
                    if model.kind != model_kind:
                        raise ModelError(
                            f"{path} is registered already, as {model.alias} ({model.kind})",
                            f"use {model.alias}, or remove it from workbench.toml first",
                        )
                    return model.alias  # pulled before: already in the catalog
            return register_model(self.workspace, str(path), name, model_kind, record).alias

        if kind != "gguf":
            with self.tracer.span("models.pull", "io", {"workbench.model.source": spec}):
                return pull_folder(
                    self.workspace.models_dir,
                    spec,
                    kind,
                    lambda path, name, model_kind, record: register(path, name, record, model_kind),
                    alias,
                    progress=progress,
                )

        with self.tracer.span("models.pull", "io", {"workbench.model.source": spec}):
            return pull(
                self.workspace.models_dir,
                spec,
                register,
                n_ctx,
                force,
                alias,
                progress=progress,
                on_bytes=on_bytes,
                cancel=cancel,
            )

    def hub_quants(self, repo: str, n_ctx: int = 4096) -> list[dict[str, Any]]:
        """The GGUF quants of a Hub repo, each with its size and whether it fits here."""
        from local_models.hub import quant_table

        self._refuse_offline("read the Hub")
        return quant_table(repo, n_ctx)

    def discover_models(self, register: bool = True) -> list[dict[str, Any]]:
        """GGUFs in the Hugging Face cache, LM Studio's and Ollama's stores (local_models.discover),
        registered in place under their own names unless ``register`` is off."""
        from local_models.catalog import list_models, register_model
        from local_models.discover import discover

        known = {m.path.resolve(): m.alias for m in list_models(self.workspace)}
        taken = set(known.values()) | {m.alias for m in list_models(self.workspace)}
        rows = []
        for item in discover():
            row = {"store": item.store, "name": item.label, "path": str(item.path), "size": item.size}
            alias = known.get(item.path.resolve())
            if alias is not None:
                row.update(alias=alias, status="already registered")
            elif register:
                alias = item.name
                suffix = 2
                while alias in taken:
                    alias, suffix = f"{item.name}-{suffix}", suffix + 1
                record = {"source": f"{item.store}://{item.label}", "sha256": item.sha256}
                register_model(self.workspace, str(item.path), alias, "gguf", record)
                taken.add(alias)
                row.update(alias=alias, status="registered")
            else:
                row.update(alias=item.name, status="found")
            rows.append(row)
        return rows

    def quantize_model(self, name: str, kind: str, alias: str | None = None):
        """Quantize a registered GGUF (or a path) with llama.cpp's own quantize into the models
        folder, and register the result."""
        import re

        from local_models.catalog import list_models, register_model, resolve_model
        from local_models.quant_lab import quantize

        source = resolve_model(self.workspace, name)
        if source.kind != "gguf":
            raise ModelError(f"{source.alias} is not a GGUF model", "quantize a GGUF model")
        stem = re.sub(r"[.-](I?Q\d(_[A-Z0-9]+)*|BF16|F16|F32)$", "", source.path.stem, flags=re.IGNORECASE)
        target = self.workspace.models_dir / f"{stem}.{kind}.gguf"
        alias = alias or f"{source.alias}-{kind.lower()}"
        with self.tracer.span("models.quantize", "io", {"workbench.model.source": source.alias}):
            quantize(source.path, target, kind)
        for model in list_models(self.workspace):
            if model.path == target.resolve():  # made before: the file is new, the entry stands
                return model
        return register_model(
            self.workspace,
            str(target),
            alias,
            "gguf",
            {"quant": kind, "source": f"quantized://{source.alias}"},
        )

    def compare_quants(self, base: str, others: list[str], text: str, n_ctx: int = 512):
        """Perplexity, KL divergence from ``base`` and top-token agreement over ``text``
        (local_models.quant_lab), with size and speed."""
        from local_models.catalog import resolve_model
        from local_models.quant_lab import compare

        models = [resolve_model(self.workspace, name) for name in [base, *others]]
        for model in models:
            if model.kind != "gguf" or not model.present:
                raise ModelError(f"{model.alias} is not a GGUF model on disk", "name registered GGUF models")
        with self.tracer.span("models.kl", "internal", {"workbench.model.base": base}):
            return compare(
                models[0].path,
                [(m.alias, m.path) for m in models[1:]],
                text,
                n_ctx,
                base_name=models[0].alias,
            )

    def answer_doubts(self, answer) -> list[str]:
        """Why an answer (an Answer) looks unreliable; empty when nothing stands out."""
        from workbench.services.answer_checks import doubts

        return doubts(answer.text, answer.finish_reason, answer.extra, getattr(answer, "mean_logprob", None))

    def ways_forward(self, model: str) -> list[str]:
        """The router, cloud models and bigger local models this workspace could answer with."""
        from workbench.services.answer_checks import ways_forward

        return ways_forward(model, self.generation.model_choices())

    def _refuse_offline(self, what: str) -> None:
        if self.offline:
            from workbench.core.errors import ModelFetchError

            raise ModelFetchError(
                f"offline mode is on: cannot {what}",
                "set offline = false in workbench.toml (or turn it off in the app) to download",
            )

    def register_model(self, path: str, alias: str | None = None, kind: str | None = None):
        from local_models.catalog import register_model

        return register_model(self.workspace, path, alias, kind)

    def load_model(self, name: str, options=None) -> dict[str, Any]:
        return self.generation.load_model(name, options)

    def set_load_defaults(self, n_ctx: int, parallel: int) -> None:
        self.generation.set_load_defaults(n_ctx, parallel)

    def unload_model(self, name: str | None = None) -> list[str]:
        return self.generation.unload(name)

    def loaded_models(self) -> list[str]:
        return self.generation.loaded()

    def gpu_status(self) -> str:
        """One line: what GPU llama.cpp can use here, or why it runs on the CPU."""
        from workbench.core.hardware import gpus, llama_check

        return llama_check(gpus()).detail

    def cloud_endpoints(self) -> list[dict[str, Any]]:
        return self.generation.cloud_endpoints()

    def set_offline(self, offline: bool) -> None:
        """Turn offline mode on or off, in workbench.toml too, so CLI runs follow it."""

        def edit(document) -> None:
            document["offline"] = offline

        self.config = self.workspace.edit_config(edit)
        self.offline = offline
        self.generation.cloud.offline = offline

    def plan(self, model: str, n_ctx: int = 4096):
        return self.models.plan(model, n_ctx)

    def model_info(self, model: str):
        return self.generation.model_info(model)

    def is_local(self, model: str) -> bool:
        return self.generation.is_local(model)

    def model_choices(self) -> list[str]:
        return self.generation.model_choices()

    # -- prompts (params: a GenerationParams or a mapping of its fields) -------------------------

    def ask(
        self,
        model: str,
        prompt: str,
        system: str | None = None,
        params=None,
        on_text=None,
        options=None,
        cancel: threading.Event | None = None,
    ):
        """One prompt to one model, streamed to ``on_text``; returns the GenerationResult."""
        messages = ([{"role": "system", "content": system}] if system else []) + [
            {"role": "user", "content": prompt}
        ]
        return self.generation.chat(model, messages, params, on_text, options, cancel)

    def chat(
        self,
        model: str,
        messages: list[dict[str, str]],
        params=None,
        on_text=None,
        options=None,
        cancel: threading.Event | None = None,
    ):
        """A conversation to a local model (alias), a cloud one (ENDPOINT/MODEL) or ``auto``."""
        return self.generation.chat(model, messages, params, on_text, options, cancel)

    def complete(self, model: str, prompt: str, params=None, on_text=None, cancel=None):
        """A raw prompt continued by a local model, without its chat template."""
        return self.generation.complete(model, prompt, params, on_text, cancel)

    def chat_with_collection(
        self,
        model: str,
        messages: list[dict[str, str]],
        collection: str,
        k: int = 4,
        mode: str = "hybrid",
        params=None,
        on_text=None,
        options=None,
        cancel: threading.Event | None = None,
    ):
        """A conversation whose answers come from ``collection`` and cite the passages they use
        (services/collection_chat.py); the result lists the numbered sources."""
        from workbench.services.collection_chat import chat_with_collection

        return chat_with_collection(
            self, model, messages, collection, k, mode, params, on_text, options, cancel
        )

    def compare(
        self, models: list[str], prompt: str, system: str | None = None, params=None, on_text=None
    ) -> list:
        return self.generation.compare(models, prompt, system, params, on_text)

    # -- documents ------------------------------------------------------------------------------

    def isolate_heavy_work(self) -> None:
        self.documents.isolate_heavy_work()

    def ingest(
        self,
        collection: str,
        source: str,
        include=None,
        exclude=None,
        redact: bool | None = None,
        model: str | None = None,
        progress=None,
        ray: str | None = None,
    ):
        """``ray``: run on a Ray cluster at this address ("": [ray] address, or a Ray of this
        run's own); None: in this process."""
        return self.documents.ingest(collection, source, include, exclude, redact, model, progress, ray)

    def search(
        self,
        collection: str,
        query: str,
        mode: str = "hybrid",
        k: int = 5,
        min_score=None,
        path_glob: str | None = None,
        file_type: str | None = None,
        version: int | None = None,
        rerank: str | None = None,
    ) -> list[dict[str, Any]]:
        """Ranked chunks. ``rerank``: "none", "sections" (built in), a registered reranker's
        alias, "auto" (a registered one, else "sections"); None: the collection's default."""
        return self.documents.search(
            collection, query, mode, k, min_score, path_glob, file_type, version, rerank
        )

    def set_collection_defaults(self, collection: str, rerank: str | None = None) -> dict[str, Any]:
        return self.documents.set_collection_defaults(collection, rerank)

    def embed(
        self, model: str, texts: list[str], truncate: bool = True, dimensions: int | None = None, cancel=None
    ):
        """Vectors of ``texts`` from a workspace embedding model: (alias, float32 array, tokens).
        Setting ``cancel`` (a threading.Event) stops it between batches."""
        return self.documents.embed(model, texts, truncate, dimensions, cancel)

    def rerank(self, model: str, query: str, documents: list[str]):
        """Relevance scores of ``documents`` to ``query`` from a registered CrossEncoder."""
        return self.documents.rerank(model, query, documents)

    def reranker_models(self) -> list[str]:
        return [m.alias for m in self.list_models() if m.kind == "reranker" and m.present]

    def embedding_models(self) -> list[str]:
        return [m.alias for m in self.list_models() if m.kind == "embedding" and m.present]

    def list_collections(self) -> list[dict[str, Any]]:
        return self.documents.list()

    def collection(self, name: str) -> dict[str, Any]:
        return self.collections.describe(name)

    def collection_versions(self, name: str) -> list[dict[str, Any]]:
        return self.collections.versions(name)

    def restore_collection(self, name: str, version: int) -> int:
        return self.collections.restore(name, version)

    # -- traces ---------------------------------------------------------------------------------

    def list_traces(self, limit: int = 50, offset: int = 0, filters: dict[str, str] | None = None):
        return self.store.list_traces(limit, offset, filters)

    def get_trace(self, trace_id: str) -> list[dict[str, Any]]:
        return self.store.get_trace(trace_id)

    def export_otlp(
        self,
        trace_ids: list[str] | None = None,
        limit: int = 100,
        since_ns: int | None = None,
        workflow: str | None = None,
    ) -> dict[str, Any]:
        """Traces as OTLP JSON: the given ones, else the newest ``limit`` (that started after
        ``since_ns`` and ran ``workflow``); each one's feedback rides on its root span as events."""
        from workbench.core.tracing.otlp import to_otlp_json

        if trace_ids:
            full_ids = [self.get_trace(trace_id)[0]["trace_id"] for trace_id in trace_ids]
        elif since_ns is None and workflow is None:
            full_ids = [row["trace_id"] for row in self.list_traces(limit=limit)[0]]
        else:
            full_ids = self.store.trace_ids(since_ns, workflow, limit)
        return to_otlp_json(self.store.spans_of(full_ids), scores=self.store.scores_of(full_ids))

    def key_spend(self, key: str, since_ns: int) -> float:
        """USD a gateway key's cloud calls cost since ``since_ns``, as stored: each cloud call
        names the key that paid (`workbench.gateway_key`); calls stored before that attribute
        existed count by their trace's `gateway.chat` root."""
        self.flush_traces()
        with self.store.reader() as con:
            row = con.execute(
                "SELECT coalesce(sum(cost_usd), 0) FROM spans WHERE start_ns >= ? AND ("
                "json_extract_string(attributes, '$.\"workbench.gateway_key\"') = ? OR ("
                "json_extract_string(attributes, '$.\"workbench.gateway_key\"') IS NULL AND trace_id IN "
                "(SELECT trace_id FROM spans WHERE name = 'gateway.chat' AND key_name = ? AND start_ns >= ?)))",
                [since_ns, key, key, since_ns],
            ).fetchone()
        return float(row[0]) if row else 0.0

    def push_traces(
        self,
        endpoint: str,
        protocol: str = "http/protobuf",
        trace_ids: list[str] | None = None,
        since_ns: int | None = None,
        workflow: str | None = None,
        headers: list[str] | None = None,
        limit: int = 1000,
    ):
        """Send traces to an OTLP/HTTP backend: the given ones, else the newest ``limit`` that
        started after ``since_ns`` (and ran ``workflow``). A PushResult; PushError on refusal."""
        from workbench.core.errors import UsageError
        from workbench.services.push import parse_headers, push

        extra = parse_headers(headers or [])
        self.flush_traces()
        document = self.export_otlp(trace_ids, limit, since_ns, workflow)
        if not any(scope["spans"] for rs in document["resourceSpans"] for scope in rs["scopeSpans"]):
            raise UsageError(
                "no traces match" + (f" (workflow {workflow})" if workflow else ""),
                "see `workbench traces list`; widen --since or run the workflow first",
            )
        return push(document, endpoint, protocol, extra)

    def rate_trace(
        self,
        trace_id: str,
        verdict: str,
        note: str | None = None,
        source: str = "cli",
        subject: str | None = None,
    ) -> dict[str, Any]:
        """Record a user's verdict ("up" or "down", with an optional note) on a trace: who, when
        and from where, and which answer (``subject``: a model in a comparison). A trace keeps
        every rating; returns its feedback so far."""
        import getpass

        from workbench.core.errors import UsageError

        values = {"up": 1.0, "down": -1.0}
        if verdict not in values:
            raise UsageError(
                f"a rating is up or down, not {verdict!r}", "workbench traces rate TRACE up|down"
            )
        self.flush_traces()  # an answer just given (Playground, a run) is rated at once
        full_id = self.get_trace(trace_id)[0]["trace_id"]
        author = os.environ.get("WORKBENCH_USER") or getpass.getuser()
        self.store.add_score(
            full_id, "feedback", values[verdict], (note or "").strip() or None, source, author, subject
        )
        return self.trace_feedback(full_id)

    def trace_feedback(self, trace_id: str) -> dict[str, Any]:
        """A trace's ratings: the counts, and each one with its note, author, source and time.
        A whole trace id is read as it is; a prefix is resolved first (a scan of the spans)."""
        full_id = trace_id if len(trace_id) == 32 else self.get_trace(trace_id)[0]["trace_id"]
        ratings = [s for s in self.store.scores_of([full_id]) if s["name"] == "feedback"]
        return {
            "trace_id": full_id,
            "up": sum(1 for s in ratings if s["value"] > 0),
            "down": sum(1 for s in ratings if s["value"] < 0),
            "ratings": ratings,
        }

    def sql(self, query: str, limit: int = 10_000):
        return self.store.sql(query, limit)


def init_workspace(path: str | os.PathLike[str] | None) -> tuple[Path, bool]:
    """Create (or complete) a workspace; True if anything had to be created."""
    workspace = Workspace(resolve_workspace_path(path))
    created = workspace.ensure_layout()
    load_config(workspace.config_path)  # a broken existing workbench.toml is reported now
    return workspace.root, created
