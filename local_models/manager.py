"""Loaded models kept warm, unloaded on request or when memory runs short; every call a span."""

from __future__ import annotations

import contextlib
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import replace

from local_models import native_tools, tool_calls
from local_models.catalog import resolve_model
from local_models.gguf_info import read_gguf_info
from local_models.llama_backend import LoadOptions, LocalModel, gpu_offload_supported
from local_models.plan import FitPlan, gpu_memory, plan_fit
from local_models.types import GenerationParams, GenerationResult
from workbench.core.errors import ModelError, UnsupportedParameter
from workbench.core.tracing import Tracer
from workbench.core.tracing import attributes as A
from workbench.core.workspace import Workspace

__all__ = ["ModelManager", "available_memory_bytes"]


def available_memory_bytes() -> int | None:
    try:
        with open("/proc/meminfo") as handle:
            for line in handle:
                if line.startswith("MemAvailable"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


class ModelManager:
    def __init__(self, workspace: Workspace, tracer: Tracer) -> None:
        self.workspace = workspace
        self.tracer = tracer
        self._models: OrderedDict[str, LocalModel] = OrderedDict()
        # The options each model was asked for: what it runs with has its GPU layers filled in
        # by the planner, so comparing against that reloaded it on every request.
        self._requested: dict[str, LoadOptions] = {}
        self._lock = threading.Lock()
        self._cpu_turns = _CpuTurns()
        self.defaults = LoadOptions()
        """What a model loads with when its caller names no options (`workbench serve --parallel
        --ctx` sets them for the gateway's models)."""

    def loaded(self) -> list[str]:
        return list(self._models)

    def load(self, name: str, options: LoadOptions | None = None) -> LocalModel:
        """The loaded model for ``name`` (alias or unique prefix), loading it if needed."""
        info = resolve_model(self.workspace, name)
        if info.kind != "gguf":
            raise ModelError(f"{info.alias} is an embedding model", "pick a GGUF chat model")
        with self._lock:
            model = self._models.get(info.alias)
            if model is not None and (options is None or self._requested.get(info.alias) == options):
                self._models.move_to_end(info.alias)
                return model
            if model is not None:
                self._unload_locked(info.alias)
            self._requested[info.alias] = options or self.defaults
            options = self._with_gpu_layers(info, options or self.defaults)
            self._make_room(info.size_bytes)
            with self.tracer.span(
                "model.load", "model", {A.REQUEST_MODEL: info.alias, A.PROVIDER: "llama.cpp"}
            ) as span:
                model = LocalModel(info.alias, info.path, options)
                span.set("workbench.hardware", model.hardware)
                span.set("workbench.slots", model.parallel)
                span.set("workbench.context", model.context_length)
            self._models[info.alias] = model
            return model

    def plan(self, name: str, n_ctx: int = 4096) -> FitPlan:
        info = resolve_model(self.workspace, name)
        if info.kind != "gguf":
            raise ModelError(f"{info.alias} is an embedding model", "plan a GGUF model")
        return plan_fit(
            read_gguf_info(info.path), n_ctx, gpu_offload_supported(), gpu_memory(), available_memory_bytes()
        )

    def _with_gpu_layers(self, info, options: LoadOptions) -> LoadOptions:
        """Offload as many layers as the planner says fit, when llama.cpp can offload at all."""
        if options.n_gpu_layers is not None or not gpu_offload_supported():
            return replace(options, n_gpu_layers=options.n_gpu_layers or 0)
        plan = self.plan(info.alias, options.n_ctx * options.parallel)  # a KV cache per slot
        layers = -1 if plan.gpu_layers > plan.layers else plan.gpu_layers
        return replace(options, n_gpu_layers=layers)

    def _make_room(self, needed: int) -> None:
        # Unload the least recently used models while the new one would not fit in RAM.
        while self._models:
            free = available_memory_bytes()
            if free is None or free > needed * 1.5:
                return
            self._unload_locked(next(iter(self._models)))

    def unload(self, name: str | None = None) -> list[str]:
        with self._lock:
            names = list(self._models) if name is None else [resolve_model(self.workspace, name).alias]
            for alias in names:
                if alias in self._models:
                    self._unload_locked(alias)
            return names

    def _unload_locked(self, alias: str) -> None:
        self._requested.pop(alias, None)
        self._models.pop(alias).close()

    def chat(
        self,
        name: str,
        messages: list[dict[str, str]],
        params: GenerationParams = GenerationParams(),
        on_text: Callable[[str], None] | None = None,
        options: LoadOptions | None = None,
        timeout_s: float | None = None,
        cancel: threading.Event | None = None,
        prompt: str | None = None,
    ) -> GenerationResult:
        """Run one chat request, streaming text to ``on_text``; the call is one span. Setting
        ``cancel`` stops it: before its turn comes, or mid-answer (finish reason "cancelled").
        A raw ``prompt`` instead of messages is continued without the chat template."""
        model = self.load(name, options)
        asked, asked_params, answer_to = messages, params, on_text
        calls_wanted = bool(params.tools) and params.tool_choice != "none" and prompt is None
        # The model's own template renders tools and tool turns when it knows them; a call that
        # must be made (required, a named function) is held by a grammar on any model.
        native = model.tool_format if params.tool_choice in (None, "auto", "none") else None
        tools: list[tool_calls.Tool] | None = None
        if prompt is None and (params.tools or tool_calls.needs_rewrite(messages)):
            if params.tools and params.json_schema is not None:
                raise UnsupportedParameter("response_format", "a JSON answer format cannot go with tools")
            if params.tools:
                tools = tool_calls.check_tools(list(params.tools), grammar=not native)
            if native:
                messages = native_tools.native_messages(messages)
                if not calls_wanted:
                    params = replace(params, tools=())
            else:
                messages = tool_calls.prompt_messages(messages, tools, params.tool_choice)
                if calls_wanted and tools:
                    schema = tool_calls.call_schema(tools, params.tool_choice, params.parallel_tool_calls)
                    params = replace(params, json_schema=schema, tools=())
            if calls_wanted:
                on_text = None  # the answer goes out once read for calls, not as it comes
        attributes = {
            A.OPERATION: "chat" if prompt is None else "text_completion",
            A.PROVIDER: "llama.cpp",
            A.REQUEST_MODEL: model.alias,
            "gen_ai.request.temperature": params.temperature,
            "gen_ai.request.top_p": params.top_p,
            "gen_ai.request.max_tokens": params.max_tokens,
            "workbench.hardware": model.hardware,
        }
        if params.seed is not None:
            attributes["gen_ai.request.seed"] = params.seed
        if calls_wanted:
            attributes["workbench.tool_format"] = native or "grammar"
        with self.tracer.span("llm.chat", "llm", attributes) as span:
            span.set_payload(**({"messages": messages} if prompt is None else {"prompt": prompt}))
            queued = time.perf_counter()
            turn = (
                self._cpu_turns.turn(model.alias)
                if not model.options.n_gpu_layers
                else contextlib.nullcontext()
            )
            with turn:
                if cancel is not None and cancel.is_set():  # cancelled while waiting for its turn
                    cancelled = GenerationResult(
                        model.alias, finish_reason="cancelled", hardware=model.hardware
                    )
                    cancelled.trace_id = span.trace_id
                    span.set(A.FINISH_REASONS, ["cancelled"]).cancelled()
                    return cancelled
                stream = (
                    model.chat(messages, params, cancel)
                    if prompt is None
                    else model.complete(prompt, params, cancel)
                )
                timer = threading.Timer(timeout_s, stream.cancel) if timeout_s else None
                if timer is not None:
                    timer.daemon = True
                    timer.start()
                try:
                    for piece in stream:
                        if on_text is not None:
                            on_text(piece)
                    result = stream.result
                finally:
                    if timer is not None:
                        timer.cancel()
            result.trace_id = span.trace_id
            if calls_wanted:
                self._read_calls(result, model.alias, answer_to, tools or [], native)
                if result.tool_calls:
                    span.set_payload(tool_calls=result.tool_calls)
            span.update(
                {
                    A.INPUT_TOKENS: result.input_tokens,
                    A.CACHED_INPUT_TOKENS: result.cached_tokens,
                    A.OUTPUT_TOKENS: result.output_tokens,
                    A.FINISH_REASONS: [result.finish_reason],
                    A.TIME_TO_FIRST_TOKEN: result.ttft_s,
                    A.COST_USD: 0.0,
                    "workbench.tokens_per_s": round(result.tokens_per_s, 2),
                    "workbench.queue_wait_s": round(time.perf_counter() - queued - result.duration_s, 6),
                }
            )
            if result.mean_logprob is not None:
                span.set("workbench.mean_logprob", round(result.mean_logprob, 4))
            span.set_payload(output=result.text)
            if result.finish_reason == "cancelled":
                span.cancelled()
        if (
            result.tool_calls
            and asked_params.tool_choice in (None, "auto")
            and tool_calls.repeats(asked, result.tool_calls)
        ):
            # Small models call the tool they already have the result of, again and again (a
            # ReAct loop then ends at its step limit): they are asked for their answer instead.
            answer = self.chat(
                name, asked, replace(asked_params, tool_choice="none"), answer_to, options, timeout_s, cancel
            )
            answer.extra["repeated_tool_call"] = result.tool_calls[0]["function"]["name"]
            return answer
        return result

    @staticmethod
    def _read_calls(
        result: GenerationResult,
        alias: str,
        answer_to: Callable[[str], None] | None,
        tools: list,
        native: str | None,
    ) -> None:
        """The answer as the calls it makes or the text it answers: read from the model's own
        format (``native``) or from the grammar-held JSON."""
        try:
            if native:
                content, calls = native_tools.parse_native(result.text, native, alias, tools)
            elif result.finish_reason == "stop":
                content, calls = tool_calls.parse_answer(result.text, alias, tools)
            elif result.finish_reason == "length" and (whole := tool_calls.complete_calls(result.text)):
                content, calls = tool_calls.parse_answer(whole, alias, tools)
                result.extra["tool_answer_cut"] = result.text  # what it wrote, the unfinished call included
            else:
                raise ModelError("the grammar's JSON is unfinished")
        except ModelError:
            if result.finish_reason == "stop":
                raise
            # cut by max_tokens or cancelled: the call is unfinished, there is none to give
            result.extra["unfinished_tool_answer"] = result.text
            result.text = ""
            return
        if calls:
            result.text, result.tool_calls, result.finish_reason = content or "", calls, "tool_calls"
        else:
            result.text = content or ""
            if answer_to is not None and result.text:
                answer_to(result.text)

    def close(self) -> None:
        self.unload()


class _CpuTurns:
    """Local models on the CPU take turns: two different models generating at once on 2 cores
    ran at 24 and 19 tok/s where one alone ran at 130 (each spins a thread per core). Requests
    to the model whose turn it is join it (they are decoded together), unless another model is
    waiting: then it gets the next turn. GPU models do not take turns."""

    def __init__(self) -> None:
        self._changed = threading.Condition()
        self._holder: str | None = None
        self._running = 0
        self._waiting: dict[str, int] = {}

    @contextlib.contextmanager
    def turn(self, alias: str):
        with self._changed:
            self._waiting[alias] = self._waiting.get(alias, 0) + 1
            while not self._may_run(alias):
                self._changed.wait()
            self._waiting[alias] -= 1
            self._holder, self._running = alias, self._running + 1
        try:
            yield
        finally:
            with self._changed:
                self._running -= 1
                if self._running == 0:
                    self._holder = None
                    self._changed.notify_all()

    def _may_run(self, alias: str) -> bool:
        if self._holder is None:
            return True
        others_wait = any(count for name, count in self._waiting.items() if name != alias)
        return self._holder == alias and not others_wait
