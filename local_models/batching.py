"""Continuous batching: several answers decoded together in one llama.cpp context.

Each request gets a sequence id and KV cells of its own in one context, as llama-server's
``-np N -cb`` does. Every step puts one batch through ``llama_decode``: the last sampled token
of every answering sequence, then as much of the waiting prompts as the batch has room for.
Each sequence samples from its own row of logits with its own sampler chain (temperature,
top-p, seed, grammar), so what one request asks never changes another's tokens. New requests
join between steps; a finished or cancelled one leaves and frees its slot at once.

A slot does not keep the KV cells of its last answer for a next prompt that starts the same way
(llama-server's prompt cache): tried, answers came out different from the same request on a
fresh model (3 of 7 in a chat after a grammar-constrained request), and an answer that depends
on what was asked before breaks the promise of the same tokens at temperature 0.
"""

from __future__ import annotations

import codecs
import ctypes
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from local_models.types import GenerationResult
from workbench.core.errors import ModelError

__all__ = ["Batcher", "Sequence", "cancelled", "random_seed"]

_PUT_INTERVAL_S = 0.03  # stream to the reader at most ~30 times a second


@dataclass
class Sequence:
    """One request being answered in slot ``seq_id``."""

    request: Any  # llama_backend._Request
    seq_id: int
    prompt: list[int]
    max_tokens: int
    stops: list[str]
    sampler: Any
    attached: bool  # sampler runs inside llama.cpp's graph (backend sampling)
    result: GenerationResult
    start: float
    prefilled: int = 0  # prompt tokens decoded so far
    decoded: int = 0  # tokens in its KV cells: the next one goes at this position
    last_token: int = -1  # sampled, not yet decoded
    logits_row: int = -1  # where this step's logits are in the batch, -1 if none
    text: str = ""
    sent: int = 0
    count: int = 0
    logprob_sum: float = 0.0
    scored_from: int = 0  # the first prompt token reported when the prompt is scored
    token_logprobs: list[dict[str, Any]] = field(default_factory=list)
    prompt_logprobs: list[dict[str, Any]] = field(default_factory=list)
    prompt_rows: list[tuple[int, int]] = field(default_factory=list)  # (batch row, prompt index)
    next_put: float = 0.0
    finish: str = "length"
    done: bool = False
    decoder: codecs.IncrementalDecoder = field(
        default_factory=lambda: codecs.getincrementaldecoder("utf-8")(errors="replace")
    )


class Batcher:
    """The decode steps of one context, run by the model's owner thread only."""

    def __init__(self, ctx, vocab, n_batch: int, alias: str, logprob: Callable, slots: int) -> None:
        import llama_cpp as C

        self.C, self.ctx, self.vocab, self.alias = C, ctx, vocab, alias
        self.n_batch, self.logprob = n_batch, logprob
        self.memory = C.llama_get_memory(ctx)
        self.batch = C.llama_batch_init(n_batch, 0, 1)
        self.buffer = ctypes.create_string_buffer(256)
        self.active: list[Sequence] = []
        self.peak = 0  # the most sequences decoded together so far
        self.slots = slots

    def close(self) -> None:
        self.C.llama_batch_free(self.batch)

    def free_slot(self) -> int:
        busy = {s.seq_id for s in self.active}
        return min(slot for slot in range(self.slots) if slot not in busy)

    def join(self, sequence: Sequence) -> None:
        self.C.llama_memory_seq_rm(self.memory, sequence.seq_id, -1, -1)
        self.active.append(sequence)
        self.peak = max(self.peak, len(self.active))

    def step(self) -> list[Sequence]:
        """Decode one batch and sample; returns the sequences that finished in this step."""
        C, batch, n = self.C, self.batch, 0
        for s in self.active:  # answering sequences first: one token each
            if s.prefilled == len(s.prompt):
                n = self._add(n, s, s.last_token, True)
                s.logits_row = n - 1
            else:
                s.logits_row = -1
        for s in self.active:  # then the prompts, as far as the batch has room
            score = s.request.params.score_prompt
            s.prompt_rows.clear()
            while s.prefilled < len(s.prompt) and n < self.n_batch:
                last = s.prefilled == len(s.prompt) - 1
                n = self._add(n, s, s.prompt[s.prefilled], last or score)
                if score:
                    s.prompt_rows.append((n - 1, s.prefilled))
                s.prefilled += 1
                if last:
                    s.logits_row = n - 1
        batch.n_tokens = n
        code = C.llama_decode(self.ctx, batch)
        if code != 0:
            error = ModelError(
                f"llama.cpp failed to decode on {self.alias} (code {code})",
                "retry; if it persists, reload the model with a larger --ctx or fewer parallel requests",
            )
            for s in self.active:
                s.request.error, s.done = error, True
            return self._leave()
        for s in self.active:
            self._score_prompt(s)
            if s.logits_row >= 0 and not s.done:
                if s.max_tokens == 0:  # the prompt scored, nothing to generate
                    s.finish, s.done = "length", True
                else:
                    self._take(s, C.llama_sampler_sample(s.sampler, self.ctx, s.logits_row))
        for s in self.active:  # cancelled while its prompt was still going in
            if not s.done and cancelled(s.request):
                s.finish, s.done = "cancelled", True
        return self._leave()

    def _score_prompt(self, s: Sequence) -> None:
        """The log-probability of each prompt token decoded this step, from the row before it."""
        for row, index in s.prompt_rows:
            if index == 0 and s.scored_from == 0:  # nothing before it: no probability
                s.prompt_logprobs.append(self.logprob.entry(s.prompt[0], None))
            following = index + 1
            if s.scored_from <= following < len(s.prompt):
                s.prompt_logprobs.append(self.logprob.top(row, s.prompt[following], self._top(s)))

    @staticmethod
    def _top(s: Sequence) -> int:
        return s.request.params.top_logprobs or 0

    def _add(self, n: int, s: Sequence, token: int, logits: bool) -> int:
        """Put ``token`` of ``s`` at the next position of its sequence, as row ``n``."""
        batch = self.batch
        batch.token[n], batch.pos[n], batch.n_seq_id[n] = token, s.decoded, 1
        batch.seq_id[n][0], batch.logits[n] = s.seq_id, logits
        s.decoded += 1
        return n + 1

    def _take(self, s: Sequence, token: int) -> None:
        """What one sampled token does to its sequence: end it, or extend and stream its text."""
        C = self.C
        if C.llama_vocab_is_eog(self.vocab, token):
            s.finish, s.done = "stop", True
            return
        s.count += 1
        if s.request.params.top_logprobs is not None:
            entry = self.logprob.top(s.logits_row, token, self._top(s))
            s.token_logprobs.append(entry)
            s.logprob_sum += entry["logprob"]
        elif s.request.params.logprobs:
            s.logprob_sum += self.logprob(s.logits_row, token)
        now = time.perf_counter()
        if s.result.ttft_s is None:
            s.result.ttft_s = now - s.start
        size = C.llama_token_to_piece(self.vocab, token, self.buffer, 256, 0, False)
        s.text += s.decoder.decode(self.buffer.raw[:size])
        cut = _find_stop(s.text, s.stops, s.sent)
        if cut is not None:
            s.text, s.finish, s.done = s.text[:cut], "stop", True
            return
        if now >= s.next_put or s.count == 1:
            # Coalesce pieces: fewer wake-ups of the reading thread, which on 2 cores takes a
            # core from llama.cpp's compute threads.
            safe = len(s.text) - _partial_stop(s.text, s.stops)
            if safe > s.sent:
                s.request.out.put(s.text[s.sent : safe])
                s.sent, s.next_put = safe, now + _PUT_INTERVAL_S
        if cancelled(s.request):
            s.finish, s.done = "cancelled", True
        elif s.count >= s.max_tokens:
            s.done = True
        s.last_token = token

    def _leave(self) -> list[Sequence]:
        finished = [s for s in self.active if s.done]
        self.active = [s for s in self.active if not s.done]
        for s in finished:
            self.C.llama_memory_seq_rm(self.memory, s.seq_id, -1, -1)
            if s.attached:
                self.C.llama_set_sampler(self.ctx, s.seq_id, None)
            self.C.llama_sampler_free(s.sampler)
            if s.request.error is None:
                s.request.result = _finish(s)
        return finished


def _finish(s: Sequence) -> GenerationResult:
    text = s.text + s.decoder.decode(b"", final=True)
    if len(text) > s.sent:
        s.request.out.put(text[s.sent :])
    result = s.result
    result.text, result.output_tokens, result.finish_reason = text, s.count, s.finish
    params = s.request.params
    if (params.logprobs or params.top_logprobs is not None) and s.count:
        result.mean_logprob = s.logprob_sum / s.count
    if params.top_logprobs is not None:
        result.token_logprobs = _within(s.token_logprobs, len(text.encode("utf-8")))
    if params.score_prompt:
        result.prompt_logprobs = s.prompt_logprobs
    result.duration_s = time.perf_counter() - s.start
    decode_s = result.duration_s - (result.ttft_s or 0.0)
    result.tokens_per_s = (s.count - 1) / decode_s if s.count > 1 and decode_s > 0 else 0.0
    return result


def _within(entries: list[dict[str, Any]], size: int) -> list[dict[str, Any]]:
    """The tokens whose bytes make up the answer's first ``size`` bytes (a stop sequence cut
    the text: the tokens past it are not part of the answer)."""
    kept, total = [], 0
    for entry in entries:
        if total >= size:
            break
        kept.append(entry)
        total += len(entry["bytes"])
    return kept


def cancelled(request) -> bool:
    return request.cancelled.is_set() or (request.stop is not None and request.stop.is_set())


def random_seed() -> int:
    return int.from_bytes(os.urandom(4), "little")


def _partial_stop(text: str, stops: list[str]) -> int:
    """How many trailing characters could be the start of a stop sequence (held back)."""
    held = 0
    for stop in stops:
        for size in range(min(len(stop) - 1, len(text)), held, -1):
            if text.endswith(stop[:size]):
                held = size
                break
    return held


def _find_stop(text: str, stops: list[str], sent: int) -> int | None:
    if not stops:
        return None
    window = max(0, sent - max(len(s) for s in stops))
    best = None
    for stop in stops:
        index = text.find(stop, window)
        if index != -1 and (best is None or index < best):
            best = index
    return best
