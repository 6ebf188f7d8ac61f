"""Models as the service layer offers them: the catalog, loaded local models kept warm, cloud
endpoints, the router, and prompts to any of them (ask, chat, compare), each one a trace."""

from __future__ import annotations

import contextvars
import os
import threading
import time
from collections.abc import Callable, Mapping
from functools import partial
from typing import TYPE_CHECKING, Any

from workbench.core.errors import ModelError, UnsupportedParameter, UsageError, WorkbenchError

if TYPE_CHECKING:
    from local_models.cloud import CloudClient
    from local_models.manager import ModelManager
    from local_models.router import Router
    from local_models.types import GenerationParams, GenerationResult
    from workbench.services.facade import Service

__all__ = ["Generation", "generation_params", "load_options"]


def generation_params(params: Any) -> GenerationParams:
    """Sampling settings from a GenerationParams, or from a plain mapping of its fields: the app
    and the CLI pass mappings, so that nothing above the services imports local_models."""
    from local_models.types import GenerationParams

    if params is None:
        return GenerationParams()
    if isinstance(params, Mapping):
        if "stop" in params and params["stop"] is not None:
            params = {**params, "stop": tuple(params["stop"])}
        return GenerationParams(**params)
    return params


def load_options(options: Any):
    """A LoadOptions from a mapping of its fields (n_ctx, n_threads, n_gpu_layers), or as given."""
    from local_models.llama_backend import LoadOptions

    if isinstance(options, Mapping):
        return LoadOptions(**{k: v for k, v in options.items() if v is not None})
    return options


class Generation:
    """The model side of one Service. Its parts are built on first use, once, under a lock:
    two worker threads asking at once must not load a model twice."""

    def __init__(self, service: Service) -> None:
        self.service = service
        self._lock = threading.RLock()
        self._models: ModelManager | None = None
        self._cloud: CloudClient | None = None
        self._router: Router | None = None

    @property
    def models(self) -> ModelManager:
        """The loaded local models of this process (kept warm between calls)."""
        if self._models is None:
            with self._lock:
                if self._models is None:
                    from local_models.manager import ModelManager

                    self._models = ModelManager(self.service.workspace, self.service.tracer)
        return self._models

    @property
    def cloud(self) -> CloudClient:
        if self._cloud is None:
            with self._lock:
                if self._cloud is None:
                    from local_models.cloud import CloudClient

                    self._cloud = CloudClient(self.service.config, self.service.tracer, self.service.offline)
        return self._cloud

    def use_cloud(self, client: CloudClient) -> None:
        """Use this cloud client (another retry policy, say) from now on."""
        with self._lock:
            self._cloud, self._router = client, None

    @property
    def router(self) -> Router:
        """Built once: the budget it checks is read when a budget is set, without compacting
        the trace store on the caller's thread (this process's own spend is counted in memory)."""
        if self._router is None:
            with self._lock:
                if self._router is None:
                    from local_models.router import Router

                    self._router = Router(
                        self.service.config.router,
                        self.models,
                        self.cloud,
                        self.service.tracer,
                        self.service.store,
                    )
        return self._router

    def loaded(self) -> list[str]:
        return self._models.loaded() if self._models is not None else []

    def unload(self, name: str | None = None) -> list[str]:
        return self._models.unload(name) if self._models is not None else []

    def close(self) -> None:
        if self._models is not None:
            self._models.close()

    # -- the catalog ----------------------------------------------------------------------------

    def list_models(self):
        from local_models.catalog import list_models

        return list_models(self.service.workspace)

    def set_load_defaults(self, n_ctx: int, parallel: int) -> None:
        """Every local model this process loads without options of its own gets ``parallel``
        slots of ``n_ctx`` tokens each (llama-server's -np N, and -c N*n_ctx)."""
        from dataclasses import replace

        self.models.defaults = replace(self.models.defaults, n_ctx=n_ctx, parallel=parallel)

    def load_model(self, name: str, options=None) -> dict[str, Any]:
        """Load a local model into this process (kept warm until unloaded); what it took."""
        start = time.perf_counter()
        model = self.models.load(name, load_options(options))
        return {
            "model": model.alias,
            "hardware": model.hardware,
            "n_ctx": model.options.n_ctx,
            "load_s": round(time.perf_counter() - start, 3),
        }

    def cloud_endpoints(self) -> list[dict[str, Any]]:
        """Each configured endpoint: where it is, whether its key is set, whether offline mode
        blocks it. Key values are never read into the result, only their presence."""
        from local_models.cloud import is_loopback

        rows = []
        for name, endpoint in self.service.config.cloud.items():
            if not endpoint.api_key_env:
                key = "none needed"
            else:
                present = "set" if os.environ.get(endpoint.api_key_env) else "MISSING"
                key = f"${endpoint.api_key_env} {present}"
            local = is_loopback(endpoint.base_url)
            rows.append(
                {
                    "name": name,
                    "kind": endpoint.kind,
                    "base_url": endpoint.base_url,
                    "models": list(endpoint.models),
                    "key": key,
                    "loopback": local,
                    "usable": not (self.service.offline and not local),
                }
            )
        return rows

    def model_info(self, model: str):
        """GGUF metadata of a model (read from the header, without loading it)."""
        from local_models.catalog import resolve_model
        from local_models.gguf_info import read_gguf_info

        info = resolve_model(self.service.workspace, model)
        if info.kind != "gguf":
            return None
        return read_gguf_info(info.path)

    def is_local(self, model: str) -> bool:
        """Whether a chat to ``model`` runs on a local GGUF (not a cloud model, not the router)."""
        endpoint, _, cloud_model = model.partition("/")
        return model != "auto" and not (cloud_model and endpoint in self.service.config.cloud)

    def model_choices(self) -> list[str]:
        """Every name a chat can be addressed to: local GGUF aliases, cloud models, auto."""
        names = [m.alias for m in self.list_models() if m.kind == "gguf" and m.present]
        names += [
            f"{name}/{model}"
            for name, endpoint in self.service.config.cloud.items()
            for model in endpoint.models
        ]
        if self.service.config.router.local:
            names.append("auto")
        return names

    # -- prompts --------------------------------------------------------------------------------

    def _load_quietly(self, name: str) -> None:
        self.models.load(name)

    def chat(
        self,
        model: str,
        messages: list[dict[str, str]],
        params: Any = None,
        on_text: Callable[[str], None] | None = None,
        options: Any = None,
        cancel: threading.Event | None = None,
    ) -> GenerationResult:
        """A conversation to a local model (alias), a cloud one (ENDPOINT/MODEL) or ``auto``.
        Setting ``cancel`` stops the answer where it is (finish reason "cancelled")."""
        params = generation_params(params)
        if not self.is_local(model):
            _local_only(params, model)
        if model == "auto":
            routed = self.router.ask(messages, params, None, on_text, cancel)
            routed.result.extra.update(
                route=routed.route, escalation_reason=routed.reason, escalation_refused=routed.refused
            )
            return routed.result
        if not self.is_local(model):
            if params.tools:  # refused here, by name, rather than by the provider's 400
                from local_models import tool_calls

                tool_calls.check_choice(
                    tool_calls.check_tools(list(params.tools), grammar=False), params.tool_choice
                )
            endpoint, _, cloud_model = model.partition("/")
            return self.cloud.chat(endpoint, cloud_model, messages, params, on_text, cancel)
        return self.models.chat(model, messages, params, on_text, load_options(options), cancel=cancel)

    def complete(
        self,
        model: str,
        prompt: str,
        params: Any = None,
        on_text: Callable[[str], None] | None = None,
        cancel: threading.Event | None = None,
    ) -> GenerationResult:
        """A raw prompt continued by a local model, without its chat template (OpenAI's legacy
        completions: evaluation harnesses score prompts this way)."""
        if not self.is_local(model):
            raise UnsupportedParameter(
                "model", f"{model} is not a local model: raw completions run on local GGUF models only"
            )
        return self.models.chat(model, [], generation_params(params), on_text, cancel=cancel, prompt=prompt)

    def compare(
        self,
        models: list[str],
        prompt: str,
        system: str | None = None,
        params: Any = None,
        on_text: Callable[[int, str], None] | None = None,
    ) -> list[GenerationResult | WorkbenchError]:
        """One prompt to several models at once, all under one trace. Local models run in their
        owner threads, cloud calls concurrently. Returns, per model, a GenerationResult or the
        WorkbenchError it ended in: an unexpected exception is turned into one too, so that no
        caller finds a hole where an answer should be."""
        if not 2 <= len(models) <= 4:
            raise UsageError(f"compare takes 2 to 4 models, not {len(models)}", "pass -m 2 to 4 times")
        params = generation_params(params)
        messages = ([{"role": "system", "content": system}] if system else []) + [
            {"role": "user", "content": prompt}
        ]
        outcomes: list[GenerationResult | WorkbenchError | None] = [None] * len(models)
        for index, name in enumerate(models):  # load up front, one at a time: loads compete for memory
            if self.is_local(name):
                outcomes[index] = _guarded(name, partial(self._load_quietly, name))
        with self.service.tracer.span("compare", "compare", {"workbench.compare.models": models}) as root:

            def run(index: int, name: str) -> None:
                if outcomes[index] is not None:
                    return
                stream = (lambda piece: on_text(index, piece)) if on_text else None
                outcomes[index] = _guarded(name, lambda: self.chat(name, messages, params, stream))

            # Each thread runs in a copy of this context, so its spans are children of this one.
            threads = [
                threading.Thread(
                    target=contextvars.copy_context().run, args=(run, i, name), name=f"compare:{name}"
                )
                for i, name in enumerate(models)
            ]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            root.set("workbench.compare.errors", sum(isinstance(o, Exception) for o in outcomes))
        return [
            outcome if outcome is not None else ModelError(f"{name} gave no answer", "ask again")
            for name, outcome in zip(models, outcomes)
        ]


def _local_only(params: GenerationParams, model: str) -> None:
    """Refuse, by name, what only a local model can honour (never drop it silently)."""
    for param, asked in (
        ("logprobs", params.top_logprobs is not None),
        ("logit_bias", bool(params.logit_bias)),
        ("echo", params.score_prompt),
    ):
        if asked:
            raise UnsupportedParameter(
                param, f"{param} is honoured for local models only, and {model} may answer from the cloud"
            )


def _guarded(name: str, call: Callable[[], Any]) -> Any:
    """``call()``, or the error it raised as a WorkbenchError (None stays None)."""
    try:
        return call()
    except WorkbenchError as exc:
        return exc
    except Exception as exc:  # noqa: BLE001 - one model's failure must not sink the others
        error = ModelError(f"{name} failed: {type(exc).__name__}: {exc}", "this is a bug; please report it")
        error.__cause__ = exc
        return error
