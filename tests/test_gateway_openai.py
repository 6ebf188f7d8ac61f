"""The OpenAI surface of `workbench serve` beyond plain chat (tests/test_server.py), as the
official SDK uses it against the gateway on loopback with SmolLM2: the Responses API (plain,
streamed, JSON schema, stored and continued), legacy completions with echo and logprobs (checked
against llama.cpp's own logits through llama-cpp-python), n, logprobs and logit_bias on chat,
models.retrieve, and every refusal in OpenAI's error shape, naming its parameter."""

from __future__ import annotations

import json
import time

import httpx
import jsonschema
import numpy as np
import openai
import pytest

from tests.test_server import gateway, metric  # noqa: F401 - the fixture
from workbench.services import Service

SMOLLM2 = "SmolLM2-135M-Instruct.Q4_1.gguf"


@pytest.fixture
def client(gateway):  # noqa: F811 - the fixture imported above
    return openai.OpenAI(base_url=f"{gateway}/v1", api_key="unused", max_retries=0)


@pytest.fixture(scope="module")
def reference(fetched_models):
    """llama.cpp through llama-cpp-python's own high-level API, every position's logits kept
    (the same flash attention as the gateway's context)."""
    import llama_cpp

    llm = llama_cpp.Llama(
        str(fetched_models / SMOLLM2), n_ctx=1024, logits_all=True, flash_attn=True, verbose=False
    )
    yield llm
    llm.close()


def log_softmax(row: np.ndarray) -> np.ndarray:
    row = row.astype(np.float64)
    peak = row.max()
    return row - peak - np.log(np.exp(row - peak).sum())


def test_responses_api(client, gateway, model_workspace):  # noqa: F811
    instructions = "Answer in one short sentence."
    question = "What colour is the sky?"
    first = client.responses.create(
        model="smollm2", instructions=instructions, input=question, temperature=0, max_output_tokens=40
    )
    # The same answer as a chat with the instructions as its system message, in process.
    service = Service(model_workspace.root)
    messages = [{"role": "system", "content": instructions}, {"role": "user", "content": question}]
    chat = service.chat("smollm2", messages, {"temperature": 0, "max_tokens": 40})
    assert first.output_text == chat.text and first.usage.output_tokens == chat.output_tokens
    assert first.status == ("incomplete" if chat.finish_reason == "length" else "completed")

    # Streamed: the event sequence the SDK parses, the deltas adding up to the final text.
    events = list(
        client.responses.create(
            model="smollm2",
            instructions=instructions,
            input=question,
            temperature=0,
            max_output_tokens=40,
            stream=True,
        )
    )
    kinds = [e.type for e in events]
    assert kinds[:4] == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.content_part.added",
    ]
    assert kinds[-4:-1] == [
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
    ]
    assert kinds[-1] in ("response.completed", "response.incomplete")
    deltas = "".join(e.delta for e in events if e.type == "response.output_text.delta")
    assert deltas == events[-1].response.output_text == first.output_text
    assert [e.sequence_number for e in events] == list(range(len(events)))

    # Going on from a stored response: the model reads the first turn again.
    second = client.responses.create(
        model="smollm2",
        input="And at night?",
        previous_response_id=first.id,
        temperature=0,
        max_output_tokens=24,
    )
    history = [
        {"role": "user", "content": question},
        {"role": "assistant", "content": first.output_text},
        {"role": "user", "content": "And at night?"},
    ]  # instructions are not carried over, as OpenAI's are not
    expected = service.chat("smollm2", history, {"temperature": 0, "max_tokens": 24})
    service.close()
    assert second.output_text == expected.text and second.usage.input_tokens == expected.input_tokens

    # JSON schema output.
    schema = {"type": "object", "properties": {"colour": {"type": "string"}}, "required": ["colour"]}
    shaped = client.responses.create(
        model="smollm2",
        input=[
            {"role": "user", "content": [{"type": "input_text", "text": "The colour of grass, as JSON."}]}
        ],
        text={"format": {"type": "json_schema", "name": "colour", "schema": schema}},
        temperature=0,
        max_output_tokens=40,
    )
    jsonschema.validate(json.loads(shaped.output_text), schema)

    # Retrieved, deleted; one not stored is not kept.
    assert client.responses.retrieve(first.id).output_text == first.output_text
    client.responses.delete(first.id)
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve(first.id)
    with pytest.raises(openai.NotFoundError) as gone:
        client.responses.create(model="smollm2", input="x", previous_response_id=first.id)
    assert gone.value.param == "previous_response_id"
    unstored = client.responses.create(model="smollm2", input="Hi", store=False, max_output_tokens=4)
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve(unstored.id)
    stored = list((model_workspace.root / "responses").iterdir())
    assert stored and all(p.stat().st_mode & 0o077 == 0 for p in stored), "readable by the user alone"

    with pytest.raises(openai.BadRequestError) as tools:  # function tools only (tests/test_gateway_tools.py)
        client.responses.create(model="smollm2", input="x", tools=[{"type": "web_search"}])
    assert tools.value.param == "tools.0.type"


def test_completions_score_a_prompt_as_llama_cpp_does(client, reference):
    prompt = "The capital of France is Paris, and the capital of Italy is"
    scored = client.completions.create(model="smollm2", prompt=prompt, max_tokens=0, echo=True, logprobs=3)
    choice = scored.choices[0]
    assert choice.text == prompt and scored.usage.completion_tokens == 0
    tokens = reference.tokenize(prompt.encode(), add_bos=True, special=True)
    reference.reset()
    reference.eval(tokens)
    expected = [log_softmax(reference.scores[i])[tokens[i + 1]] for i in range(len(tokens) - 1)]
    logprobs = choice.logprobs
    assert "".join(logprobs.tokens) == prompt and logprobs.text_offset[1] == len(logprobs.tokens[0])
    assert logprobs.token_logprobs[0] is None  # nothing before the first token (no BOS here)
    assert np.allclose(logprobs.token_logprobs[1:], expected, atol=2e-3)
    for top, position in zip(logprobs.top_logprobs[1:], range(len(tokens) - 1)):
        best = np.argsort(-log_softmax(reference.scores[position]))[:3]
        assert len(top) == 3 and top[reference.detokenize([int(best[0])]).decode()] == pytest.approx(
            log_softmax(reference.scores[position])[best[0]], abs=2e-3
        )

    # A continuation at temperature 0: llama-cpp-python's greedy text, and its tokens' logprobs.
    continued = client.completions.create(
        model="smollm2", prompt=prompt, max_tokens=8, temperature=0, logprobs=1
    )
    theirs = reference.create_completion(prompt, max_tokens=8, temperature=0)["choices"][0]["text"]
    assert continued.choices[0].text == theirs
    assert "".join(continued.choices[0].logprobs.tokens) == theirs

    # Several prompts, n each: indices run prompt by prompt.
    many = client.completions.create(
        model="smollm2", prompt=["Red, green,", "One, two,"], max_tokens=3, n=2, seed=7
    )
    assert [c.index for c in many.choices] == [0, 1, 2, 3]
    with pytest.raises(openai.BadRequestError) as zero:
        client.completions.create(model="smollm2", prompt="x", max_tokens=0)
    assert zero.value.param == "max_tokens"


def test_chat_n_logprobs_and_logit_bias(client, reference):
    messages = [{"role": "user", "content": "Name three colours."}]
    greedy = client.chat.completions.create(
        model="smollm2", messages=messages, max_tokens=8, temperature=0, logprobs=True, top_logprobs=2
    )
    theirs = reference.create_chat_completion(
        messages, max_tokens=8, temperature=0, logprobs=True, top_logprobs=2
    )["choices"][0]
    assert greedy.choices[0].message.content == theirs["message"]["content"]
    ours = greedy.choices[0].logprobs.content
    assert [t.token for t in ours] == [t["token"] for t in theirs["logprobs"]["content"]]
    assert np.allclose(
        [t.logprob for t in ours], [t["logprob"] for t in theirs["logprobs"]["content"]], atol=2e-3
    )
    assert all(
        len(t.top_logprobs) == 2 and t.top_logprobs[0].logprob >= t.top_logprobs[1].logprob for t in ours
    )

    two = client.chat.completions.create(
        model="smollm2", messages=messages, max_tokens=8, n=2, temperature=1.0, seed=3
    )
    assert [c.index for c in two.choices] == [0, 1]
    same = client.chat.completions.create(
        model="smollm2", messages=messages, max_tokens=8, n=2, temperature=0
    )
    assert [c.message.content for c in same.choices] == [greedy.choices[0].message.content] * 2
    assert same.usage.prompt_tokens == greedy.usage.prompt_tokens, "the prompt is counted once"
    assert same.usage.completion_tokens == 2 * greedy.usage.completion_tokens, "both answers are counted"
    assert two.choices[0].message.content != two.choices[1].message.content, "n answers, not n copies"
    streamed = client.chat.completions.create(
        model="smollm2", messages=messages, max_tokens=8, n=2, temperature=0, stream=True
    )
    texts = ["", ""]
    for chunk in streamed:
        for choice in chunk.choices:
            texts[choice.index] += choice.delta.content or ""
    assert texts == [greedy.choices[0].message.content] * 2

    # logit_bias: banning the greedy answer's first token changes it.
    first_token = reference.tokenize(ours[0].token.encode(), add_bos=False, special=False)[0]
    banned = client.chat.completions.create(
        model="smollm2", messages=messages, max_tokens=8, temperature=0, logit_bias={str(first_token): -100}
    )
    assert not banned.choices[0].message.content.startswith(ours[0].token)
    for bad, param in (
        ({"logit_bias": {"99999999": 5}}, "logit_bias"),
        ({"logit_bias": {"12": 500}}, "logit_bias"),
        ({"logprobs": True, "stream": True}, "logprobs"),
        ({"tool_choice": "required"}, "tool_choice"),  # without tools
        ({"n": 9}, "n"),
        ({"temperature": "hot"}, "temperature"),
        ({"presence_penalty": 3}, "presence_penalty"),
    ):
        with pytest.raises(openai.BadRequestError) as refused:
            client.chat.completions.create(model="smollm2", messages=messages, max_tokens=4, **bad)
        assert refused.value.param == param, bad
    plain, penalised = (
        client.chat.completions.create(
            model="smollm2", messages=messages, max_tokens=24, temperature=0, frequency_penalty=penalty
        )
        .choices[0]
        .message.content
        for penalty in (0.0, 2.0)
    )
    assert penalised != plain, "honoured (llama.cpp's penalties sampler), not ignored"
    developer = client.chat.completions.create(
        model="smollm2", messages=[{"role": "developer", "content": "Be brief."}, *messages], max_tokens=4
    )
    assert developer.choices[0].message.content


def test_errors_as_openai_gives_them(gateway, model_workspace):  # noqa: F811
    retrying = openai.OpenAI(base_url=f"{gateway}/v1", api_key="unused")  # the SDK's default 2 retries
    too_long = [{"role": "user", "content": "word " * 5000}]
    with pytest.raises(openai.BadRequestError) as overflow:
        retrying.chat.completions.create(model="smollm2", messages=too_long)
    assert overflow.value.code == "context_length_exceeded" and "4096" in overflow.value.message
    assert metric(gateway, "workbench_errors_total", type="ContextLengthExceeded") == 1, (
        "one request, no retry"
    )
    # 20,000 short messages: refused from a lower bound of their tokens, before the chat template
    # renders them on the model's thread (which took 24 s for 30,000, every request waiting)
    many = [{"role": "user", "content": "hi"}] * 20_000
    with pytest.raises(openai.BadRequestError) as crowd:
        retrying.chat.completions.create(model="smollm2", messages=many, max_tokens=2)
    assert crowd.value.code == "context_length_exceeded" and "at least 20000 tokens" in crowd.value.message

    with pytest.raises(openai.NotFoundError) as missing:  # before the stream starts
        retrying.chat.completions.create(
            model="nope", messages=[{"role": "user", "content": "x"}], stream=True
        )
    assert missing.value.code == "model_not_found"
    assert retrying.models.retrieve("smollm2").id == "smollm2"
    assert retrying.models.retrieve("minilm").id == "minilm"
    with pytest.raises(openai.NotFoundError):
        retrying.models.retrieve("nope")

    def post(body: bytes | str, headers: dict | None = None, path: str = "/v1/chat/completions"):
        headers = {"content-type": "application/json", **(headers or {})}
        return httpx.post(f"{gateway}{path}", content=body, headers=headers, timeout=60)

    for body, status, param in (
        (b"{not json", 400, None),
        ("[" * 100_000 + "]" * 100_000, 400, None),  # nested past Python's recursion limit
        (json.dumps({"model": "smollm2"}), 400, "messages"),
        (
            json.dumps({"model": "smollm2", "messages": [{"role": "robot", "content": "x"}]}),
            400,
            "messages.0.role",
        ),
        (json.dumps({"model": "smollm2", "messages": [], "max_tokens": 4}), 400, "messages"),
        (json.dumps({"model": 7, "messages": [{"role": "user", "content": "x"}]}), 400, "model"),
        (
            json.dumps(
                {"model": "smollm2", "messages": [{"role": "user", "content": [{"type": "image_url"}]}]}
            ),
            400,
            "messages.0.content",
        ),
    ):
        answer = post(body)
        assert answer.status_code == status, (body[:80], answer.text)
        assert answer.json()["error"]["param"] == param, answer.text
    oversized = post(b"x" * 1_100_000)
    assert oversized.status_code == 413 and oversized.json()["error"]["code"] == "request_too_large"
    assert httpx.get(f"{gateway}/v1/chat/completions").status_code == 405
    # A keyless gateway is for programs on this machine, not for the web pages its user opens:
    # a cross-site "simple" request (text/plain), a page's Origin, a rebound DNS name's Host.
    hello = json.dumps({"model": "smollm2", "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 2})
    port = gateway.rsplit(":", 1)[1]
    for headers, status in (
        ({"content-type": "text/plain"}, 415),
        ({"origin": "http://attacker.example"}, 403),
        ({"origin": "null"}, 403),
        ({"host": f"attacker.example:{port}"}, 421),
    ):
        refused = post(hello, headers)
        assert refused.status_code == status, (headers, refused.text)
    assert post(hello, {"host": f"localhost:{port}"}).status_code == 200
    # The server's max_tokens cap holds on the workbench's own routes too.
    for path, body in (
        (
            "/workbench/compare",
            {"models": ["smollm2", "smollm2"], "prompt": "Hi", "params": {"max_tokens": 5000}},
        ),
        ("/workbench/eval", {"dataset": "x", "models": ["smollm2"], "max_tokens": 5000}),
    ):
        capped = post(json.dumps(body), path=path)
        assert capped.status_code == 400 and capped.json()["error"]["param"] == "max_tokens", capped.text
    assert httpx.get(f"{gateway}/v1/nothing").json()["error"]["code"] == "not_found"

    # Embeddings: a window the model cannot exceed, dimensions it cannot cut.
    embed = openai.OpenAI(base_url=f"{gateway}/v1", api_key="unused", max_retries=0)
    long_text = "tide " * 600
    with pytest.raises(openai.BadRequestError) as window:
        embed.embeddings.create(model="minilm", input=["short", long_text])
    assert window.value.code == "context_length_exceeded" and window.value.param == "input"
    cut = httpx.post(
        f"{gateway}/v1/embeddings", json={"model": "minilm", "input": long_text, "truncate": True}, timeout=60
    )
    assert cut.status_code == 200 and cut.json()["usage"]["prompt_tokens"] == 256
    with pytest.raises(openai.BadRequestError) as dimensions:
        embed.embeddings.create(model="minilm", input="x", dimensions=64)
    assert dimensions.value.param == "dimensions"
    assert len(embed.embeddings.create(model="minilm", input="x", dimensions=384).data[0].embedding) == 384


def test_serve_sets_the_slots_and_context_of_its_local_models(model_workspace):
    """`serve --parallel 2 --ctx 512`, as llama-server's -np 2 -c 1024: each local model loads
    with 2 slots of 512 tokens; a prompt past 512 is refused before any token."""
    from tests.conftest import run_cli
    from tests.test_server import free_port

    port = free_port()
    run_cli("serve", "--port", str(port), "--background", "--parallel", "2", "--ctx", "512", check=True)
    url = f"http://127.0.0.1:{port}/v1/chat/completions"
    ask = {"model": "smollm2", "max_tokens": 4, "temperature": 0}
    try:
        short = httpx.post(url, json=ask | {"messages": [{"role": "user", "content": "Hi"}]}, timeout=120)
        long = [{"role": "user", "content": "river tea index " * 300}]
        refused = httpx.post(url, json=ask | {"messages": long}, timeout=120)
    finally:
        run_cli("serve", "--stop")
    assert short.status_code == 200, short.text
    assert refused.status_code == 400 and "holds 512" in refused.json()["error"]["message"]
    service = Service(model_workspace.root)
    service.store.compact()
    _, rows = service.store.sql("SELECT attributes FROM spans WHERE name = 'model.load'", limit=10)
    loads = [json.loads(row[0]) for row in rows]
    assert {(a["workbench.slots"], a["workbench.context"]) for a in loads} == {(2, 512)}, loads
    bad = run_cli("serve", "--parallel", "0")
    assert bad.returncode != 0 and "--parallel" in bad.stderr


def test_rerank_scores_as_sentence_transformers_does(model_workspace, fetched_models, tmp_path):
    import torch
    from sentence_transformers import CrossEncoder

    from tests.conftest import run_cli
    from tests.test_server import free_port

    # A real CrossEncoder: MiniLM's encoder with a seeded, untrained head (no model hub here).
    torch.manual_seed(0)
    folder = tmp_path / "tiny-reranker"
    CrossEncoder(str(fetched_models / "all-MiniLM-L6-v2"), num_labels=1, local_files_only=True).save(
        str(folder)
    )
    run_cli("models", "register", str(folder), check=True)
    port = free_port()
    run_cli("serve", "--port", str(port), "--background", check=True)
    url = f"http://127.0.0.1:{port}"
    query = "when do I prune roses"
    documents = ["Prune roses in late winter.", "Espresso is brewed at 9 bar.", "Roses like sun."]
    try:
        assert "tiny-reranker" in {m["id"] for m in httpx.get(f"{url}/v1/models").json()["data"]}
        body = {"model": "tiny-reranker", "query": query, "documents": documents, "top_n": 2}
        answer = httpx.post(f"{url}/v1/rerank", json=body | {"return_documents": True}, timeout=120).json()
        refused = httpx.post(f"{url}/v1/rerank", json=body | {"model": "minilm"}, timeout=60)
    finally:
        run_cli("serve", "--stop")
    expected = CrossEncoder(str(folder), local_files_only=True).predict([(query, d) for d in documents])
    order = list(np.argsort(-expected, kind="stable")[:2])
    assert [r["index"] for r in answer["results"]] == order
    assert np.allclose([r["relevance_score"] for r in answer["results"]], expected[order], atol=1e-5)
    assert [r["document"]["text"] for r in answer["results"]] == [documents[i] for i in order]
    assert answer["usage"]["prompt_tokens"] > 0
    assert refused.status_code == 400 and "not a reranker" in refused.json()["error"]["message"]


def test_a_client_that_leaves_before_a_whole_answer_stops_its_decode(gateway, model_workspace):  # noqa: F811
    body = {
        "model": "smollm2",
        "max_tokens": 600,
        "temperature": 0.7,
        "messages": [{"role": "user", "content": "Write a long story about the sea."}],
    }
    with pytest.raises(httpx.ReadTimeout):  # not streamed: the client waits, then gives up
        httpx.post(f"{gateway}/v1/chat/completions", json=body, timeout=httpx.Timeout(60, read=2))
    service = Service(model_workspace.root)
    deadline = time.monotonic() + 60
    calls: list = []
    while not calls and time.monotonic() < deadline:
        service.store.compact()
        _, rows = service.store.sql("SELECT attributes FROM spans WHERE name = 'llm.chat'", limit=10)
        calls = [json.loads(row[0]) for row in rows]
        time.sleep(0.5)
    assert calls, "the call ended and was traced"
    assert calls[0]["gen_ai.response.finish_reasons"] == ["cancelled"]
    assert calls[0]["gen_ai.usage.output_tokens"] < 600


def test_an_embedding_whose_client_leaves_stops_between_batches(gateway, model_workspace):  # noqa: F811
    """2,048 inputs ran on for 47 s after their client had gone (finding 4 of the red-team
    review): the embedding stops at its next batch of 64, its span says where."""
    texts = [f"passage {i} about tides, harbours and the lighthouse keeper's long night" for i in range(2048)]
    with pytest.raises(httpx.ReadTimeout):
        httpx.post(
            f"{gateway}/v1/embeddings",
            json={"model": "minilm", "input": texts},
            timeout=httpx.Timeout(60, read=1.5),
        )
    service = Service(model_workspace.root)
    deadline = time.monotonic() + 60
    spans: list = []
    while not spans and time.monotonic() < deadline:
        service.store.compact()
        _, spans = service.store.sql("SELECT attributes, error FROM spans WHERE name = 'gateway.embeddings'")
        time.sleep(0.5)
    assert spans, "the embedding ended (stopped) and was traced"
    attributes, error = json.loads(spans[0][0]), spans[0][1]
    assert "the caller left" in error
    assert 0 < attributes.get("workbench.inputs", 0) == 2048
    done = int(error.split("after ")[1].split(" of")[0])
    assert done < 2048 and done % 64 == 0, error
    # and the gateway answers the next request
    answer = httpx.post(f"{gateway}/v1/embeddings", json={"model": "minilm", "input": "x"}, timeout=60)
    assert answer.status_code == 200


def test_usage_reports_the_prompt_tokens_read_from_the_cache(client):
    """The same long instructions before two questions: the second reads them from a slot's
    KV cache, and says so as OpenAI does (usage.prompt_tokens_details.cached_tokens), in the
    stream's last chunk too."""
    system = "You answer questions about the workbench. " * 30
    usages = []
    for question in ("What is a collection?", "What is a trace?"):
        reply = client.chat.completions.create(
            model="smollm2",
            messages=[{"role": "system", "content": system}, {"role": "user", "content": question}],
            max_tokens=4,
            temperature=0,
        )
        usages.append(reply.usage)
    assert usages[0].prompt_tokens_details.cached_tokens == 0
    assert 128 <= usages[1].prompt_tokens_details.cached_tokens < usages[1].prompt_tokens
    stream = client.chat.completions.create(
        model="smollm2",
        messages=[{"role": "system", "content": system}, {"role": "user", "content": "And a model?"}],
        max_tokens=4,
        temperature=0,
        stream=True,
        stream_options={"include_usage": True},
    )
    last = [chunk for chunk in stream][-1]
    assert last.usage.prompt_tokens_details.cached_tokens >= 128
