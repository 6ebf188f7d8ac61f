"""Continuous batching: several answers decoded together in one llama.cpp context.

Each request gets a sequence id and KV cells of its own in one context, as llama-server's
``-np N -cb`` does. Every step puts the last sampled token of every answering sequence through
one ``llama_decode``, then as much of the waiting prompts as a batch has room for, in chunks.
Each sequence samples from its own row of logits with its own sampler chain (temperature,
top-p, seed, grammar), so what one request asks never changes another's tokens. New requests
join between steps; a finished or cancelled one leaves and frees its slot at once.

A free slot keeps the KV cells of its last prompt (llama-server's prompt cache): a new request
takes the free slot whose cells give it the most rows to reuse (among equals, the one that
loses the fewest kept rows) and decodes only the rest, so a chat's next turn reads little more
than the new turn and a template's fixed instructions are read once. Every answer equals what
llama.cpp gives the same prompt decoded fresh, as llama-server and llama-cpp-python decode it
(in ubatches of 512 from its start), bit for bit,
cache or not (tests/test_prompt_cache.py checks the tokens against a fresh model and against
llama-cpp-python after every kind of request). llama-server's own cache does not promise that
("logits are not guaranteed to be bit-for-bit identical for different batch sizes").

What makes it hold (CPU, measured on this build; Plan says how): ggml computes a row alike
in any decode of TILE rows or more (flash attention's tiled path; its one-row path below
that gives other low bits, and so, at temperature 0, sometimes another next token), and
groups rows by 4 or 8 from a decode's first row in the repacked matmuls (Q4_K on AVX2). So a
prompt decoded fresh is cut on llama.cpp's own grid; a kept prefix is reused only up to a point
on an ALIGN grid that leaves TILE rows or more to decode, and only the rows its first decode
computed in such chunks. A prompt shorter than TILE, decoded fresh in one chunk of one-row
attention, reuses the rows another such prompt kept and decodes the rest (SHORT_REST rows or
more) in one chunk: many short requests that share their instructions (an eval, an agent)
read those once. Where llama.cpp repacked no weight (SmolLM2's Q4_1; on x86, as the load
reports its buffers), every matmul computes a row alone and the grid is every row: a prefix is
reused up to any point, as llama-server reuses it, and a short prompt decodes as few as
ROW_REST rows. An answer, decoded a token at a time, is decoded again as a chunk of TILE
rows or more while the model is idle (Batcher.warm), so a chat's next turn finds it too. On a GPU,
whose kernels depend on the batch in other ways, a slot reuses whole ubatches only: the
same cuts as a fresh decode. A model with a sliding-window cache (Gemma 3) reuses a prefix
only while the prompt fits in its window.
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
TILE = 64
"""ggml-cpu's flash attention takes its tiled path for a decode of this many rows or more
(GGML_FA_TILE_Q, ggml-cpu/common.h) and computes each row alike there, whatever the cut."""
ALIGN = 16
"""Repacked matmuls (Q4_K on AVX2) take a decode's rows in groups of 4 or 8 from its first,
and the last incomplete group another way: a cut of a cached decode starts on this grid."""
SHORT_REST = 16
"""Rows a short prompt (fewer than TILE) decodes after a reused prefix, at least: with fewer,
repacked Q4_K matmuls (Gemma 3) gave other low bits than the prompt's fresh decode (7 of 13
cuts leaving 3 to 7 rows differed; 73 of 73 leaving 9 or more were bit-identical)."""
ROW_REST = 2
"""The same, for weights that no extra CPU buffer repacked (Plan.for_weights): ggml computes each
row of their matmuls alone (vec_dot), or through llamafile's sgemm, which it takes for two rows
or more and not for one; so a rest of two rows or more is computed as in the fresh decode."""


@dataclass(frozen=True)
class Plan:
    """How a prompt is cut into llama_decode calls, and which of a slot's cells a later
    prompt may reuse, so that every answer is the one a fresh decode gives."""

    ubatch: int  # the context's n_ubatch: llama.cpp cuts a fresh prompt every ubatch tokens
    free_cuts: bool  # CPU: any cut on the align grid with chunks of TILE rows or more; GPU: the grid only
    align: int = ALIGN  # the grid a cut of a kept decode falls on
    short_rest: int = SHORT_REST  # the rows a short prompt decodes after a reused prefix, at least

    @classmethod
    def for_weights(cls, ubatch: int, gpu: bool, row_exact: bool) -> Plan:
        """The plan for a context: on a GPU the ubatch grid only; on a CPU whose matmuls
        compute each row alone (no weight repacked, x86: llama_backend.row_exact_weights), a cut
        anywhere, as llama-server's cache reuses; otherwise the repacked matmuls' grid."""
        if gpu:
            return cls(ubatch, free_cuts=False)
        if row_exact:
            return cls(ubatch, free_cuts=True, align=1, short_rest=ROW_REST)
        return cls(ubatch, free_cuts=True)

    def tiled_end(self, size: int) -> int:
        """Where the rows a fresh decode computes in chunks of TILE rows or more end: all of
        them, but a last ubatch shorter than TILE."""
        tail = size % self.ubatch
        return size - tail if 0 < tail < TILE else size

    def keep(self, size: int) -> int:
        """How many first rows of a decoded ``size``-token prompt a later prompt may reuse."""
        if self.free_cuts:
            if size < self.short_rest:  # a chunk that small went through other kernels
                return 0
            end = self.tiled_end(size) if size >= TILE else size  # a short prompt: its one chunk
            return end - end % self.align
        return size - size % self.ubatch

    def reusable(self, common: int, size: int, held: int) -> int:
        """Of ``common`` rows a ``size``-token prompt shares with the ``held`` rows a slot
        kept, how many it reuses. A prompt shorter than TILE is decoded fresh in one chunk of
        one-row attention (as its kept rows were, fewer than TILE of them): it reuses a prefix
        that leaves short_rest rows or more to decode in one chunk. A longer one reuses only
        rows decoded in the tiled path, as long as TILE rows or more are left."""
        if not self.free_cuts:
            return common - common % self.ubatch
        if (size < TILE) != (held < TILE):  # the kept rows went through the other path
            return 0
        reused = min(common, size - self.short_rest if size < TILE else self.tiled_end(size) - TILE)
        return max(0, reused - reused % self.align)

    def chunk_end(self, start: int, size: int) -> int:
        """Where the chunk of a ``size``-token prompt that starts at ``start`` ends."""
        if start % self.ubatch == 0:  # llama.cpp's own cut
            return min(start + self.ubatch, size)
        if size < TILE:  # the rest of a short prompt whose start was reused: one chunk
            return size
        end = self.tiled_end(size)  # start is a reused prefix's end (free_cuts), TILE or more before
        chunks = -(-(end - start) // self.ubatch)
        step = -(-(end - start) // chunks)  # even chunks of TILE rows or more, on the grid
        return min(start + step - step % self.align, end) if chunks > 1 else end

    def warm_span(self, held: int, total: int) -> tuple[int, int] | None:
        """The cells [start, end) to decode again so that more of a slot's ``total`` tokens
        are kept, ``held`` of them already; None when that would not add any. Rows kept from a
        short prompt (fewer than TILE) went through one-row attention: decoded again with the
        rest, in the tiled path, as the longer prompt of the next turn decodes them fresh."""
        if not self.free_cuts:
            return (
                (held, held + self.ubatch)
                if held % self.ubatch == 0 and total - held >= self.ubatch
                else None
            )
        end = total - total % self.align
        start = held if held >= TILE else 0
        if end - start > min(3 * TILE, self.ubatch):  # short decodes: the model stays quick to answer
            end = start + min(2 * TILE, self.ubatch - self.ubatch % self.align)
        if end <= held or end < TILE:
            return None
        start = min(start, end - TILE)
        return start - start % self.align, end


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
    prefilled: int = 0  # prompt tokens decoded so far (or found in the slot's cells)
    held: list[int] = field(default_factory=list)  # the tokens in its KV cells, in position order
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

    def __init__(
        self,
        ctx,
        vocab,
        n_batch: int,
        alias: str,
        logprob: Callable,
        slots: int,
        n_swa: int,
        reuse: bool,
        gpu: bool = False,
        row_exact: bool = False,
    ) -> None:
        import llama_cpp as C

        self.C, self.ctx, self.vocab, self.alias = C, ctx, vocab, alias
        self.n_batch, self.logprob = n_batch, logprob
        self.memory = C.llama_get_memory(ctx)
        self.batch = C.llama_batch_init(n_batch, 0, 1)
        self.buffer = ctypes.create_string_buffer(256)
        self.active: list[Sequence] = []
        self.peak = 0  # the most sequences decoded together so far
        self.slots, self.n_swa, self.reuse = slots, n_swa, reuse
        self.plan = Plan.for_weights(min(C.llama_n_ubatch(ctx), n_batch), gpu, row_exact)
        self.held: dict[int, list[int]] = {}  # free slot -> the tokens its KV cells still hold
        # free slot -> the tokens that followed them (the rest of its prompt, its answer), whose
        # KV is decoded again on the grid while the model is idle (warm)
        self.pending: dict[int, list[int]] = {}
        self.used: dict[int, int] = {}  # slot -> when it was last taken (the join count then)
        self.joins = 0
        self.reused = 0  # prompt tokens found in a slot instead of decoded, since the model loaded

    def close(self) -> None:
        self.C.llama_batch_free(self.batch)

    def free_slot(self, prompt: list[int]) -> int:
        """The free slot whose cells give ``prompt`` the most rows to reuse, as join reuses them
        (Plan.reusable); among equals, the one that loses the fewest kept rows, then the one
        holding the longest start of ``prompt``, then the one used longest ago (llama-server's
        order). Not simply the longest common start: a short request that shares only a chat's
        system prompt took the chat's slot, reused none of it (rows of another kernel path), and
        cost the chat's next turn its whole cache."""
        busy = {s.seq_id for s in self.active}
        free = [slot for slot in range(self.slots) if slot not in busy]

        def worth(slot: int) -> tuple[int, int, int, int]:
            held = self.held.get(slot, [])
            common = _common(held, prompt)
            reused = self._reusable(common, prompt, held)
            return reused, reused - len(held), common, -self.used.get(slot, -1)

        return max(free, key=worth)

    def _reusable(self, common: int, prompt: list[int], held: list[int]) -> int:
        """Of the ``common`` first tokens ``prompt`` shares with a slot's ``held`` cells, how
        many it reuses. At least the prompt's last token is decoded again: its logits start the
        answer."""
        return self.plan.reusable(min(common, len(prompt) - 1), len(prompt), len(held))

    def join(self, sequence: Sequence) -> None:
        """Start ``sequence`` in its slot, on what the slot's cells already hold of its prompt."""
        slot, prompt = sequence.seq_id, sequence.prompt
        self.joins += 1
        self.used[slot] = self.joins
        # A scored prompt needs the logits of every token: decoded whole.
        reuse = self.reuse and not sequence.request.params.score_prompt
        self.pending.pop(slot, None)
        held = self.held.pop(slot, [])
        common = self._reusable(_common(held, prompt), prompt, held) if reuse else 0
        if common > 0 and not self._window_kept(slot, len(prompt)):
            common = 0
        if common > 0 and self.C.llama_memory_seq_rm(self.memory, slot, common, -1):
            sequence.prefilled, sequence.held = common, prompt[:common]
            self.reused += common
        else:
            self.C.llama_memory_seq_rm(self.memory, slot, -1, -1)
        sequence.result.cached_tokens = sequence.prefilled
        self.active.append(sequence)
        self.peak = max(self.peak, len(self.active))

    def _window_kept(self, slot: int, size: int) -> bool:
        """Whether a kept prefix still gives what a fresh decode gives. A sliding-window cache
        (Gemma 3) frees cells that fall out of its window as it goes and reuses them, so past
        the window the cells' order, and the order attention sums them in, depends on what the
        slot decoded before: reused only while nothing was ever dropped and the new prompt
        stays inside the window."""
        pos_min = self.C.llama_memory_seq_pos_min(self.memory, slot)
        if pos_min < 0:
            return False
        return self.n_swa == 0 or (pos_min == 0 and size <= self.n_swa)

    def warm_pending(self) -> int | None:
        """A free slot with a block to warm, if any."""
        for slot, pending in self.pending.items():
            held = len(self.held[slot])
            if self.plan.warm_span(held, held + len(pending)) is not None:
                return slot
        return None

    def warm(self) -> bool:
        """Decode a chunk of a free slot's answer (and the prompt's last rows before it)
        again, alone, as a fresh prompt holding them would: the next turn of a chat then finds
        its last answer in the cache too, and the answer stays that of a fresh model. Run while
        nothing else waits; returns whether there was a chunk to decode."""
        slot = self.warm_pending()
        if slot is None:
            return False
        held, pending = self.held[slot], self.pending[slot]
        tokens = held + pending
        start, end = self.plan.warm_span(len(held), len(tokens)) or (0, 0)
        self.C.llama_memory_seq_rm(self.memory, slot, start, -1)
        batch = self.batch
        for n, token in enumerate(tokens[start:end]):
            batch.token[n], batch.pos[n], batch.n_seq_id[n] = token, start + n, 1
            batch.seq_id[n][0], batch.logits[n] = slot, False
        batch.n_tokens = end - start
        if self.C.llama_decode(self.ctx, batch) == 0:
            self.held[slot], self.pending[slot] = tokens[:end], tokens[end:]
        else:  # what it left in the cells is not known
            self.held.pop(slot), self.pending.pop(slot)
            self.C.llama_memory_seq_rm(self.memory, slot, -1, -1)
        return True

    def step(self) -> list[Sequence]:
        """Decode the answering sequences' tokens together, then prompt chunks, each in a
        llama_decode of its own, until the batch's worth of rows is spent; sample; returns the
        sequences that finished in this step."""
        # In slot order: with a KV cache of its own per sequence, llama.cpp puts in one ubatch
        # only sequences whose ids follow each other in the batch (0, 1, 2, ...; split_equal's
        # "sequential"), and computes each ubatch as a graph of its own, reading every weight
        # again. In join order, once slots were reused out of order, an 8-row step became up
        # to 8 graphs (8-row steps 32 ms in a first round of 8 streams, 42-55 ms in later ones).
        answering = sorted((s for s in self.active if s.prefilled == len(s.prompt)), key=lambda s: s.seq_id)
        if answering:
            n = 0
            for s in answering:  # one token each
                n = self._add(n, s, s.last_token, True)
                s.logits_row = n - 1
            if not self._decode(n):
                return self._leave()
            for s in answering:
                self._take(s, self.C.llama_sampler_sample(s.sampler, self.ctx, s.logits_row))
        budget = self.n_batch
        for s in self.active:
            while s.prefilled < len(s.prompt) and budget > 0 and not s.done:
                rows = self._prompt_chunk(s)
                if rows == 0:
                    return self._leave()
                budget -= rows
        for s in self.active:  # cancelled while its prompt was still going in
            if not s.done and cancelled(s.request):
                s.finish, s.done = "cancelled", True
        return self._leave()

    def _prompt_chunk(self, s: Sequence) -> int:
        """Decode the next chunk of ``s``'s prompt (Plan.chunk_end), alone.

        Alone, whatever else is running: how many rows a llama_decode holds changes the kernels
        ggml picks (flash attention's tiled path, matmul on one row or many), and so the low
        bits of the KV it writes. Cut by the plan, a prompt's KV is the one a fresh decode
        writes, whether its first chunks were decoded now or kept from an earlier request, and
        so is the answer. Returns the rows decoded (0: the decode failed)."""
        score = s.request.params.score_prompt
        end = self.plan.chunk_end(s.prefilled, len(s.prompt))
        s.prompt_rows.clear()
        n = 0
        for index in range(s.prefilled, end):
            last = index == len(s.prompt) - 1
            n = self._add(n, s, s.prompt[index], last or score)
            if score:
                s.prompt_rows.append((n - 1, index))
        s.prefilled = end
        if not self._decode(n):
            return 0
        self._score_prompt(s)
        if end == len(s.prompt):
            s.logits_row = n - 1
            if s.max_tokens == 0:  # the prompt scored, nothing to generate
                s.finish, s.done = "length", True
            else:
                self._take(s, self.C.llama_sampler_sample(s.sampler, self.ctx, s.logits_row))
        return n

    def _decode(self, n: int) -> bool:
        self.batch.n_tokens = n
        code = self.C.llama_decode(self.ctx, self.batch)
        if code == 0:
            return True
        error = ModelError(
            f"llama.cpp failed to decode on {self.alias} (code {code})",
            "retry; if it persists, reload the model with a larger --ctx or fewer parallel requests",
        )
        for s in self.active:
            s.request.error, s.done = error, True
        return False

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
        batch.token[n], batch.pos[n], batch.n_seq_id[n] = token, len(s.held), 1
        batch.seq_id[n][0], batch.logits[n] = s.seq_id, logits
        s.held.append(token)
        return n + 1

    def _take(self, s: Sequence, token: int) -> None:
        """What one sampled token does to its sequence: end it, or extend and stream its text."""
        C = self.C
        s.last_token = token  # sampled, decoded with the next step (or again when warmed)
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

    def _leave(self) -> list[Sequence]:
        finished = [s for s in self.active if s.done]
        self.active = [s for s in self.active if not s.done]
        for s in finished:
            if s.request.error is None and self.reuse:
                # Only the rows a later prompt may reuse (Plan.keep): an answer's tokens were
                # decoded one at a time, by other kernels.
                kept = min(s.prefilled, len(s.held), self.plan.keep(len(s.prompt)))
                if self.plan.free_cuts and len(s.prompt) >= TILE > kept:
                    # tiled rows (a prompt stopped early), too few to be told from a short
                    # prompt's one-row ones, which Plan.reusable tells by their number
                    kept = 0
                self.held[s.seq_id] = s.held[:kept]
                tail = s.held[kept:] + ([s.last_token] if s.last_token >= 0 else [])
                if self.n_swa == 0:  # a sliding window would have to drop cells on the way
                    self.pending[s.seq_id] = tail
                self.C.llama_memory_seq_rm(self.memory, s.seq_id, kept, -1)
            else:  # what a failed decode left in its cells is not known
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


def _common(held: list[int], prompt: list[int]) -> int:
    """How many first tokens ``held`` and ``prompt`` share."""
    count = 0
    for a, b in zip(held, prompt):
        if a != b:
            break
        count += 1
    return count


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
