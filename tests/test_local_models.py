"""Real llama.cpp with the packaged SmolLM2 on CPU: streaming, sampling, grammars, the owner
thread, spans."""

from __future__ import annotations

import json
import threading
from dataclasses import replace

import pytest

from local_models.llama_backend import LoadOptions
from local_models.types import GenerationParams
from tests.conftest import run_cli
from workbench.core.errors import ModelError
from workbench.services import Service

GREEDY = GenerationParams(temperature=0.0, max_tokens=48, seed=7)
QUESTION = "Name three primary colors."


@pytest.fixture
def service(model_workspace):
    service = Service(model_workspace.root)
    yield service
    service.models.close()


def test_stream_matches_result_and_is_reproducible(service):
    pieces: list[str] = []
    first = service.ask("smollm2", QUESTION, params=GREEDY, on_text=pieces.append)
    assert len(pieces) > 1 and "".join(pieces) == first.text
    assert first.output_tokens > 5 and first.input_tokens > 10
    assert first.finish_reason in ("stop", "length")
    assert first.ttft_s is not None and first.ttft_s > 0 and first.tokens_per_s > 0
    assert first.hardware.startswith("cpu:")
    again = service.ask("smollm2", QUESTION, params=GREEDY)
    assert again.text == first.text


def test_same_answer_as_llama_cpp_python_itself(service, model_workspace):
    import llama_cpp

    ours = service.ask("smollm2", QUESTION, params=GREEDY)
    llm = llama_cpp.Llama(  # with flash attention, as the workbench decodes
        str(model_workspace.models_dir / "SmolLM2-135M-Instruct.Q4_1.gguf"),
        n_ctx=4096,
        flash_attn=True,
        verbose=False,
    )
    theirs = llm.create_chat_completion(
        [{"role": "user", "content": QUESTION}], temperature=0.0, max_tokens=48, seed=7
    )
    assert ours.text == theirs["choices"][0]["message"]["content"]
    assert ours.input_tokens == theirs["usage"]["prompt_tokens"]
    assert ours.output_tokens == theirs["usage"]["completion_tokens"]
    llm.close()


def test_mean_logprob_matches_llama_cpp_python(service, model_workspace):
    import llama_cpp

    ours = service.ask("smollm2", QUESTION, params=replace(GREEDY, logprobs=True))
    llm = llama_cpp.Llama(
        str(model_workspace.models_dir / "SmolLM2-135M-Instruct.Q4_1.gguf"),
        n_ctx=4096,
        logits_all=True,
        flash_attn=True,
        verbose=False,
    )
    theirs = llm.create_chat_completion(
        [{"role": "user", "content": QUESTION}],
        temperature=0.0,
        max_tokens=48,
        seed=7,
        logprobs=True,
        top_logprobs=1,
    )
    llm.close()
    tokens = theirs["choices"][0]["logprobs"]["content"]
    assert ours.text == theirs["choices"][0]["message"]["content"]
    expected = sum(t["logprob"] for t in tokens) / len(tokens)
    assert ours.mean_logprob is not None and ours.mean_logprob < 0
    assert abs(ours.mean_logprob - expected) < 1e-3, (ours.mean_logprob, expected)
    assert service.ask("smollm2", QUESTION, params=GREEDY).mean_logprob is None, "off unless asked"


def test_max_tokens_and_stop_sequences(service):
    short = service.ask(
        "smollm2", "Count from 1 to 30.", params=GenerationParams(temperature=0, max_tokens=5)
    )
    assert short.output_tokens == 5 and short.finish_reason == "length"
    stopped = service.ask(
        "smollm2",
        "Count from 1 to 30, separated by commas.",
        params=GenerationParams(temperature=0, max_tokens=100, stop=("5",)),
    )
    assert stopped.finish_reason == "stop" and "5" not in stopped.text and "4" in stopped.text


def test_json_schema_constrained_output(service):
    schema = {
        "type": "object",
        "properties": {"color": {"type": "string"}, "count": {"type": "integer"}},
        "required": ["color", "count"],
    }
    result = service.ask(
        "smollm2",
        "Describe the sky as JSON.",
        params=GenerationParams(temperature=0.8, max_tokens=60, seed=3, json_schema=schema),
    )
    value = json.loads(result.text)
    assert isinstance(value["color"], str) and isinstance(value["count"], int)


def test_concurrent_requests_are_decoded_together_with_the_same_tokens(service):
    """Continuous batching: 8 requests at once share decode steps (4 slots, the rest join as
    slots free up) and each answer is token for token what it is alone at temperature 0."""
    prompts = ["Say hello.", "Name a fruit.", "Name a planet.", "Say goodbye."]
    expected = {p: service.ask("smollm2", p, params=GREEDY) for p in prompts}
    got: dict[str, list] = {p: [] for p in prompts}
    errors: list[BaseException] = []

    def worker(prompt: str) -> None:
        try:
            got[prompt].append(service.ask("smollm2", prompt, params=GREEDY))
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(p,)) for p in prompts * 2]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not errors
    for prompt in prompts:
        assert [r.text for r in got[prompt]] == [expected[prompt].text] * 2
        assert [r.output_tokens for r in got[prompt]] == [expected[prompt].output_tokens] * 2
    assert service.models.load("smollm2").peak_parallel == 4


def test_batched_requests_keep_their_own_sampling_grammar_and_cancel(service):
    """In one batch: a JSON-constrained request, a sampled one with a seed, a greedy one and
    one cancelled mid-answer; each gets what it gets alone, the cancelled one stops."""
    schema = {
        "type": "object",
        "properties": {"color": {"type": "string"}, "count": {"type": "integer"}},
        "required": ["color", "count"],
    }
    asks = {
        "json": (
            "Describe the sky as JSON.",
            GenerationParams(temperature=0.8, max_tokens=60, seed=3, json_schema=schema),
        ),
        "sampled": (QUESTION, GenerationParams(temperature=0.8, max_tokens=40, seed=11)),
        "greedy": ("Name a planet.", GREEDY),
    }
    alone = {name: service.ask("smollm2", q, params=p).text for name, (q, p) in asks.items()}
    model = service.models.load("smollm2")
    messages = lambda question: [{"role": "user", "content": question}]  # noqa: E731
    stop = threading.Event()
    doomed = model.chat(messages("Write a long story about a dragon."), replace(GREEDY, max_tokens=200), stop)
    streams = {name: model.chat(messages(q), p) for name, (q, p) in asks.items()}
    pieces = iter(doomed)
    next(pieces)
    stop.set()
    assert doomed.result.finish_reason == "cancelled" and doomed.result.output_tokens < 200
    assert {name: stream.result.text for name, stream in streams.items()} == alone
    assert isinstance(json.loads(streams["json"].result.text)["count"], int)
    assert model.peak_parallel == 4


def test_every_call_is_a_span(service):
    result = service.ask("smollm2", QUESTION, system="Be brief.", params=GREEDY)
    service.flush_traces()
    spans = {s["name"]: s for s in service.get_trace(result.trace_id)}
    llm = spans["llm.chat"]
    assert (llm["operation"], llm["provider"], llm["model"]) == ("chat", "llama.cpp", "smollm2")
    assert (llm["input_tokens"], llm["output_tokens"]) == (result.input_tokens, result.output_tokens)
    assert llm["ttft_s"] == pytest.approx(result.ttft_s)
    attrs = json.loads(llm["attributes"])
    assert attrs["gen_ai.response.finish_reasons"] == [result.finish_reason]
    assert attrs["workbench.hardware"].startswith("cpu:") and attrs["gen_ai.request.seed"] == 7
    payload = json.loads(llm["payload"])
    assert payload["messages"][0] == {"role": "system", "content": "Be brief."}
    assert payload["output"] == result.text


def test_the_span_counts_the_tokens_read_from_the_cache(service):
    system = "Answer about the workbench in one short sentence. " * 20
    service.ask("smollm2", "What is a trace?", system=system, params=GREEDY)
    again = service.ask("smollm2", "What is a collection?", system=system, params=GREEDY)
    assert again.cached_tokens >= 128
    service.flush_traces()
    llm = next(s for s in service.get_trace(again.trace_id) if s["name"] == "llm.chat")
    assert json.loads(llm["attributes"])["gen_ai.usage.cache_read.input_tokens"] == again.cached_tokens


def test_errors_are_clear(service):
    with pytest.raises(ModelError, match="no model named"):
        service.ask("llama-70b", "hi")
    with pytest.raises(ModelError, match="embedding model"):
        service.ask("minilm", "hi")
    with pytest.raises(ModelError, match="holds 256"):
        service.ask("smollm2", "word " * 400, options=LoadOptions(n_ctx=256))
    with pytest.raises(ModelError, match="temperature"):
        service.ask("smollm2", "hi", params=GenerationParams(temperature=-1))


def test_gemma_without_a_template_of_its_own_still_chats(service):
    result = service.ask("gemma3", "Hello", params=GenerationParams(temperature=0, max_tokens=8))
    assert result.input_tokens > 3 and result.output_tokens > 0


def test_cli_ask(model_workspace):
    result = run_cli("ask", "-m", "smol", "--seed", "1", "-t", "0", "--max-tokens", "20", "--json", QUESTION)
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["model"] == "smollm2" and data["output_tokens"] > 0 and data["cost_usd"] == 0.0
    streamed = run_cli("ask", "-m", "smollm2", "--seed", "1", "-t", "0", "--max-tokens", "20", QUESTION)
    assert streamed.stdout.strip() == data["text"].strip()
    assert "tok/s" in streamed.stderr
    missing = run_cli("ask", "-m", "nope", "hi")
    assert missing.returncode == 5 and "no model named 'nope'" in missing.stderr


def test_cli_chat_keeps_the_conversation(model_workspace):
    turns = "My name is Ada.\n/bogus\nWhat is my name?\n/reset\nHi\n"
    result = run_cli("chat", "-m", "smollm2", "-t", "0", "--max-tokens", "16", input=turns)
    assert result.returncode == 0, result.stderr
    assert "smollm2 loaded in" in result.stderr and "[unknown command /bogus" in result.stderr
    figures = [line for line in result.stderr.splitlines() if "tok/s" in line]
    assert len(figures) == 3, result.stderr
    inputs = [int(line.split(": ")[1].split(" in")[0]) for line in figures]
    assert inputs[1] > inputs[0] + 10, "the second turn carries the first"
    assert inputs[2] < inputs[1], "/reset starts a new conversation"
    missing = run_cli("chat", "-m", "nope", input="hi\n")
    assert missing.returncode == 5 and "no model named 'nope'" in missing.stderr


def test_cli_models_load(model_workspace):
    result = run_cli("models", "load", "smol", "--ctx", "1024")
    assert result.returncode == 0, result.stderr
    assert (
        "smollm2 loaded in" in result.stdout and "cpu:" in result.stdout and "context 1024" in result.stdout
    )
    assert result.stderr == "", "llama.cpp's log lines do not reach the terminal"
    embedding = run_cli("models", "load", "minilm")
    assert embedding.returncode == 5 and "embedding model" in embedding.stderr


def test_sampling_in_the_graph_gives_the_same_tokens(service, monkeypatch):
    """Backend sampling (on by request; meant for GPUs) picks exactly what host sampling picks."""
    import local_models.llama_backend as backend

    for params in (GREEDY, GenerationParams(temperature=0.8, max_tokens=40, seed=3)):
        monkeypatch.setattr(backend, "BACKEND_SAMPLING", "off")
        host = service.ask("smollm2", QUESTION, params=params)
        monkeypatch.setattr(backend, "BACKEND_SAMPLING", "on")
        graph = service.ask("smollm2", QUESTION, params=params)
        assert graph.text == host.text and graph.output_tokens == host.output_tokens
    schema = {
        "type": "object",
        "properties": {"color": {"type": "string"}, "count": {"type": "integer"}},
        "required": ["color", "count"],
    }
    constrained = service.ask(
        "smollm2",
        "Describe the sky as JSON.",
        params=GenerationParams(temperature=0.8, max_tokens=60, seed=3, json_schema=schema),
    )
    assert isinstance(json.loads(constrained.text)["count"], int), (
        "a grammar still constrains (host sampling)"
    )
