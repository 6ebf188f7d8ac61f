"""The service facade shared by the CLI and the app. Widgets and commands call this and only
this; it knows nothing of Textual or of the terminal."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from workbench.config import load_config
from workbench.doctor import Check
from workbench.tracing import Tracer, TraceStore, open_tracer
from workbench.workspace import Workspace, resolve_workspace_path

__all__ = ["Service", "init_workspace"]


class Service:
    def __init__(self, workspace: str | os.PathLike[str] | None = None, offline: bool = False):
        self.workspace = Workspace.open(workspace)
        self.config = self.workspace.config  # validate now: a broken file fails early and clearly
        self.offline = offline or self.config.offline
        self.store = TraceStore(self.workspace.root)
        self._tracer: Tracer | None = None
        self._models = None
        self._cloud = None
        self._collections = None
        self._workflows = None
        self._evals = None

    @property
    def tracer(self) -> Tracer:
        if self._tracer is None:
            self._tracer = open_tracer(self.workspace)
        return self._tracer

    def flush_traces(self) -> None:
        if self._tracer is not None:
            self._tracer.sink.flush(compact=True, blocking=True)

    # -- status and doctor ------------------------------------------------------------------

    def status(self) -> dict[str, Any]:
        from local_models.catalog import list_models

        models = list_models(self.workspace)
        return {
            "workspace": str(self.workspace.root),
            "config": str(self.workspace.config_path),
            "offline": self.offline,
            "models_present": sum(m.present for m in models),
            "models_known": len(models),
            "traces": self.store.stats(),
        }

    def doctor(self) -> list[Check]:
        from workbench.doctor import system_checks

        checks = system_checks()
        checks.append(Check("workspace", "path", "ok", str(self.workspace.root)))
        checks.append(Check("workspace", "config", "ok", f"{self.workspace.config_path} is valid"))
        checks.append(Check("workspace", "offline mode", "ok", "on" if self.offline else "off"))
        checks.append(self._trace_check())
        checks.append(self._lancedb_check())
        checks.extend(self._model_checks())
        return checks

    def _model_checks(self) -> list[Check]:
        checks = []
        for model in self.list_models():
            if model.present:
                checks.append(
                    Check(
                        "models",
                        model.alias,
                        "ok",
                        f"{model.kind}, {model.size_bytes / 1e6:.0f} MB, {model.path}",
                    )
                )
            else:
                hint = "run `workbench models fetch`" if model.source == "default" else "fix its path"
                checks.append(Check("models", model.alias, "warn", f"missing: {model.path} ({hint})"))
        return checks

    def _trace_check(self) -> Check:
        try:
            stats = self.store.stats()
        except Exception as exc:  # noqa: BLE001 - doctor reports, it does not crash
            return Check("workspace", "trace store", "fail", getattr(exc, "message", str(exc)))
        detail = (
            f"schema v{stats['schema_version']}, {stats['traces']} traces, "
            f"{stats['spans']} spans, {stats['size_bytes'] / 1e6:.1f} MB"
        )
        if stats["warnings"]:
            return Check("workspace", "trace store", "warn", detail + "; " + "; ".join(stats["warnings"]))
        return Check("workspace", "trace store", "ok", detail)

    def _lancedb_check(self) -> Check:
        try:
            import lancedb

            tables = lancedb.connect(str(self.workspace.lancedb_dir)).table_names()
        except Exception as exc:  # noqa: BLE001
            return Check("workspace", "lancedb", "fail", f"{type(exc).__name__}: {exc}")
        return Check(
            "workspace", "lancedb", "ok", f"{len(tables)} collections in {self.workspace.lancedb_dir}"
        )

    # -- models -----------------------------------------------------------------------------

    def list_models(self):
        from local_models.catalog import list_models

        return list_models(self.workspace)

    def fetch_models(
        self, aliases: list[str] | None = None, progress: Callable[[str, str], None] | None = None
    ) -> dict[str, str]:
        from local_models.fetch import fetch_models

        with self.tracer.span("models.fetch_all", "io"):
            return fetch_models(self.workspace.models_dir, aliases, progress, self.tracer)

    def register_model(self, path: str, alias: str | None = None):
        from local_models.catalog import register_model

        return register_model(self.workspace, path, alias)

    @property
    def models(self):
        """The loaded local models of this process (kept warm between calls)."""
        if self._models is None:
            from local_models.manager import ModelManager

            self._models = ModelManager(self.workspace, self.tracer)
        return self._models

    @property
    def cloud(self):
        if self._cloud is None:
            from local_models.cloud import CloudClient

            self._cloud = CloudClient(self.config, self.tracer, offline=self.offline)
        return self._cloud

    @property
    def router(self):
        from local_models.router import Router

        self.flush_traces()  # the budget is summed from the store: include this process's calls
        return Router(self.config.router, self.models, self.cloud, self.tracer, self.store)

    def load_model(self, name: str, options=None) -> dict[str, Any]:
        """Load a local model into this process (kept warm until unloaded); what it took."""
        import time

        start = time.perf_counter()
        model = self.models.load(name, options)
        return {"model": model.alias, "hardware": model.hardware, "n_ctx": model.options.n_ctx,
                "load_s": round(time.perf_counter() - start, 3)}  # fmt: skip

    def unload_model(self, name: str | None = None) -> list[str]:
        return self.models.unload(name) if self._models is not None else []

    def loaded_models(self) -> list[str]:
        return self._models.loaded() if self._models is not None else []

    def gpu_status(self) -> str:
        """One line: what GPU llama.cpp can use here, or why it runs on the CPU."""
        from workbench.doctor import gpus, llama_check

        return llama_check(gpus()).detail

    def cloud_endpoints(self) -> list[dict[str, Any]]:
        """Each configured endpoint: where it is, whether its key is set, whether offline mode
        blocks it. Key values are never read into the result, only their presence."""
        from local_models.cloud import is_loopback

        rows = []
        for name, endpoint in self.config.cloud.items():
            if not endpoint.api_key_env:
                key = "none needed"
            else:
                key = f"${endpoint.api_key_env} " + (
                    "set" if os.environ.get(endpoint.api_key_env) else "MISSING"
                )
            local = is_loopback(endpoint.base_url)
            rows.append({"name": name, "kind": endpoint.kind, "base_url": endpoint.base_url,
                         "models": list(endpoint.models), "key": key, "loopback": local,
                         "usable": not (self.offline and not local)})  # fmt: skip
        return rows

    def set_offline(self, offline: bool) -> None:
        """Turn offline mode on or off, in workbench.toml too, so CLI runs follow it."""
        from workbench.config import edit_config

        def edit(document) -> None:
            document["offline"] = offline

        self.config = edit_config(self.workspace.config_path, edit)
        self.offline = offline
        if self._cloud is not None:
            self._cloud.offline = offline

    def plan(self, model: str, n_ctx: int = 4096):
        return self.models.plan(model, n_ctx)

    def model_info(self, model: str):
        """GGUF metadata of a model (read from the header, without loading it)."""
        from local_models.catalog import resolve_model
        from local_models.gguf_info import read_gguf_info

        info = resolve_model(self.workspace, model)
        if info.kind != "gguf":
            return None
        return read_gguf_info(info.path)

    def ask(self, model: str, prompt: str, system: str | None = None, params=None,
            on_text: Callable[[str], None] | None = None, options=None):  # fmt: skip
        """One prompt to one model, streamed to ``on_text``; returns the GenerationResult."""
        messages = ([{"role": "system", "content": system}] if system else []) + [
            {"role": "user", "content": prompt}
        ]
        return self.chat(model, messages, params, on_text, options)

    def chat(self, model: str, messages: list[dict[str, str]], params=None,
             on_text: Callable[[str], None] | None = None, options=None):  # fmt: skip
        """A conversation to a local model (alias), a cloud one (ENDPOINT/MODEL) or ``auto``."""
        from local_models.types import GenerationParams

        params = params or GenerationParams()
        if model == "auto":
            routed = self.router.ask(messages, params, None, on_text)
            routed.result.extra.update(route=routed.route, escalation_reason=routed.reason,
                                       escalation_refused=routed.refused)  # fmt: skip
            return routed.result
        if not self.is_local(model):
            endpoint, _, cloud_model = model.partition("/")
            return self.cloud.chat(endpoint, cloud_model, messages, params, on_text)
        return self.models.chat(model, messages, params, on_text, options)

    def is_local(self, model: str) -> bool:
        """Whether a chat to ``model`` runs on a local GGUF (not a cloud model, not the router)."""
        endpoint, _, cloud_model = model.partition("/")
        return model != "auto" and not (cloud_model and endpoint in self.config.cloud)

    def model_choices(self) -> list[str]:
        """Every name a chat can be addressed to: local GGUF aliases, cloud models, auto."""
        names = [m.alias for m in self.list_models() if m.kind == "gguf" and m.present]
        names += [
            f"{name}/{model}" for name, endpoint in self.config.cloud.items() for model in endpoint.models
        ]
        if self.config.router.local:
            names.append("auto")
        return names

    def compare(self, models: list[str], prompt: str, system: str | None = None, params=None,
                on_text: Callable[[int, str], None] | None = None) -> list:  # fmt: skip
        """One prompt to several models at once, all under one trace. Local models run in their
        owner threads, cloud calls concurrently. Returns, per model, a GenerationResult or the
        WorkbenchError that model raised."""
        import contextvars
        import threading

        from workbench.errors import WorkbenchError

        if not 2 <= len(models) <= 4:
            raise WorkbenchError(f"compare takes 2 to 4 models, not {len(models)}", "pass -m 2 to 4 times")
        outcomes: list = [None] * len(models)
        for index, name in enumerate(models):  # load up front, one at a time: loads compete for memory
            if not self.is_local(name):
                continue
            try:
                self.models.load(name)
            except WorkbenchError as exc:
                outcomes[index] = exc
        with self.tracer.span("compare", "compare", {"workbench.compare.models": models}) as root:

            def run(index: int, name: str) -> None:
                if outcomes[index] is not None:
                    return
                try:
                    outcomes[index] = self.ask(name, prompt, system, params,
                                               (lambda piece: on_text(index, piece)) if on_text else None)  # fmt: skip
                except WorkbenchError as exc:
                    outcomes[index] = exc

            # Each thread runs in a copy of this context, so its spans are children of this one.
            threads = [threading.Thread(target=contextvars.copy_context().run, args=(run, i, name),
                                        name=f"compare:{name}") for i, name in enumerate(models)]  # fmt: skip
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            root.set("workbench.compare.errors", sum(isinstance(o, Exception) for o in outcomes))
        return outcomes

    def isolate_heavy_work(self) -> None:
        """Run embedding models in child processes: the app calls this so that loading torch
        and a model (200-300 ms with the GIL held) never freezes its event loop."""
        from indexes.embedder import isolate

        isolate()

    # -- documents --------------------------------------------------------------------------

    @property
    def collections(self):
        if self._collections is None:
            from indexes.collection import Collections
            from local_models.catalog import resolve_model

            def find_model(name: str):
                info = resolve_model(self.workspace, name)
                return info.alias, info.kind, info.path

            self._collections = Collections(self.workspace, self.tracer, self.config.documents, find_model)
        return self._collections

    def ingest(self, collection: str, source: str, include=None, exclude=None, redact: bool | None = None,
               model: str | None = None, progress=None):  # fmt: skip
        """Ingest a file or folder into a collection (created on first use); returns the report."""
        return self.collections.ingest(collection, source, include, exclude, redact, model, progress)

    def search(self, collection: str, query: str, mode: str = "hybrid", k: int = 5, min_score=None,
               path_glob: str | None = None, file_type: str | None = None,
               version: int | None = None) -> list[dict[str, Any]]:  # fmt: skip
        return self.collections.search(collection, query, mode, k, min_score, path_glob, file_type, version)

    def list_collections(self) -> list[dict[str, Any]]:
        return [self.collections.describe(name) for name in self.collections.names()]

    def collection(self, name: str) -> dict[str, Any]:
        return self.collections.describe(name)

    def collection_versions(self, name: str) -> list[dict[str, Any]]:
        return self.collections.versions(name)

    def restore_collection(self, name: str, version: int) -> int:
        return self.collections.restore(name, version)

    # -- workflows --------------------------------------------------------------------------

    @property
    def workflows(self):
        """Specs, runs and exports of <workspace>/workflows (workbench/workflows.py)."""
        if self._workflows is None:
            from workbench.workflows import Workflows

            self._workflows = Workflows(self)
        return self._workflows

    @property
    def evals(self):
        """Datasets, eval runs, comparisons and gates (workbench/eval_runs.py)."""
        if self._evals is None:
            from workbench.eval_runs import Evals

            self._evals = Evals(self)
        return self._evals

    # -- traces -----------------------------------------------------------------------------

    def list_traces(self, limit: int = 50, offset: int = 0, filters: dict[str, str] | None = None):
        return self.store.list_traces(limit, offset, filters)

    def get_trace(self, trace_id: str) -> list[dict[str, Any]]:
        return self.store.get_trace(trace_id)

    def export_otlp(self, trace_ids: list[str] | None = None, limit: int = 100) -> dict[str, Any]:
        from workbench.tracing.otlp import to_otlp_json

        if trace_ids:
            full_ids = [self.get_trace(trace_id)[0]["trace_id"] for trace_id in trace_ids]
        else:
            full_ids = [row["trace_id"] for row in self.list_traces(limit=limit)[0]]
        rows = self.store.spans_of(full_ids)
        return to_otlp_json(rows)

    def sql(self, query: str, limit: int = 10_000):
        return self.store.sql(query, limit)


def init_workspace(path: str | os.PathLike[str] | None) -> tuple[Path, bool]:
    """Create (or complete) a workspace; True if anything had to be created."""
    workspace = Workspace(resolve_workspace_path(path))
    created = workspace.ensure_layout()
    load_config(workspace.config_path)  # a broken existing workbench.toml is reported now
    return workspace.root, created
