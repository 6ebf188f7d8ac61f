"""The prompt cache on real llama.cpp: a slot keeps its prompt's KV, a request that starts the
same way reads only the rest, and every answer equals a fresh model's (cache off), token for
token, whatever came before: plain, grammar-constrained, tool-calling, cancelled and failed
requests, 8 sequences at once, slots evicted."""

from __future__ import annotations

import platform
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path

import pytest

from local_models.batching import ALIGN, TILE, Plan
from local_models.llama_backend import LoadOptions, LocalModel, row_exact_weights
from local_models.types import GenerationParams
from workbench.core.errors import ContextLengthExceeded

SMOLLM2 = "SmolLM2-135M-Instruct.Q4_1.gguf"
GEMMA = "gemma-3-270m-q4_k_m.gguf"
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
    plan = cached._batcher.plan
    assert hits[0] == 0 and all(h % plan.align == 0 for h in hits), hits
    for earlier, later in zip(answers, answers[1:]):
        # all the earlier prompt's rows the plan keeps, and, warmed, its answer's as well
        kept = plan.keep(earlier.input_tokens)
        assert later.cached_tokens >= plan.reusable(kept, later.input_tokens, kept), hits
    long_answers = [i for i, a in enumerate(answers[:-1]) if a.output_tokens >= TILE]
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
    assert shared > 2 * TILE
    # all of the instructions but the rows the new question needs to make a whole tile
    reachable = min(shared, answers[1].input_tokens - TILE)
    assert reachable - 2 * ALIGN <= answers[1].cached_tokens < answers[1].input_tokens, (
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
    assert _same(cached, fresh, messages).cached_tokens >= TILE


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


def test_answers_are_llama_cpp_pythons_fresh_ones(models):
    """Each answer, cached or not, is the one llama-cpp-python's own Llama gives the prompt
    decoded fresh (ubatches of 512, as its server and llama-server cut it): a chat whose
    prompts cross a ubatch, end a few tokens past one, and reuse their last turn."""
    import llama_cpp

    cached, fresh = models
    theirs = llama_cpp.Llama(
        str(cached.path), n_ctx=2048, flash_attn=True, n_threads=cached.n_threads, verbose=False
    )
    words = "river tea index vector lance duck green model cache steeped pressure bar".split()
    filler = theirs.tokenize(" ".join(words[(i * 7) % 12] for i in range(1200)).encode(), add_bos=False)
    tokens = theirs.tokenize(b"Notes:")
    checked = []
    for size in (300, 530, 700, 790, 1000):  # 1,000-token prompts at most (the fixture's n_ctx)
        tokens = tokens + filler[len(tokens) : size]
        ours = cached.complete(list(tokens), GREEDY).result
        theirs.reset()  # its own prefix cache off: a fresh decode
        expected = theirs.create_completion(list(tokens), temperature=0.0, max_tokens=GREEDY.max_tokens)
        assert ours.text == expected["choices"][0]["text"], (len(tokens), ours.cached_tokens)
        checked.append((len(tokens), ours.cached_tokens))
        tokens = tokens + theirs.tokenize(ours.text.encode(), add_bos=False)
        _warmed(cached)
    assert any(size > 512 and size % 512 < TILE for size, _ in checked), checked
    assert sum(hit > 0 for _, hit in checked) >= 3, checked
    theirs.close()


@pytest.mark.parametrize("name", [SMOLLM2, GEMMA])
def test_short_prompts_reuse_their_shared_start_and_answer_as_llama_cpp_python(name, fetched_models):
    """Prompts shorter than TILE (an eval's cases, an agent's steps) that start alike reuse
    that start, and each answer is still the one llama-cpp-python's Llama gives the prompt
    decoded fresh: SmolLM2's Q4_1, and Gemma 3's repacked Q4_K, whose matmuls are the ones
    that need SHORT_REST rows (SmolLM2's weights stay unpacked: ROW_REST)."""
    import llama_cpp

    cached = LocalModel("short", fetched_models / name, LoadOptions(n_ctx=512, parallel=2))
    fresh = LocalModel("fresh", fetched_models / name, LoadOptions(n_ctx=512, parallel=1, prompt_cache=False))
    scored = replace(GREEDY, top_logprobs=1)
    theirs = llama_cpp.Llama(
        str(fetched_models / name), n_ctx=512, flash_attn=True, n_threads=cached.n_threads, verbose=False
    )
    shared = theirs.tokenize(
        b"You answer questions about the notes in one word, plainly, and never make up a word. Question:"
    )
    words = "river tea index vector lance duck green model cache steeped pressure bar sea".split()
    hits = []
    plan = cached._batcher.plan
    try:
        for i in range(12):
            question = " ".join(words[(i * 5 + k) % len(words)] for k in range(3 + (i * 7) % 26))
            tokens = shared + theirs.tokenize(f" {question}?".encode(), add_bos=False)
            tokens = tokens[: TILE - 1]
            theirs.reset()  # its own prefix cache off: a fresh decode
            expected = theirs.create_completion(list(tokens), temperature=0.0, max_tokens=GREEDY.max_tokens)
            # the same bits, not only the same tokens: every log-probability of the answer
            exact = [e["logprob"] for e in fresh.complete(list(tokens), scored).result.token_logprobs]
            for _ in range(2):  # asked again, it reuses all but its last short_rest rows or so
                ours = cached.complete(list(tokens), scored).result
                assert ours.text == expected["choices"][0]["text"], (i, len(tokens), ours.cached_tokens)
                assert [e["logprob"] for e in ours.token_logprobs] == exact, (i, ours.cached_tokens)
                hits.append((len(tokens), ours.cached_tokens))
    finally:
        cached.close()
        fresh.close()
        theirs.close()
    assert all(hit % plan.align == 0 and (hit == 0 or size - hit >= plan.short_rest) for size, hit in hits), (
        hits
    )
    assert sum(hit > 0 for _, hit in hits) >= 16 and max(hit for _, hit in hits) >= 32, hits
    if plan.align == 1:  # cut anywhere: all the shared start, and more when questions share words
        assert max(hit for _, hit in hits) >= len(shared), hits


def _cpu_flags() -> set[str]:
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return set()
    return {flag for line in text.splitlines() if line.startswith("flags") for flag in line.split()[2:]}


@pytest.mark.skipif(
    platform.machine() not in ("x86_64", "AMD64"), reason="row-exact cuts are taken on x86 only"
)
def test_the_load_tells_which_weights_each_row_is_computed_alone_for(fetched_models):
    """Pins what row_exact_weights reads in llama.cpp's load log: SmolLM2's Q4_1 weights stay in
    a plain CPU buffer (any cut), Gemma 3's Q4_K go to CPU_REPACK on an AVX2 CPU (the grid)."""
    assert not row_exact_weights([])  # no report read: the grid
    mapped = "load_tensors:   CPU_Mapped model buffer size =    92.10 MiB"
    assert row_exact_weights([mapped])
    assert not row_exact_weights([mapped, "load_tensors:   CPU_REPACK model buffer size =    12.66 MiB"])
    plans = {}
    for name in (SMOLLM2, GEMMA):
        model = LocalModel("load", fetched_models / name, LoadOptions(n_ctx=256, parallel=1))
        try:
            model.prompt_tokens([{"role": "user", "content": "hi"}])
            plans[name] = model._batcher.plan
        finally:
            model.close()
    assert plans[SMOLLM2] == Plan.for_weights(plans[SMOLLM2].ubatch, gpu=False, row_exact=True)
    if "avx2" not in _cpu_flags():
        pytest.skip("ggml repacks Q4_K for AVX2: this CPU has none, so Gemma's plan tells nothing")
    assert plans[GEMMA] == Plan(plans[GEMMA].ubatch, free_cuts=True), plans[GEMMA]


def test_off_means_nothing_is_kept(models):
    _, fresh = models
    messages = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": "Hello."}]
    first = fresh.chat(messages, GREEDY).result
    assert first.cached_tokens == 0
    assert fresh.chat(messages, GREEDY).result.cached_tokens == 0 and fresh.reused_tokens == 0


def _rows(plan: Plan, size: int, start: int = 0) -> list[tuple[bool, bool, bool]]:
    """How a decode from ``start`` computes each row of a ``size``-token prompt: in a chunk of
    TILE rows or more (flash attention's tiled path), in the last incomplete group of 8 of its
    chunk (the repacked matmul's leftover rows; weights that no buffer repacked have none), and
    in a chunk of fewer than SHORT_REST rows (where Gemma's Q4_K matmuls gave other bits; for
    row-exact weights, fewer than ROW_REST: one row, which llamafile's sgemm leaves to vec_dot);
    asserts each chunk fits a ubatch."""
    rows = []
    while start < size:
        end = plan.chunk_end(start, size)
        assert start < end <= start + plan.ubatch, (size, start, end)
        leftover = end - (end - start) % 8 if plan.align > 1 else end
        small = end - start < plan.short_rest
        rows += [(end - start >= TILE, row >= leftover, small) for row in range(start, end)]
        start = end
    return rows


PLANS = [Plan(512, True), Plan(128, True), Plan(128, False), Plan.for_weights(512, False, True)]
PLANS += [Plan.for_weights(128, False, True)]


@pytest.mark.parametrize("plan", PLANS, ids=str)
def test_a_reused_prefix_is_computed_as_a_fresh_decode_computes_it(plan):
    """The rule behind the exactness above, over pairs of prompt sizes past several ubatches:
    a fresh decode is cut where llama.cpp cuts it; every row of a prompt that reuses a kept
    prefix, kept or decoded, goes through the kernels a fresh decode puts it through; so does
    every row an idle model decodes again (warm_span)."""
    for old in range(1, 1300, 3):
        fresh_old = _rows(plan, old)
        assert [end for end in _ends(plan, old)] == [
            min(e, old) for e in range(plan.ubatch, old + plan.ubatch, plan.ubatch)
        ]
        kept = plan.keep(old)
        # kept: rows of complete groups, all of the tiled path, or all of one-row attention
        # when the prompt was short (a slot tells them apart by their number)
        assert not any(leftover for _, leftover, _ in fresh_old[:kept]) or not plan.free_cuts
        assert {tiled for tiled, _, _ in fresh_old[:kept]} <= {kept >= TILE} or not plan.free_cuts
        for new in [*range(2, 1300, 11), *range(2, TILE)]:
            fresh = _rows(plan, new)
            for common in {min(kept, new - 1), min(kept, new - 1) // 2, min(kept, new - 1) - 5}:
                reused = plan.reusable(max(common, 0), new, kept)
                assert 0 <= reused <= max(common, 0) and reused < new
                cached = fresh_old[:reused] + _rows(plan, new, reused)
                assert cached == fresh, (old, new, common, reused)
        if plan.free_cuts:
            for answer in (1, 15, 16, 63, 64, 200, 700):
                span = plan.warm_span(kept, kept + answer)
                if span is not None:
                    start, end = span
                    assert start % plan.align == 0 and end % plan.align == 0
                    assert TILE <= end - start <= plan.ubatch
                    assert start <= kept < end <= kept + answer


def _ends(plan: Plan, size: int) -> list[int]:
    ends, start = [], 0
    while start < size:
        start = plan.chunk_end(start, size)
        ends.append(start)
    return ends
