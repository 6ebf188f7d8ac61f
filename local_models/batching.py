"""Continuous batching: several answers decoded together in one llama.cpp context.

Each request gets a sequence id and KV cells of its own in one context, as llama-server's
``-np N -cb`` does. Every step puts the last sampled token of every answering sequence through
one ``llama_decode``, then as much of the waiting prompts as a batch has room for, in chunks.
Each sequence samples from its own row of logits with its own sampler chain (temperature,
top-p, seed, grammar), so what one request asks never changes another's tokens. New requests
join between steps; a finished or cancelled one leaves and frees its slot at once.

A free slot keeps the KV cells of its last prompt (llama-server's prompt cache): a new request
takes the free slot whose cells hold the longest start of its prompt and decodes only the rest,
so a chat's next turn reads little more than the new turn and a template's fixed instructions
are read once. What a kept prefix gives equals what decoding it again gives, bit for bit
(tests/test_prompt_cache.py checks the tokens against a fresh model after every kind of
request). llama-server's cache does not promise that ("logits are not guaranteed to be
bit-for-bit identical for different batch sizes"), and neither did this cache's first version:
3 of 7 answers of a chat differed. The cause: ggml computes a row differently depending on how
many rows its decode holds (one generated token, a 2-row or a 400-row prompt chunk), so the KV
of a prefix decoded in other pieces, or of an answer decoded a token at a time, differs in its
low bits and, at temperature 0, sometimes in the next token. So a prompt is decoded alone, cut
by a fixed plan (plan_end: blocks of CHUNK tokens, then PIECE-token pieces), and a slot keeps
only what a later prompt's own plan would cut the same way: its prompt's blocks and pieces at
once, and its answer once the idle model has decoded it again as blocks (Batcher.warm), as a
fresh prompt holding it would. A chat's next turn then reads its new turn, the bits of block on
either side, and nothing else; the same instructions before another question are read once.
A model with a sliding-window cache (Gemma 3) reuses a prefix only while the prompt fits in its
window.
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
CHUNK = 128
"""A prompt is decoded in blocks of this many tokens, each alone (Batcher._prompt_chunk says
why); its last, incomplete block in pieces of PIECE tokens, and what is left after those alone.
A slot's cache keeps whole blocks, and whole pieces of an incomplete block, which a next prompt
can use while that block is incomplete in it as well (the same instructions before another
question). Smaller blocks decode prompts slower (64: 14% on a 1,800-token prompt); a cached
prefix ends up to a block (or piece) before the shared text does."""
PIECE = 16


def plan_end(start: int, size: int) -> int:
    """Where the chunk of a ``size``-token prompt that begins at ``start`` ends: a function of
    the position and the prompt's size alone, so that a fresh decode and a cached one cut the
    prompt the same way."""
    blocks = size - size % CHUNK
    if start < blocks:
        return start - start % CHUNK + CHUNK
    pieces = blocks + (size - blocks) // PIECE * PIECE
    return start + PIECE if start < pieces else size


def kept_end(size: int) -> int:
    """How much of a fully decoded ``size``-token prompt a slot keeps: its blocks and pieces."""
    blocks = size - size % CHUNK
    return blocks + (size - blocks) // PIECE * PIECE


def reusable(held: int, common: int, size: int) -> int:
    """Of ``common`` tokens that ``held`` kept ones share with a ``size``-token prompt, how many
    were cut as that prompt's own decode would cut them."""
    blocks = held - held % CHUNK  # held past its last whole block: pieces of an incomplete one
    if common <= blocks or size >= blocks + CHUNK:  # that block is whole in the new prompt
        return min(common, blocks) - min(common, blocks) % CHUNK
    return common - (common - blocks) % PIECE


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
        self, ctx, vocab, n_batch: int, alias: str, logprob: Callable, slots: int, n_swa: int, reuse: bool
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
        """The free slot whose cells hold the longest start of ``prompt``; with none, the one
        used longest ago, so the caches of the others last (llama-server picks the same way)."""
        busy = {s.seq_id for s in self.active}
        free = [slot for slot in range(self.slots) if slot not in busy]
        return max(
            free, key=lambda slot: (_common(self.held.get(slot, []), prompt), -self.used.get(slot, -1))
        )

    def join(self, sequence: Sequence) -> None:
        """Start ``sequence`` in its slot, on what the slot's cells already hold of its prompt."""
        slot, prompt = sequence.seq_id, sequence.prompt
        self.joins += 1
        self.used[slot] = self.joins
        # At least the prompt's last token is decoded again: its logits start the answer. A
        # scored prompt needs the logits of every token: decoded whole.
        reuse = self.reuse and not sequence.request.params.score_prompt
        self.pending.pop(slot, None)
        held = self.held.pop(slot, [])
        common = min(_common(held, prompt), len(prompt) - 1) if reuse else 0
        common = reusable(len(held), common, len(prompt))
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
            held = self.held[slot]
            if len(held) % CHUNK + len(pending) >= CHUNK:
                return slot
        return None

    def warm(self) -> bool:
        """Decode one block of a free slot's answer (with the prompt's pieces before it) again,
        alone, as a fresh prompt holding them would: the next turn of a chat then finds its
        last answer in the cache too, and the answer stays that of a fresh model. Run while
        nothing else waits; returns whether there was a block to decode."""
        slot = self.warm_pending()
        if slot is None:
            return False
        held, pending = self.held[slot], self.pending[slot]
        start = len(held) - len(held) % CHUNK
        tokens = held + pending
        self.C.llama_memory_seq_rm(self.memory, slot, start, -1)  # the pieces, cut otherwise
        batch = self.batch
        for n, token in enumerate(tokens[start : start + CHUNK]):
            batch.token[n], batch.pos[n], batch.n_seq_id[n] = token, start + n, 1
            batch.seq_id[n][0], batch.logits[n] = slot, False
        batch.n_tokens = CHUNK
        if self.C.llama_decode(self.ctx, batch) == 0:
            self.held[slot], self.pending[slot] = tokens[: start + CHUNK], tokens[start + CHUNK :]
        else:  # what it left in the cells is not known
            self.held.pop(slot), self.pending.pop(slot)
            self.C.llama_memory_seq_rm(self.memory, slot, -1, -1)
        return True

    def step(self) -> list[Sequence]:
        """Decode the answering sequences' tokens together, then prompt chunks, each in a
        llama_decode of its own, until the batch's worth of rows is spent; sample; returns the
        sequences that finished in this step."""
        answering = [s for s in self.active if s.prefilled == len(s.prompt)]
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
        """Decode the next chunk of ``s``'s prompt (plan_end), alone.

        Alone and on a fixed grid, whatever else is running: how many rows a llama_decode holds
        changes the kernels ggml picks (flash attention's tiled path, matmul on one row or many),
        and so the low bits of the KV it writes. On the grid, a prompt's KV is the same whether
        its first chunks were decoded now or kept from an earlier request, and so is the answer.
        Returns the rows decoded (0: the decode failed)."""
        score = s.request.params.score_prompt
        end = plan_end(s.prefilled, len(s.prompt))
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
                # Only the prompt's blocks and pieces: an answer's tokens were decoded one at a
                # time (other kernels), the prompt's last bit will be cut otherwise next time.
                kept = min(s.prefilled, len(s.held), kept_end(len(s.prompt)))
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
