"""The prompt cache on real llama.cpp: a slot keeps its prompt's KV, a request that starts the
same way reads only the rest, and every answer equals a fresh model's (cache off), token for
token, whatever came before: plain, grammar-constrained, tool-calling, cancelled and failed
requests, 8 sequences at once, slots evicted."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace

import pytest

from local_models.batching import CHUNK, PIECE, kept_end, plan_end, reusable
from local_models.llama_backend import LoadOptions, LocalModel
from local_models.types import GenerationParams
from workbench.core.errors import ContextLengthExceeded

SMOLLM2 = "SmolLM2-135M-Instruct.Q4_1.gguf"
GREEDY = GenerationParams(temperature=0.0, max_tokens=24)
SAMPLED = GenerationParams(temperature=0.8, max_tokens=24, seed=11)
SYSTEM = (
    "You are the workbench's assistant. Answer in one or two short sentences, plainly, without "
    "lists. When you do not know, say so. Prefer the user's own words. Never invent a source. "
    "The user works offline on a laptop, with small local models and a vector index."
)
CALL = {  # the grammar a forced tool call decodes under (ModelManager's grammar path)
    "type": "object",
    "properties": {
        "name": {"const": "get_weather"},
        "arguments": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
    "required": ["name", "arguments"],
}


@pytest.fixture(scope="module")
def models(fetched_models):
    path = fetched_models / SMOLLM2
    cached = LocalModel("cached", path, LoadOptions(n_ctx=1024, parallel=8))
    fresh = LocalModel("fresh", path, LoadOptions(n_ctx=1024, parallel=1, prompt_cache=False))
    yield cached, fresh
    cached.close()
    fresh.close()


def _same(cached: LocalModel, fresh: LocalModel, messages, params=GREEDY):
    ours = cached.chat(list(messages), params).result
    theirs = fresh.chat(list(messages), params).result
    assert ours.text == theirs.text, (ours.cached_tokens, messages[-1])
    assert theirs.cached_tokens == 0
    return ours


def _warmed(model: LocalModel) -> None:
    """Wait until the idle model has decoded its slots' answers again (Batcher.warm)."""
    deadline = time.monotonic() + 30
    while model._batcher.warm_pending() is not None:
        assert time.monotonic() < deadline, "the idle model never warmed its cache"
        time.sleep(0.05)


def test_a_chat_reads_only_its_new_turn_and_answers_as_a_fresh_model(models):
    cached, fresh = models
    before = cached.reused_tokens
    conversation = [{"role": "system", "content": SYSTEM * 3}]
    turns = [
        ("What is a vector index?", replace(GREEDY, max_tokens=150)),
        ("Give the weather tool a call for Paris.", replace(GREEDY, json_schema=CALL, max_tokens=40)),
        ("Now say it in French.", replace(SAMPLED, max_tokens=150)),
        ("What is 17 times 3?", GREEDY),
        ("Write two lines about rivers.", replace(SAMPLED, max_tokens=150)),
        ("What did I ask first?", GREEDY),
    ]
    answers = []
    for question, params in turns:
        conversation.append({"role": "user", "content": question})
        answer = _same(cached, fresh, conversation, params)
        answers.append(answer)
        conversation.append({"role": "assistant", "content": answer.text})
        _warmed(cached)
    hits = [a.cached_tokens for a in answers]
    assert hits[0] == 0 and all(h % PIECE == 0 for h in hits), hits
    for earlier, later in zip(answers, answers[1:]):
        # all of the earlier prompt's whole chunks, and, warmed, its answer's as well
        assert later.cached_tokens >= earlier.input_tokens - earlier.input_tokens % CHUNK, hits
    long_answers = [i for i, a in enumerate(answers[:-1]) if a.output_tokens >= CHUNK]
    assert long_answers, [a.output_tokens for a in answers]
    assert any(hits[i + 1] > answers[i].input_tokens for i in long_answers), hits
    assert cached.reused_tokens - before == sum(hits)


def test_a_shared_instruction_is_read_once_for_different_questions(models):
    cached, fresh = models
    context = "\n".join(
        f"Passage {i}: the workbench keeps version {i} of each collection." for i in range(40)
    )
    system = {"role": "system", "content": SYSTEM + "\n" + context}
    answers = []
    for question in ("Which version comes first?", "How many versions are kept?"):
        answers.append(_same(cached, fresh, [system, {"role": "user", "content": question}]))
    shared = cached.prompt_tokens([system])
    sizes = {a.input_tokens // CHUNK for a in answers}
    assert len(sizes) == 1, "both prompts end in the same block: its pieces are reused"
    assert shared - PIECE <= answers[1].cached_tokens < answers[1].input_tokens, (
        answers[1].cached_tokens,
        shared,
    )


def test_after_cancelled_and_failed_requests(models):
    cached, fresh = models
    messages = [
        {"role": "system", "content": SYSTEM * 3},
        {"role": "user", "content": "Tell a long story about a lighthouse."},
    ]
    stop = threading.Event()
    stream = cached.chat(messages, replace(GREEDY, max_tokens=200), stop=stop)
    for _ in stream:
        stop.set()
    assert stream.result.finish_reason == "cancelled"
    with pytest.raises(ContextLengthExceeded):  # refused: nothing it touched may change an answer
        _ = cached.chat([{"role": "user", "content": "word " * 5000}], GREEDY).result
    with pytest.raises(Exception, match="vocabulary"):
        _ = cached.complete([10**9], GREEDY).result
    messages.append({"role": "user", "content": "Make it short instead."})
    assert _same(cached, fresh, messages).cached_tokens >= CHUNK


def test_eight_at_once_and_slots_evicted(models):
    cached, fresh = models
    conversations = [
        [
            {"role": "system", "content": SYSTEM},
            {"role": "user", "content": f"Name {n} animals that live in the sea."},
        ]
        for n in range(2, 14)
    ]  # 12 conversations on 8 slots: some slots are taken over by another conversation
    with ThreadPoolExecutor(8) as pool:
        for _ in range(2):
            answers = list(pool.map(lambda m: cached.chat(list(m), GREEDY).result, conversations))
            for messages, answer in zip(conversations, answers):
                assert answer.text == fresh.chat(list(messages), GREEDY).result.text, messages[-1]
                messages += [
                    {"role": "assistant", "content": answer.text},
                    {"role": "user", "content": "And one more?"},
                ]
    assert cached.peak_parallel == 8


def test_off_means_nothing_is_kept(models):
    _, fresh = models
    messages = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": "Hello."}]
    first = fresh.chat(messages, GREEDY).result
    assert first.cached_tokens == 0
    assert fresh.chat(messages, GREEDY).result.cached_tokens == 0 and fresh.reused_tokens == 0


def _cuts(size: int, start: int = 0) -> list[tuple[int, int]]:
    cuts = []
    while start < size:
        end = plan_end(start, size)
        cuts.append((start, end))
        start = end
    return cuts


def test_a_reused_prefix_was_cut_as_the_new_prompt_cuts_it():
    """The rule behind the exactness above, over every pair of prompt sizes up to 700: what a
    slot keeps of one prompt, and reuses for another, is the same chunks the other's own
    decode would make, and the rest of it is cut on from there as a fresh decode would."""
    for old in range(1, 700):
        kept = kept_end(old)
        held_cuts = [c for c in _cuts(old) if c[1] <= kept]
        assert sum(e - s for s, e in held_cuts) == kept
        for new in range(2, 700, 7):
            for common in {min(kept, new - 1), min(kept, new - 1) // 2}:
                reused = reusable(kept, common, new)
                assert 0 <= reused <= common
                fresh = _cuts(new)
                assert [c for c in held_cuts if c[1] <= reused] == [c for c in fresh if c[1] <= reused]
                assert _cuts(new, reused) == [c for c in fresh if c[0] >= reused], (old, new, common)
