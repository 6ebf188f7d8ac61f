"""llama.cpp through llama-cpp-python: one owner thread per loaded model, fed by a queue.

A ``Llama`` object is not thread-safe, so only its owner thread ever touches it; requests arrive
through the queue and stream their tokens back through a queue of their own. Up to
``LoadOptions.parallel`` requests are answered at once, decoded together (local_models/batching.py);
the rest wait their turn. Loading and chat templates go through llama-cpp-python; the decode
loop talks to llama.cpp's C API.
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import os
import platform
import queue
import re
import threading
import time
from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from local_models.batching import Batcher, Sequence, cancelled, random_seed
from local_models.native_tools import tool_format
from local_models.types import GenerationParams, GenerationResult
from workbench.core.errors import ContextLengthExceeded, ModelError, UnsupportedParameter

__all__ = ["LocalModel", "LoadOptions"]

_DONE = object()
# Sampling inside llama.cpp's compute graph ("backend sampling"): on a GPU only the sampled
# token comes back instead of the whole logits row. auto: on GPU models; on / off: always /
# never. Off by default until bench/gpu_llama.py has measured it on a GPU: on CPU it gives the
# same tokens at the same speed (tests/test_local_models.py), on a GPU it is not yet proven.
BACKEND_SAMPLING = os.environ.get("WORKBENCH_BACKEND_SAMPLING", "off")
# The prompt cache (local_models/batching.py), on unless WORKBENCH_PROMPT_CACHE=off: for
# bench/bench_latency.py's figures without it, and a way out should it ever misbehave.
PROMPT_CACHE = os.environ.get("WORKBENCH_PROMPT_CACHE", "on") != "off"
WARM_AFTER_S = 0.5  # idle this long before an answer is decoded again into its slot's cache

# Warming runs in a model's owner thread, a daemon: a short-lived command (an eval run, `ask`)
# could exit while that thread is inside llama_decode, and llama.cpp's teardown under it
# crashed the process (SIGSEGV after the command had printed its result). At exit no new warm
# starts, and exit waits for the one in progress.
_EXITING = threading.Event()
_WARMING = threading.Lock()


def _stop_warming() -> None:
    _EXITING.set()
    if _WARMING.acquire(timeout=30):
        _WARMING.release()


atexit.register(_stop_warming)

# Used when a GGUF file carries no chat template of its own (the packaged Gemma 3 has none).
_FALLBACK_TEMPLATES = {
    "gemma": (
        "{{ bos_token }}{% for m in messages %}{% if m['role'] == 'system' %}"
        "<start_of_turn>user\n{{ m['content'] }}<end_of_turn>\n{% else %}<start_of_turn>"
        "{{ 'model' if m['role'] == 'assistant' else 'user' }}\n{{ m['content'] }}<end_of_turn>\n"
        "{% endif %}{% endfor %}<start_of_turn>model\n"
    ),
    "chatml": (
        "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n"
        "{% endfor %}<|im_start|>assistant\n"
    ),
}


def _fallback_template(architecture: str) -> str:
    return _FALLBACK_TEMPLATES["gemma" if architecture.startswith("gemma") else "chatml"]


_log_callback = None  # kept referenced: llama.cpp calls it from C for the life of the process
_heard = threading.local()  # .lines: the log lines llama.cpp wrote on this thread, while kept


@contextlib.contextmanager
def _llama_log_lines():
    """The lines llama.cpp logs on this thread meanwhile (a model loads on the calling thread)."""
    _route_llama_logs()
    lines: list[str] = []
    _heard.lines = lines
    try:
        yield lines
    finally:
        _heard.lines = None


_WEIGHTS_BUFFER = re.compile(r"load_tensors:\s+(\S+) model buffer size")


def row_exact_weights(load_lines: list[str]) -> bool:
    """Whether llama.cpp's CPU matmuls compute each row of this model alone, in any batch: on
    x86, when the load put every weight in a plain CPU buffer (``CPU``, ``CPU_Mapped``). An extra
    buffer (``CPU_REPACK``, ``AMX``) holds weights its kernels take in groups of rows from a
    decode's first, and ARM's int8 matmul takes rows two at a time: not row-exact. Which
    weights ggml repacks depends on its version, the CPU and the tensors' shapes, so the
    load's own report (``load_tensors: CPU_REPACK model buffer size = ...``) decides; no
    report read, not row-exact."""
    if platform.machine().lower() not in ("x86_64", "amd64"):
        return False
    buffers = {m.group(1) for line in load_lines if (m := _WEIGHTS_BUFFER.search(line))}
    return bool(buffers) and buffers <= {"CPU", "CPU_Mapped"}


def _route_llama_logs() -> None:
    """Send llama.cpp's log lines to Python logging instead of stderr.

    llama-cpp-python's own callback prints level-0 lines (such as the SWA cache notice Gemma 3
    triggers) even with verbose=False; in the app those would scribble over the screen.
    """
    global _log_callback
    if _log_callback is not None:
        return
    import ctypes
    import logging

    import llama_cpp

    logger = logging.getLogger("llama.cpp")

    @llama_cpp.llama_log_callback
    def forward(level: int, text: bytes, _user_data: ctypes.c_void_p) -> None:
        # ggml levels: 1 debug, 2 info, 3 warn, 4 error, 5 continuation. Its warnings (such as
        # that notice) are not the user's to act on; errors also reach them as exceptions.
        line = text.decode("utf-8", "replace").rstrip()
        heard = getattr(_heard, "lines", None)
        if heard is not None:
            heard.append(line)
        logger.log(logging.ERROR if level == 4 else logging.DEBUG, line)

    _log_callback = forward
    llama_cpp.llama_log_set(forward, ctypes.c_void_p(0))


class _TokenLogprob:
    """log p(token) under the model's raw distribution (before temperature and truncation, as
    OpenAI's logprobs report it), from the batch's logits row where the token was sampled."""

    def __init__(self, ctx, vocab) -> None:
        import llama_cpp as C

        self.C, self.ctx, self.vocab = C, ctx, vocab
        self.n_vocab, self.get_logits = C.llama_vocab_n_tokens(vocab), C.llama_get_logits_ith
        self.buffer = ctypes.create_string_buffer(256)

    def _log_softmax(self, row: int):
        import numpy as np

        logits = np.ctypeslib.as_array(self.get_logits(self.ctx, row), shape=(self.n_vocab,))
        peak = float(logits.max())
        return logits - peak - float(np.log(np.exp(logits - peak).sum()))

    def __call__(self, row: int, token: int) -> float:
        return float(self._log_softmax(row)[token])

    def piece(self, token: int) -> bytes:
        size = self.C.llama_token_to_piece(self.vocab, token, self.buffer, 256, 0, False)
        return self.buffer.raw[:size]

    def entry(self, token: int, logprob: float | None) -> dict[str, Any]:
        raw = self.piece(token)
        return {"token": raw.decode("utf-8", "replace"), "bytes": list(raw), "logprob": logprob}

    def top(self, row: int, token: int, k: int) -> dict[str, Any]:
        """OpenAI's logprobs entry of ``token`` sampled from ``row``, with its ``k`` most likely
        alternatives (most likely first)."""
        import numpy as np

        scores = self._log_softmax(row)
        best = np.argpartition(scores, -k)[-k:] if k else np.array([], dtype=int)
        best = best[np.argsort(-scores[best])]
        entry = self.entry(token, float(scores[token]))
        entry["top_logprobs"] = [self.entry(int(t), float(scores[t])) for t in best]
        return entry


def gpu_offload_supported() -> bool:
    import llama_cpp

    return bool(llama_cpp.llama_supports_gpu_offload())


@dataclass(frozen=True)
class LoadOptions:
    n_ctx: int = 4096
    n_threads: int | None = None  # default: the machine's cores
    n_gpu_layers: int | None = None  # None: chosen by the fit planner; -1: all layers
    parallel: int = 4
    """Requests answered at once, decoded together, each with n_ctx cells of KV cache of its
    own (memory: n_ctx x parallel cells)."""
    prompt_cache: bool = PROMPT_CACHE
    """A free slot keeps its last prompt and answer; a request starting the same way reads only
    the rest (local_models/batching.py). Off: every prompt is decoded whole."""


@dataclass
class _Request:
    messages: list[dict[str, str]]
    params: GenerationParams
    prompt: str | list[int] | None = None  # a raw prompt or its token ids: no chat template
    out: queue.Queue = field(default_factory=queue.Queue)
    cancelled: threading.Event = field(default_factory=threading.Event)
    stop: threading.Event | None = None  # the caller's own cancel signal, when it has one
    result: GenerationResult | None = None
    error: BaseException | None = None


class Stream:
    """Iterate to receive text pieces as they are generated; ``result`` once finished."""

    def __init__(self, request: _Request) -> None:
        self._request = request
        self._finished = False

    def __iter__(self) -> Iterator[str]:
        while not self._finished:
            item = self._request.out.get()
            if item is _DONE:
                self._finished = True
                break
            yield item
        if self._request.error is not None:
            raise self._request.error

    def cancel(self) -> None:
        self._request.cancelled.set()

    @property
    def result(self) -> GenerationResult:
        for _ in self:
            pass
        assert self._request.result is not None
        return self._request.result


class LocalModel:
    """A GGUF model loaded in its own owner thread."""

    def __init__(self, alias: str, path: Path, options: LoadOptions = LoadOptions()) -> None:
        self.alias = alias
        self.path = path
        self.options = options
        self.n_threads = options.n_threads or os.cpu_count() or 1
        self.parallel = max(1, options.parallel)
        self._queue: queue.Queue[_Request | Future | None] = queue.Queue()
        # Held while checking _closed and queueing, and while close() queues its sentinel: no
        # request can then land behind the sentinel, where nobody would ever serve it.
        self._closing = threading.Lock()
        self._closed = False
        self._loaded = threading.Event()
        self._load_error: BaseException | None = None
        self._llm: Any = None
        self.chat_template: str | None = None
        self.tool_format: str | None = None
        """The tool-call format its own chat template knows (native_tools), None if none."""
        self._thread = threading.Thread(target=self._own, name=f"llama:{alias}", daemon=True)
        self._thread.start()
        self._loaded.wait()
        if self._load_error is not None:
            raise self._load_error

    @property
    def hardware(self) -> str:
        if self.options.n_gpu_layers:
            layers = "all" if self.options.n_gpu_layers < 0 else self.options.n_gpu_layers
            return f"gpu:{layers} layers"
        return f"cpu:{self.n_threads} threads"

    @property
    def reused_tokens(self) -> int:
        """Prompt tokens a request found in its slot's cells instead of decoding, since loaded."""
        return self._batcher.reused

    @property
    def peak_parallel(self) -> int:
        """The most requests this model has decoded together since it was loaded."""
        return self._batcher.peak

    @property
    def context_length(self) -> int:
        """Tokens one request may hold, prompt and answer."""
        return self._n_ctx

    # -- the owner thread ---------------------------------------------------------------------

    def _own(self) -> None:
        try:
            self._load()
        except BaseException as exc:  # noqa: BLE001 - handed to the caller of __init__
            self._load_error = exc
            self._loaded.set()
            return
        self._loaded.set()
        waiting: deque[_Request] = deque()
        closing = False
        while not closing or waiting or self._batcher.active:
            idle = not waiting and not self._batcher.active
            if idle and not closing and not _EXITING.is_set() and self._batcher.warm_pending() is not None:
                # Idle with a slot to warm: only once no request came for WARM_AFTER_S. A client
                # chaining requests (an eval, an agent) sends the next within milliseconds, and a
                # block being warmed would hold it up; a person reading the answer takes seconds.
                items = self._take_queued(block=True, timeout=WARM_AFTER_S)
                if not items:
                    with _WARMING:
                        if not _EXITING.is_set():
                            self._batcher.warm()
                    continue
            else:
                items = self._take_queued(block=idle and not closing)
            for item in items:
                if item is None:
                    closing = True  # finish what came before, take nothing after
                elif isinstance(item, Future):
                    self._run_call(item)
                else:
                    waiting.append(item)
            self._admit(waiting)
            if self._batcher.active:
                for sequence in self._batcher.step():
                    sequence.request.out.put(_DONE)
        self._batcher.close()
        self._llm.close()
        self._llm = None
        self._fail_queued()

    def _take_queued(self, block: bool, timeout: float | None = None) -> list:
        try:
            items = [self._queue.get(timeout=timeout)] if block else []
        except queue.Empty:
            return []
        while True:
            try:
                items.append(self._queue.get_nowait())
            except queue.Empty:
                return items

    def _admit(self, waiting: deque[_Request]) -> None:
        """Start waiting requests, in order, while a slot is free."""
        while waiting and len(self._batcher.active) < self.parallel:
            request = waiting[0]
            try:
                sequence = self._sequence(request)
            except BaseException as exc:  # noqa: BLE001 - handed to the stream's reader
                waiting.popleft()
                request.error = exc
                request.out.put(_DONE)
                continue
            waiting.popleft()
            if isinstance(sequence, Sequence):
                self._batcher.join(sequence)
            else:  # cancelled before its turn
                request.out.put(_DONE)

    def _fail_queued(self) -> None:
        """Fail whatever is still queued: its owner has stopped and will never serve it."""
        while True:
            try:
                request = self._queue.get_nowait()
            except queue.Empty:
                return
            error = self._unloaded_error()
            if isinstance(request, Future):
                request.set_exception(error)
            elif request is not None:
                request.error = error
                request.out.put(_DONE)

    def _unloaded_error(self) -> ModelError:
        return ModelError(f"{self.alias} was unloaded before it could answer", "load it again and retry")

    def _submit(self, item: _Request | Future) -> None:
        with self._closing:
            if self._closed or not self._thread.is_alive():
                raise self._unloaded_error()
            self._queue.put(item)

    def _run_call(self, future: Future) -> None:
        function = future.function  # type: ignore[attr-defined]
        try:
            future.set_result(function(self._llm))
        except BaseException as exc:  # noqa: BLE001 - handed to the caller
            future.set_exception(exc)

    def call(self, function):
        """Run ``function(llm)`` in the owner thread, in queue order; returns its result."""
        future: Future = Future()
        future.function = function  # type: ignore[attr-defined]
        self._submit(future)
        return future.result()

    def prompt_tokens(self, messages: list[dict[str, str]]) -> int:
        """How many tokens these messages take once formatted with the chat template."""

        def count(llm) -> int:
            formatted = self._formatter(messages=messages)
            return len(
                llm.tokenize(
                    formatted.prompt.encode("utf-8"), add_bos=not formatted.added_special, special=True
                )
            )

        return self.call(count)

    def _load(self) -> None:
        import llama_cpp
        from llama_cpp.llama_chat_format import Jinja2ChatFormatter

        if not self.path.exists():
            raise ModelError(f"model file {self.path} is missing", "run `workbench models fetch`")
        try:
            with _llama_log_lines() as load_lines:
                self._llm = llama_cpp.Llama(
                    str(self.path),
                    n_ctx=self.options.n_ctx,
                    n_threads=self.n_threads,
                    n_gpu_layers=self.options.n_gpu_layers or 0,
                    verbose=False,
                )
        except ValueError as exc:
            raise ModelError(
                f"llama.cpp could not load {self.path}: {exc}", "check that it is a valid GGUF file"
            ) from None
        model = self._llm._model
        metadata = self._llm.metadata
        template = metadata.get("tokenizer.chat_template") or _fallback_template(
            metadata.get("general.architecture", "")
        )
        self.chat_template = metadata.get("tokenizer.chat_template")
        self.tool_format = tool_format(self.chat_template)
        self._formatter = Jinja2ChatFormatter(
            template,
            eos_token=model.token_get_text(self._llm.token_eos()),
            bos_token=model.token_get_text(self._llm.token_bos()),
        )
        self._vocab = llama_cpp.llama_model_get_vocab(self._llm.model)
        self._use_batched_context(llama_cpp)
        self._ctx = self._llm.ctx
        self._batcher = Batcher(
            self._ctx,
            self._vocab,
            self._llm.n_batch,
            self.alias,
            _TokenLogprob(self._ctx, self._vocab),
            self.parallel,
            n_swa=llama_cpp.llama_model_n_swa(self._llm.model),
            reuse=self.options.prompt_cache,
            gpu=bool(self.options.n_gpu_layers),
            row_exact=row_exact_weights(load_lines),
        )

    def _use_batched_context(self, llama_cpp) -> None:
        """Swap Llama's one-sequence context for one with a KV cache of n_ctx cells per parallel
        request, as llama-server makes with -np N (Llama takes no such option).

        Each sequence gets cells of its own rather than a share of one pool (kv_unified): in a
        shared pool a sequence's attention sums over cells interleaved with the others', in
        another order, and at temperature 0 answers came out different from the same request
        alone (2 to 6 of 8 prompts). Its own cells give the same tokens, at n_ctx x parallel cells
        of memory (the fit planner counts them)."""
        from llama_cpp._internals import LlamaContext

        params = type(self._llm.context_params).from_buffer_copy(self._llm.context_params)
        params.n_seq_max = min(self.parallel, llama_cpp.llama_max_parallel_sequences())
        params.n_ctx = self._llm.n_ctx() * params.n_seq_max
        params.kv_unified = False
        # Flash attention: without it, llama.cpp (this build, CPU) gave a sequence different
        # logits (by up to 0.52) when another sequence sharing its prompt's first tokens was
        # in the same batch; with it, bit-for-bit those of the sequence alone.
        params.flash_attn_type = llama_cpp.LLAMA_FLASH_ATTN_TYPE_ENABLED
        self._llm._ctx.close()
        self._llm._ctx = LlamaContext(model=self._llm._model, params=params, verbose=False)
        self.parallel = params.n_seq_max
        self._n_ctx = llama_cpp.llama_n_ctx_seq(self._llm.ctx)
        self._token_bytes: int | None = None  # the vocabulary's longest token, counted when needed

    def _sampler(self, params: GenerationParams, seed: int):
        """The same sampler chain llama-cpp-python builds for these settings (its repeat
        penalty of 1.0 is a no-op and left out)."""
        import llama_cpp as C

        from local_models.sampling import MIN_P, TOP_K

        chain = C.llama_sampler_chain_init(C.llama_sampler_chain_default_params())
        if params.json_schema is not None:
            import json

            from llama_cpp import LlamaGrammar

            grammar = LlamaGrammar.from_json_schema(json.dumps(params.json_schema), verbose=False)
            C.llama_sampler_chain_add(
                chain,
                C.llama_sampler_init_grammar(
                    self._vocab, grammar._grammar.encode("utf-8"), grammar._root.encode("utf-8")
                ),
            )
        if params.logit_bias:
            biases = (C.llama_logit_bias * len(params.logit_bias))(
                *(C.llama_logit_bias(token, bias) for token, bias in params.logit_bias)
            )
            n_vocab = C.llama_vocab_n_tokens(self._vocab)
            C.llama_sampler_chain_add(
                chain, C.llama_sampler_init_logit_bias(n_vocab, len(params.logit_bias), biases)
            )
        if params.presence_penalty or params.frequency_penalty:
            # Over the whole answer (OpenAI's penalties count every token generated so far).
            C.llama_sampler_chain_add(
                chain,
                C.llama_sampler_init_penalties(
                    C.llama_vocab_n_tokens(self._vocab),
                    params.max_tokens,
                    1.0,
                    params.frequency_penalty,
                    params.presence_penalty,
                ),
            )
        if params.temperature == 0.0:
            C.llama_sampler_chain_add(chain, C.llama_sampler_init_greedy())
        else:
            for sampler in (
                C.llama_sampler_init_top_k(TOP_K),
                C.llama_sampler_init_typical(1.0, 1),
                C.llama_sampler_init_top_p(params.top_p, 1),
                C.llama_sampler_init_min_p(MIN_P, 1),
                C.llama_sampler_init_temp(params.temperature),
                C.llama_sampler_init_dist(seed),
            ):
                C.llama_sampler_chain_add(chain, sampler)
        return chain

    def _sequence(self, request: _Request) -> Sequence | None:
        """The request, tokenized, checked and given a free slot and a sampler; None when it
        was cancelled while it waited."""
        import llama_cpp as C

        if cancelled(request):
            request.result = GenerationResult(
                model=self.alias, finish_reason="cancelled", hardware=self.hardware
            )
            return None
        llm, params = self._llm, request.params
        start = time.perf_counter()
        n_vocab = C.llama_vocab_n_tokens(self._vocab)
        if isinstance(request.prompt, list):
            prompt = list(request.prompt)
            if not prompt or not all(0 <= token < n_vocab for token in prompt):
                raise UnsupportedParameter(
                    "prompt",
                    f"a token-id prompt must hold ids of {self.alias}'s vocabulary (0 to {n_vocab - 1})",
                )
            template_stops: list = []
        elif request.prompt is not None:
            prompt = llm.tokenize(request.prompt.encode("utf-8"), add_bos=True, special=True)
            template_stops = []
        else:
            # tools reach the backend only for a template that knows them (ModelManager.chat)
            formatted = self._formatter(messages=request.messages, tools=list(params.tools) or None)
            prompt = llm.tokenize(
                formatted.prompt.encode("utf-8"), add_bos=not formatted.added_special, special=True
            )
            template_stops = formatted.stop if isinstance(formatted.stop, list) else [formatted.stop]
        if any(not 0 <= token < n_vocab for token, _ in params.logit_bias):
            raise UnsupportedParameter(
                "logit_bias", f"logit_bias names a token id outside {self.alias}'s vocabulary of {n_vocab}"
            )
        room = self._n_ctx - len(prompt)
        if room < 1:
            raise ContextLengthExceeded(
                f"the prompt has {len(prompt)} tokens; {self.alias} holds {self._n_ctx}",
                "shorten it or load the model with a larger --ctx",
            )
        seq_id = self._batcher.free_slot(prompt)
        seed = params.seed if params.seed is not None else random_seed()
        sampler = self._sampler(params, seed)
        wanted = BACKEND_SAMPLING == "on" or (BACKEND_SAMPLING == "auto" and bool(self.options.n_gpu_layers))
        # A grammar runs on the CPU, and log-probabilities need the logits row on the host.
        attached = bool(
            wanted
            and params.json_schema is None
            and not params.logprobs
            and params.top_logprobs is None
            and not params.score_prompt
            and C.llama_set_sampler(self._ctx, seq_id, sampler)
        )
        return Sequence(
            request=request,
            seq_id=seq_id,
            prompt=prompt,
            max_tokens=min(params.max_tokens, room),
            stops=[s for s in (*params.stop, *template_stops) if s],
            sampler=sampler,
            attached=attached,
            result=GenerationResult(model=self.alias, input_tokens=len(prompt), hardware=self.hardware),
            start=start,
            # BOS that the tokenizer put in front is no text of the prompt: not scored
            scored_from=int(bool(prompt) and prompt[0] == C.llama_vocab_bos(self._vocab)),
        )

    # -- the caller's side --------------------------------------------------------------------

    def chat(
        self,
        messages: list[dict[str, str]],
        params: GenerationParams = GenerationParams(),
        stop: threading.Event | None = None,
    ) -> Stream:
        """Queue a chat request; returns at once with a stream of its text. Setting ``stop``
        ends the answer where it is (finish reason "cancelled"). After close(), it raises."""
        self._refuse_past_context(messages)
        request = _Request(messages, params.validate(), stop=stop)
        self._submit(request)
        return Stream(request)

    def _refuse_past_context(self, messages: list[dict[str, str]]) -> None:
        """Refuse, on the caller's thread and at once, a conversation that cannot fit: the exact
        count needs the chat template rendered and tokenized on the model's thread (30,000
        messages took 24 s there, every other request waiting). A lower bound of its tokens
        is cheap: each message renders at least one token of its own (its role marker) and no
        token holds more bytes than the vocabulary's longest."""
        n_ctx = getattr(self, "_n_ctx", None)
        if not n_ctx:
            return
        size = sum(len(str(m.get("content") or "").encode()) for m in messages)
        bound = len(messages)
        if size > n_ctx:  # only then can the bytes say more than the message count
            bound = max(bound, size // self._longest_token_bytes())
        if bound >= n_ctx:
            raise ContextLengthExceeded(
                f"the prompt has at least {bound} tokens ({len(messages)} messages, {size} bytes); "
                f"{self.alias} holds {n_ctx}",
                "shorten it or load the model with a larger --ctx",
            )

    def _longest_token_bytes(self) -> int:
        if self._token_bytes is None:
            import llama_cpp as C

            n_vocab = C.llama_vocab_n_tokens(self._vocab)
            # The token's stored text: at least as long as the bytes it stands for (byte-level
            # BPE stores one byte as up to two), so the bound stays a lower bound.
            self._token_bytes = max(
                1, *(len(C.llama_vocab_get_text(self._vocab, i) or b"") for i in range(n_vocab))
            )
        return self._token_bytes

    def complete(
        self,
        prompt: str | list[int],
        params: GenerationParams = GenerationParams(),
        stop: threading.Event | None = None,
    ) -> Stream:
        """A raw prompt, continued without the chat template (OpenAI's completions)."""
        request = _Request([], params.validate(), prompt=prompt, stop=stop)
        self._submit(request)
        return Stream(request)

    def close(self) -> None:
        """Unload: finish the requests queued so far, then free the model in its owner thread;
        any request after this fails at once."""
        with self._closing:
            if self._closed:
                return
            self._closed = True
            if self._thread.is_alive():
                self._queue.put(None)
        self._thread.join()
