"""An answering step is one llama.cpp graph, whatever order the slots were taken in.

With a KV cache of its own per sequence (kv_unified off, as LocalModel makes it), llama.cpp
puts into one ubatch only sequences whose ids follow each other in the batch (split_equal's
"sequential"), and computes every ubatch as a graph of its own, reading all the weights again.
The batcher puts its answering rows in slot order; in join order, once a prompt cache sent
requests to slots out of order, an 8-stream step became several graphs (8 streams through the
gateway fell from 175 to 105 tok/s over four rounds, bench/bench_latency.py).
"""

from __future__ import annotations

from local_models.batching import TILE
from local_models.llama_backend import LoadOptions, LocalModel
from local_models.types import GenerationParams

SMOLLM2 = "SmolLM2-135M-Instruct.Q4_1.gguf"
WORDS = ("Dragons", "Oceans", "Robots", "Cities")


def test_llama_cpp_computes_a_graph_per_run_of_consecutive_sequence_ids(fetched_models):
    """Pins llama.cpp's behaviour the batcher's order is for: counted by its eval callback,
    which is asked once about every node of every graph it computes."""
    import llama_cpp as C

    asked = [0]

    @C.ggml_backend_sched_eval_callback
    def count(_tensor, ask, _user_data):
        asked[0] += bool(ask)
        return False  # observe nothing: the graph runs as it would

    C.llama_backend_init()
    model = C.llama_model_load_from_file(
        str(fetched_models / SMOLLM2).encode(), C.llama_model_default_params()
    )
    params = C.llama_context_default_params()
    params.n_ctx, params.n_seq_max, params.kv_unified = 3 * 256, 3, False
    params.n_threads = params.n_threads_batch = 2
    params.flash_attn_type = C.LLAMA_FLASH_ATTN_TYPE_ENABLED
    params.cb_eval = count
    ctx = C.llama_init_from_model(model, params)
    batch = C.llama_batch_init(8, 0, 1)
    try:

        def nodes(rows: list[tuple[int, int, int]]) -> int:
            for i, (seq, pos, token) in enumerate(rows):
                batch.token[i], batch.pos[i], batch.n_seq_id[i] = token, pos, 1
                batch.seq_id[i][0], batch.logits[i] = seq, True
            batch.n_tokens = len(rows)
            asked[0] = 0
            assert C.llama_decode(ctx, batch) == 0
            return asked[0]

        graph = nodes([(0, 0, 100)])  # one row of one sequence: one graph
        assert graph > 0
        for seq in (1, 2):
            assert nodes([(seq, 0, 100 + seq)]) == graph
        assert nodes([(0, 1, 200), (1, 1, 201), (2, 1, 202)]) == graph  # in order: one graph
        assert nodes([(2, 2, 200), (1, 2, 201), (0, 2, 202)]) == 3 * graph  # reversed: three
        assert nodes([(0, 3, 200), (2, 3, 201)]) == 2 * graph  # a gap: two
    finally:
        C.llama_batch_free(batch)
        C.llama_free(ctx)
        C.llama_model_free(model)


def test_answering_rows_go_in_slot_order_when_the_cache_sent_requests_to_slots_out_of_order(fetched_models):
    model = LocalModel("smollm2", fetched_models / SMOLLM2, LoadOptions(n_ctx=512, n_threads=2, parallel=4))
    try:
        batcher = model._batcher
        joined: list[int] = []
        steps: list[list[int]] = []
        join, decode = batcher.join, batcher._decode

        def joining(sequence) -> None:
            joined.append(sequence.seq_id)
            join(sequence)

        def decoding(n: int) -> bool:
            steps.append([batcher.batch.seq_id[i][0] for i in range(n)])
            return decode(n)

        batcher.join, batcher._decode = joining, decoding  # on the owner thread, as it calls them
        prompts = [[{"role": "user", "content": f"{w}: name three things about them."}] for w in WORDS]
        params = GenerationParams(temperature=0.0, max_tokens=8)
        for stream in [model.chat(m, params) for m in prompts]:
            assert stream.result.finish_reason in ("stop", "length")
        assert joined == [0, 1, 2, 3]
        joined.clear()
        steps.clear()
        # The same prompts in the other order: each goes back to the slot that holds its start
        for stream in [model.chat(m, params) for m in reversed(prompts)]:
            assert stream.result.finish_reason in ("stop", "length")
        assert joined == [3, 2, 1, 0], "the premise: slots taken out of order"
        together = [seqs for seqs in steps if len(set(seqs)) > 1]
        assert together and max(len(seqs) for seqs in together) == 4
        assert all(seqs == sorted(seqs) for seqs in together), together
    finally:
        model.close()


def test_a_short_request_leaves_a_long_chats_slot_alone(fetched_models):
    """Two slots: a chat long enough for the tiled path, then a short request that starts the
    same way (the same system prompt) but can reuse none of the chat's rows. It goes to the
    other slot, and the chat's next turn still reads its start from the cache."""
    system = "You are the workbench's assistant. Answer plainly, in one or two sentences."
    model = LocalModel("smollm2", fetched_models / SMOLLM2, LoadOptions(n_ctx=1024, n_threads=2, parallel=2))
    try:
        params = GenerationParams(temperature=0.0, max_tokens=16)
        chat = [
            {"role": "system", "content": " ".join([system] * 10)},
            {"role": "user", "content": "What is a vector index?"},
        ]
        first = model.chat(chat, params).result
        assert first.input_tokens >= 2 * TILE
        short = model.chat(
            [{"role": "system", "content": system}, {"role": "user", "content": "Hi."}], params
        )
        assert short.result.input_tokens < TILE
        chat += [{"role": "assistant", "content": first.text}, {"role": "user", "content": "And a table?"}]
        assert model.chat(chat, params).result.cached_tokens >= TILE
    finally:
        model.close()
