"""`workbench serve`: the official OpenAI SDK (sync, async, streaming, JSON schema) against the
gateway running as a user starts it, with SmolLM2 on llama.cpp; one trace per request, tagged
with the key; Prometheus metrics; a client that goes away stops the decode; keys, limits and
loopback safety."""

from __future__ import annotations

import asyncio
import json
import re
import socket
import time

import httpx
import jsonschema
import openai
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import run_cli
from workbench.services import Service


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def gateway(model_workspace):
    port = free_port()
    started = run_cli("serve", "--port", str(port), "--background", check=True)
    assert f"at http://127.0.0.1:{port}/v1" in started.stdout
    yield f"http://127.0.0.1:{port}"
    run_cli("serve", "--stop")


def metric(url: str, name: str, **labels) -> float:
    text = httpx.get(f"{url}/metrics").text
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                return sample.value
    return 0.0


def tea_and_rag(tmp_path) -> None:
    """A `demo` collection of one note on tea, and the `rag` workflow over it."""
    corpus = tmp_path / "notes"
    corpus.mkdir()
    (corpus / "tea.md").write_text("# Tea\n\nGreen tea is steeped at 80 degrees Celsius for two minutes.\n")
    run_cli("ingest", str(corpus), "-c", "demo", check=True, timeout=300)
    run_cli("workflows", "new", "rag", "--from", "rag", check=True)


def test_the_openai_sdk_talks_to_the_gateway(gateway, model_workspace):
    client = openai.OpenAI(base_url=f"{gateway}/v1", api_key="unused", max_retries=0)
    assert {"smollm2", "gemma3-270m"} <= {m.id for m in client.models.list()}
    messages = [{"role": "user", "content": "Name three colours."}]
    plain = client.chat.completions.create(model="smollm2", messages=messages, max_tokens=16, temperature=0)
    assert plain.choices[0].message.content and plain.usage.completion_tokens <= 16
    assert plain.choices[0].finish_reason in ("stop", "length")

    # The same question in process gives the same tokens (temperature 0).
    in_process = Service(model_workspace.root)
    here = in_process.ask("smollm2", "Name three colours.", None, {"temperature": 0, "max_tokens": 16})
    in_process.close()
    assert here.text.strip() == plain.choices[0].message.content.strip()

    # Streaming, with the usage in the last chunk when asked.
    stream = client.chat.completions.create(
        model="smollm2",
        messages=messages,
        max_tokens=16,
        temperature=0,
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == plain.choices[0].message.content
    assert chunks[-1].usage.completion_tokens == plain.usage.completion_tokens and not chunks[-1].choices

    # A JSON schema constrains the answer (llama.cpp grammar).
    schema = {
        "type": "object",
        "properties": {"name": {"type": "string"}, "age": {"type": "integer"}},
        "required": ["name", "age"],
    }
    shaped = client.chat.completions.create(
        model="smollm2",
        messages=[{"role": "user", "content": "A person with a name and an age."}],
        max_tokens=60,
        temperature=0,
        response_format={"type": "json_schema", "json_schema": {"name": "person", "schema": schema}},
    )
    jsonschema.validate(json.loads(shaped.choices[0].message.content), schema)

    async def concurrently() -> list[str]:
        async_client = openai.AsyncOpenAI(base_url=f"{gateway}/v1", api_key="unused", max_retries=0)

        async def one(question: str) -> str:
            stream = await async_client.chat.completions.create(
                model="smollm2",
                messages=[{"role": "user", "content": question}],
                max_tokens=8,
                temperature=0,
                stream=True,
            )
            return "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])

        return await asyncio.gather(one("Hi"), one("Hello"))

    assert all(asyncio.run(concurrently()))

    # Mistakes come back in OpenAI's error format, as the SDK's own exceptions.
    with pytest.raises(openai.NotFoundError) as missing:
        client.chat.completions.create(model="nope", messages=messages)
    assert missing.value.code == "model_not_found"
    with pytest.raises(openai.BadRequestError, match="over this server's limit of 4096"):
        client.chat.completions.create(model="smollm2", messages=messages, max_tokens=100_000)
    with pytest.raises(openai.BadRequestError, match="role"):
        client.chat.completions.create(model="smollm2", messages=[{"role": "robot", "content": "x"}])

    # Every answered request is one trace, tagged with the key (none here: "local").
    assert metric(gateway, "workbench_requests_total", model="smollm2", status="ok") == 5
    assert metric(gateway, "workbench_tokens_total", model="smollm2", direction="output") > 0
    assert metric(gateway, "workbench_errors_total", type="ModelNotFound") == 1
    service = Service(model_workspace.root)
    deadline = time.monotonic() + 30  # the gateway's spans reach the store within its flush interval
    while (
        total := service.list_traces(filters={"name": "gateway.chat"})[1]
    ) < 6 and time.monotonic() < deadline:
        time.sleep(0.2)
    assert total == 6  # five answers and the unknown model, which failed inside its trace
    spans = service.get_trace(plain.model_extra["workbench"]["trace_id"])
    names = [s["name"] for s in spans]
    assert names[0] == "gateway.chat" and "llm.chat" in names  # and the first request's model.load

    # `workbench ask` goes through the workspace's running gateway: the same answer, and its
    # figures and trace (a gateway request) on stderr.
    via = run_cli("ask", "-m", "smollm2", "-t", "0", "--max-tokens", "16", "Name three colours.", check=True)
    assert via.stdout.strip() == plain.choices[0].message.content.strip()
    assert "[smollm2 cpu:" in via.stderr and "tok/s" in via.stderr
    trace = re.search(r"trace ([0-9a-f]{16})", via.stderr)[1]
    deadline = time.monotonic() + 30
    while not service.list_traces(filters={"name": "gateway.chat"})[1] == 7 and time.monotonic() < deadline:
        time.sleep(0.2)
    assert service.get_trace(trace)[0]["name"] == "gateway.chat"
    assert json.loads(spans[0]["attributes"])["workbench.key"] == "local"


def test_a_client_that_goes_away_stops_the_decode(gateway, model_workspace):
    body = {
        "model": "smollm2",
        "stream": True,
        "max_tokens": 400,
        "temperature": 0.7,
        "messages": [{"role": "user", "content": "Write a long story about the sea."}],
    }
    with httpx.stream("POST", f"{gateway}/v1/chat/completions", json=body, timeout=60) as response:
        trace_id = response.headers["x-workbench-trace-id"]
        lines = response.iter_lines()
        received = [line for _, line in zip(range(6), lines)]
    assert any(line.startswith("data: {") for line in received)
    service = Service(model_workspace.root)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        service.store.compact()
        calls = [s for s in service.store.spans_of([trace_id]) if s["name"] == "llm.chat"]
        if calls:
            break
        time.sleep(0.5)
    attributes = json.loads(calls[0]["attributes"])
    assert attributes["gen_ai.response.finish_reasons"] == ["cancelled"]
    assert attributes["gen_ai.usage.output_tokens"] < 400


def test_keys_limits_and_loopback_safety(model_workspace, monkeypatch):
    refused = run_cli("serve", "--host", "0.0.0.0")
    assert (
        refused.returncode == 64 and "without a key" in refused.stderr and "[server] keys" in refused.stderr
    )

    with open(model_workspace.config_path, "a") as config:
        config.write('\n[server]\nkeys = ["WB_KEY_ADA"]\nrequests_per_minute = 3\n')
    unset = run_cli("serve", "--port", str(free_port()))
    assert unset.returncode == 64 and "WB_KEY_ADA, which is not set" in unset.stderr

    port = free_port()
    env = {"WB_KEY_ADA": "s3cret-token"}
    run_cli("serve", "--port", str(port), "--background", env=env, check=True)
    try:
        url = f"http://127.0.0.1:{port}/v1"
        with pytest.raises(openai.AuthenticationError):
            openai.OpenAI(base_url=url, api_key="wrong", max_retries=0).models.list()
        client = openai.OpenAI(base_url=url, api_key="s3cret-token", max_retries=0)
        answer = client.chat.completions.create(
            model="smollm2", messages=[{"role": "user", "content": "Hi"}], max_tokens=4
        )
        client.models.list()
        client.models.list()
        with pytest.raises(openai.RateLimitError) as limited:
            client.models.list()
        assert int(limited.value.response.headers["retry-after"]) >= 1
    finally:
        run_cli("serve", "--stop", env=env)  # its last spans are written as it stops
    spans = Service(model_workspace.root).get_trace(answer.model_extra["workbench"]["trace_id"])
    assert json.loads(spans[0]["attributes"])["workbench.key"] == "WB_KEY_ADA"
    assert not (model_workspace.root / "server.json").exists()


def test_a_stale_server_file_means_in_process(workspace):
    """A gateway that died without cleaning up (SIGKILL) leaves server.json: commands run in
    process then, with no message."""
    from workbench.server.client import running_gateway

    (workspace.root / "server.json").write_text(
        json.dumps(
            {
                "pid": 999_999,
                "host": "127.0.0.1",
                "port": free_port(),
                "url": f"http://127.0.0.1:{free_port()}",
            }
        )
    )
    assert running_gateway(str(workspace.root)) is None
    (workspace.root / "server.json").write_text("not json")
    assert running_gateway(str(workspace.root)) is None


def test_embeddings_from_the_workspace_models(gateway, model_workspace):
    """/v1/embeddings answers with the workspace's MiniLM: the vectors sentence-transformers
    gives in process, as floats or as the base64 the SDK asks for by default."""
    import numpy as np

    client = openai.OpenAI(base_url=f"{gateway}/v1", api_key="unused", max_retries=0)
    texts = ["The sea has two high tides a day.", "Dough proves for an hour."]
    assert "minilm" in {m.id for m in client.models.list()}
    default = client.embeddings.create(model="minilm", input=texts)  # base64 on the wire
    floats = client.embeddings.create(model="minilm", input=texts, encoding_format="float")
    _, expected, tokens = Service(model_workspace.root).embed("minilm", texts)
    for response in (default, floats):
        got = np.array([d.embedding for d in response.data], dtype=np.float32)
        assert got.shape == (2, 384) and np.allclose(got, expected, atol=1e-5)
        assert response.usage.prompt_tokens == tokens
    with pytest.raises(openai.BadRequestError, match="not an embedding model"):
        client.embeddings.create(model="smollm2", input="x")
    with pytest.raises(openai.BadRequestError, match="input"):
        client.embeddings.create(model="minilm", input=[])


def test_a_workflow_answers_as_a_model(gateway, model_workspace, tmp_path):
    tea_and_rag(tmp_path)
    question = "How hot should the water be for green tea?"
    ours = run_cli("run", "rag", "--input", question, check=True, timeout=300).stdout.strip()

    client = openai.OpenAI(base_url=f"{gateway}/v1", api_key="unused", max_retries=0)
    assert "workflow/rag" in {m.id for m in client.models.list()}
    messages = [{"role": "user", "content": question}]
    plain = client.chat.completions.with_raw_response.create(model="workflow/rag", messages=messages)
    answer = plain.parse()
    assert answer.choices[0].message.content.strip() == ours, "the answer `workbench run` gives"
    assert answer.model == "workflow/rag" and answer.usage.prompt_tokens > 0
    streamed = client.chat.completions.create(model="workflow/rag", messages=messages, stream=True)
    assert "".join(c.choices[0].delta.content or "" for c in streamed if c.choices).strip() == ours
    with pytest.raises(openai.NotFoundError):
        client.chat.completions.create(model="workflow/nope", messages=messages)

    spans = Service(model_workspace.root).get_trace(plain.headers["x-workbench-trace-id"])
    by_id = {s["span_id"]: s for s in spans}
    run = next(s for s in spans if s["name"] == "workflow.run")
    assert by_id[run["parent_id"]]["name"] == "gateway.chat", "one trace: the request, then the run"
    assert {"node.retrieve", "node.answer", "llm.chat"} <= {s["name"] for s in spans}


def test_a_key_over_its_daily_budget_waits_for_midnight(model_workspace, cloud):
    """Each cloud call holds its worst-case price (the prompt's bytes + 8 a message in, its
    max_tokens out) until it settles at its real price: here 38 tokens in at $2/M and 8 out at
    $8/M, $0.00014, against a real 11 in and 6 out, $0.00007."""
    with open(model_workspace.config_path, "a") as config:
        config.write(
            f'\n[cloud.remote]\nbase_url = "{cloud.url}"\nmodels = ["big"]\n'
            "prices.big = { input_per_mtok = 2.0, output_per_mtok = 8.0 }\n"
            '[server]\nkeys = ["WB_KEY_ADA", "WB_KEY_BOB"]\ndaily_budget_usd = { WB_KEY_ADA = 0.0003 }\n'
        )
    env = {"WB_KEY_ADA": "ada-token", "WB_KEY_BOB": "bob-token"}
    messages = [{"role": "user", "content": "What is the capital of France?"}]
    for attempt in ("fresh", "after a restart"):
        port = free_port()
        run_cli("serve", "--port", str(port), "--background", env=env, check=True)
        try:
            ada = openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="ada-token", max_retries=0)
            bob = openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="bob-token", max_retries=0)
            if attempt == "fresh":
                # spent 0, 0.00007, 0.00014: each with 0.00014 held fits under 0.0003
                for _ in range(3):
                    first = ada.chat.completions.create(
                        model="remote/big", messages=messages, max_tokens=8, stream=True
                    )
                    assert "".join(c.choices[0].delta.content or "" for c in first if c.choices)
            # 0.00021 spent (read back from the store after the restart) + 0.00014 > 0.0003
            with pytest.raises(openai.RateLimitError) as over:
                ada.chat.completions.create(model="remote/big", messages=messages, max_tokens=8)
            assert over.value.code == "daily_budget_exceeded" and "daily budget" in over.value.message
            assert "$0.0002 spent" in over.value.message, over.value.message
            assert 1 <= int(over.value.response.headers["retry-after"]) <= 86_400
            answered = bob.chat.completions.create(model="remote/big", messages=messages, stream=True)
            assert "".join(c.choices[0].delta.content or "" for c in answered if c.choices), (
                "other keys go on"
            )
        finally:
            run_cli("serve", "--stop", env=env)


def test_concurrent_calls_and_every_route_stay_inside_a_key_budget(model_workspace):
    """8 concurrent cloud calls on one key, each worth $0.00007 at most $0.00014, against a
    $0.0003 budget: at most two are under way at once, so the day's spend stays under it; and
    /workbench/compare and /workbench/eval are charged to the key and refused like a chat."""
    import concurrent.futures

    from tests.fake_cloud import FakeCloud
    from workbench.services import Service

    slow = FakeCloud(delay=0.3)  # each answer takes ~2 s: the 8 calls overlap
    try:
        with open(model_workspace.config_path, "a") as config:
            config.write(
                f'\n[cloud.remote]\nbase_url = "{slow.url}"\nmodels = ["big", "small"]\n'
                "prices.big = { input_per_mtok = 2.0, output_per_mtok = 8.0 }\n"
                "prices.small = { input_per_mtok = 2.0, output_per_mtok = 8.0 }\n"
                '[server]\nkeys = ["WB_KEY_ADA"]\ndaily_budget_usd = { WB_KEY_ADA = 0.0003 }\n'
            )
        (model_workspace.evals_dir / "tiny.jsonl").write_text(
            '{"id": "a", "input": "Hi?", "expected": "Paris"}\n'
        )
        env = {"WB_KEY_ADA": "ada-token"}
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        run_cli("serve", "--port", str(port), "--background", env=env, check=True)
        try:
            headers = {"authorization": "Bearer ada-token"}
            body = {
                "model": "remote/big",
                "max_tokens": 8,
                "messages": [{"role": "user", "content": "What is the capital of France?"}],
            }

            def call(_):
                return httpx.post(f"{url}/v1/chat/completions", json=body, headers=headers, timeout=60)

            with concurrent.futures.ThreadPoolExecutor(8) as pool:
                answers = list(pool.map(call, range(8)))
            statuses = sorted(a.status_code for a in answers)
            assert statuses.count(200) == 2 and statuses.count(429) == 6, statuses
            refused = next(a for a in answers if a.status_code == 429).json()["error"]
            assert (
                refused["code"] == "daily_budget_exceeded" and "held by calls under way" in refused["message"]
            )
            # $0.00014 spent: a compare of two models (each held at $0.000084) fits one of them;
            # the other is refused, inside a trace tagged with the key
            compare = {"models": ["remote/big", "remote/small"], "prompt": "Hi", "params": {"max_tokens": 8}}
            lines = httpx.post(f"{url}/workbench/compare", json=compare, headers=headers, timeout=60).text
            outcomes = json.loads(lines.splitlines()[-1])["result"]
            assert sum("error" in o for o in outcomes) == 1, outcomes
            assert next(o for o in outcomes if "error" in o)["error"]["status"] == 429
            # $0.00021 spent: a chat and an eval's cloud cases no longer fit
            assert call(0).status_code == 429
            evaluated = httpx.post(
                f"{url}/workbench/eval",
                json={"dataset": "tiny", "models": ["remote/big"]},
                headers=headers,
                timeout=60,
            )
            run_id = json.loads(evaluated.text.splitlines()[-1])["result"]["run_id"]
        finally:
            run_cli("serve", "--stop", env=env)
    finally:
        slow.close()
    service = Service(model_workspace.root)
    spent = service.key_spend("WB_KEY_ADA", 0)
    assert 0 < spent <= 0.0003, spent
    _, rows = service.sql("SELECT key_name FROM spans WHERE name = 'gateway.compare'")
    assert rows and {r[0] for r in rows} == {"WB_KEY_ADA"}
    results = service.evals.results(run_id)
    assert results and all("daily budget" in (r["error"] or "") for r in results), results


def test_auto_escalates_with_the_reason_in_a_header(model_workspace, cloud):
    with open(model_workspace.config_path, "a") as config:
        config.write(
            f'\n[cloud.remote]\nbase_url = "{cloud.url}"\nmodels = ["big"]\n'
            '[router]\nlocal = "smollm2"\nescalate_to = "remote/big"\n'
        )
    port = free_port()
    run_cli("serve", "--port", str(port), "--background", check=True)
    try:
        url = f"http://127.0.0.1:{port}"
        client = openai.OpenAI(base_url=f"{url}/v1", api_key="unused", max_retries=0)
        schema = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}
        raw = client.chat.completions.with_raw_response.create(
            model="auto",
            messages=[{"role": "user", "content": "Which city is the capital of France?"}],
            max_tokens=3,  # too short for the local model to close the JSON
            temperature=0,
            response_format={"type": "json_schema", "json_schema": {"name": "city", "schema": schema}},
        )
        assert "not valid against the JSON schema" in raw.headers["x-workbench-escalation-reason"]
        assert raw.parse().choices[0].message.content == "The capital of France is Paris."
        assert cloud.requests, "the cloud model answered"
        reason = next(k for k in metric_labels(url, "workbench_escalations_total"))
        assert "JSON schema" in reason
    finally:
        run_cli("serve", "--stop")
    spans = Service(model_workspace.root).get_trace(raw.headers["x-workbench-trace-id"])
    root = json.loads(spans[0]["attributes"])
    assert root["workbench.route"] == "cloud" and "JSON schema" in root["workbench.escalation_reason"]


def metric_labels(url: str, name: str) -> list[str]:
    """The reason labels of a metric's samples."""
    return [
        sample.labels["reason"]
        for family in text_string_to_metric_families(httpx.get(f"{url}/metrics").text)
        for sample in family.samples
        if sample.name == name
    ]


def test_cli_search_goes_through_the_gateway(gateway, model_workspace, tmp_path):
    corpus = tmp_path / "notes"
    corpus.mkdir()
    (corpus / "tea.md").write_text("# Tea\n\n## Brewing\n\nGreen tea is steeped at 80 degrees Celsius.\n")
    (corpus / "coffee.md").write_text("# Coffee\n\nEspresso is brewed at 9 bar of pressure.\n")
    run_cli("ingest", str(corpus), "-c", "notes", check=True, timeout=300)
    through = json.loads(run_cli("search", "water for green tea", "-c", "notes", "--json", check=True).stdout)
    service = Service(model_workspace.root)
    here = service.search("notes", "water for green tea")
    assert [(h["id"], round(h["score"], 5)) for h in through] == [
        (h["id"], round(h["score"], 5)) for h in here
    ]
    spans = wait_for_trace(service, through[0]["trace_id"])  # the gateway writes its spans in batches
    assert spans[0]["name"] == "gateway.search" and "retrieval" in {s["name"] for s in spans}
    missing = run_cli("search", "tea", "-c", "nope")
    assert missing.returncode != 0 and "no collection named 'nope'" in missing.stderr
    assert "Traceback" not in missing.stderr


def wait_for_trace(service, trace_id: str, timeout_s: float = 30.0):
    from workbench.core.errors import QueryError

    deadline = time.monotonic() + timeout_s
    while True:
        try:
            return service.get_trace(trace_id)
        except QueryError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)


def test_a_client_that_goes_away_stops_its_workflow_run(gateway, model_workspace, tmp_path):
    """`workbench run` through the gateway, its client gone mid-answer: the run stops there
    (status stopped, the answer's decode cancelled) and `run --resume` finishes it."""
    tea_and_rag(tmp_path)
    body = {"name": "rag", "input": "How hot should the water be for green tea?"}
    with httpx.stream("POST", f"{gateway}/workbench/run", json=body, timeout=120) as response:
        events = []
        for line in response.iter_lines():
            events.append(json.loads(line))
            if events[-1].get("event", {}).get("event") == "token":
                break
    thread_id = events[0]["event"]["thread_id"]
    service = Service(model_workspace.root)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        run = next(r for r in service.workflows.runs() if r["thread_id"] == thread_id)
        if run["status"] != "running":
            break
        time.sleep(0.5)
    assert run["status"] == "stopped" and run["error"] == "stopped at node answer", run
    resumed = run_cli("run", "--resume", thread_id, "--json", check=True, timeout=300)
    outcome = json.loads(resumed.stdout)
    assert outcome["skipped"] == ["retrieve", "screen"] and outcome["state"]["answer"].strip()
    assert next(r for r in service.workflows.runs() if r["thread_id"] == thread_id)["status"] == "done"


def test_cli_run_compare_and_eval_go_through_the_gateway(model_workspace, tmp_path):
    """With the workspace's gateway up, `run`, `compare`, `chat` and `eval run` are answered by it
    (its command counter moves), with what they print without it at temperature 0."""
    tea_and_rag(tmp_path)
    cases = [
        {"id": f"c{i}", "input": q, "expected": [a]}
        for i, (q, a) in enumerate(
            [("Name a fruit.", "apple"), ("What is 2+2?", "4"), ("Name a planet.", "Mars"), ("Say hi.", "hi")]
        )
    ]
    (model_workspace.evals_dir / "mini.jsonl").write_text("".join(json.dumps(c) + "\n" for c in cases))
    question = "How hot should the water be for green tea?"
    compare = ("compare", "-m", "smollm2", "-m", "smollm2", "Name a fruit.", "-t", "0", "--json")
    evaluate = ("eval", "run", "mini", "-m", "smollm2", "--max-tokens", "24", "--json")
    chat = ("chat", "-m", "smollm2", "--temperature", "0", "--max-tokens", "24")

    def answers() -> dict:
        ran = json.loads(run_cli("run", "rag", "--input", question, "--json", check=True, timeout=300).stdout)
        compared = json.loads(run_cli(*compare, check=True, timeout=300).stdout)
        run_id = json.loads(run_cli(*evaluate, check=True, timeout=300).stdout)["run_id"]
        outputs = {r["case_id"]: r["output"] for r in Service(model_workspace.root).evals.results(run_id)}
        chatted = run_cli(*chat, input="Name a fruit.\n", check=True, timeout=300)
        return {
            "run": ran["state"]["answer"],
            "compare": [row["text"] for row in compared],
            "eval": outputs,
            "chat": chatted.stdout.splitlines()[0],
        }

    def failures() -> list[tuple[int, str]]:
        """Each command's exit code and error line, for mistakes of every kind."""
        mistakes = [
            ("run", "nope", "--input", "x"),
            ("ask", "-m", "nope", "hi"),
            ("search", "tea", "-c", "nope"),
            ("eval", "run", "mini", "-m", "nosuchmodel"),
        ]
        done = [run_cli(*mistake, timeout=300) for mistake in mistakes]
        lines = [(d.returncode, d.stderr.strip().splitlines()[-1]) for d in done]
        compared = run_cli("compare", "-m", "nope", "-m", "smollm2", "Hi", "--max-tokens", "4", "--json")
        return lines + [(compared.returncode, json.loads(compared.stdout)[0]["error"])]

    here = answers()
    failed_here = failures()
    port = free_port()
    run_cli("serve", "--port", str(port), "--background", check=True)
    url = f"http://127.0.0.1:{port}"
    try:
        through = answers()
        assert through == here
        for command in ("run", "compare", "eval"):
            assert metric(url, "workbench_commands_total", command=command, status="ok") == 1, command
        assert metric(url, "workbench_requests_total", model="smollm2", status="ok") == 1, "chat"
        # Errors come back as the in-process ones, without a traceback.
        missing = run_cli("run", "nope", "--input", "x")
        assert missing.returncode != 0 and "Traceback" not in missing.stderr
        assert "nope" in missing.stderr
        assert metric(url, "workbench_commands_total", command="run", status="error") == 1
        bad = run_cli("eval", "run", "mini", "-m", "nosuchmodel")
        assert bad.returncode != 0 and "nosuchmodel" in bad.stderr and "Traceback" not in bad.stderr
        # Mistakes give the same exit code and error line, without a traceback.
        assert failures() == failed_here
        assert all("Traceback" not in line for _, line in failed_here)
    finally:
        run_cli("serve", "--stop")


def test_a_run_belongs_to_the_key_that_started_it(model_workspace):
    """Finding 6 of the red-team review: any key read another key's run by posting its
    thread_id. Now another key's run is answered as one that does not exist."""
    (model_workspace.root / "workflows" / "tiny.yaml").write_text(
        "name: tiny\nstart: answer\nnodes:\n  answer:\n    type: generate\n    model: smollm2\n"
        '    prompt:\n      id: tiny\n      template: "{input}"\n    max_tokens: 4\n    temperature: 0\n'
        "    output: answer\n    next: end\n"
    )
    with open(model_workspace.config_path, "a") as config:
        config.write('\n[server]\nkeys = ["WB_KEY_ADA", "WB_KEY_BOB"]\n')
    env = {"WB_KEY_ADA": "ada-token", "WB_KEY_BOB": "bob-token"}
    port = free_port()
    url = f"http://127.0.0.1:{port}/workbench/run"
    run_cli("serve", "--port", str(port), "--background", env=env, check=True)
    try:
        ada, bob = ({"authorization": f"Bearer {t}"} for t in ("ada-token", "bob-token"))
        started = httpx.post(url, json={"name": "tiny", "input": "Say hi."}, headers=ada, timeout=120)
        result = json.loads(started.text.splitlines()[-1])
        thread_id = result["result"]["thread_id"]
        peeked = json.loads(
            httpx.post(url, json={"thread_id": thread_id}, headers=bob, timeout=60).text.splitlines()[-1]
        )
        assert peeked["error"]["status"] == 404 and "no workflow run" in peeked["error"]["message"]
        assert "Say hi" not in json.dumps(peeked)
        again = json.loads(
            httpx.post(url, json={"thread_id": thread_id}, headers=ada, timeout=120).text.splitlines()[-1]
        )
        assert again["result"]["thread_id"] == thread_id, again
    finally:
        run_cli("serve", "--stop", env=env)
    # the machine's user, in process, may resume any run
    resumed = run_cli("run", "--resume", thread_id, "--json")
    assert resumed.returncode == 0, resumed.stderr


def test_a_keyed_gateway_guards_its_doors(model_workspace):
    """The red-team review's low findings on a keyed gateway: /health names no workspace and
    /metrics needs the key (unless public_metrics); a non-ASCII token is a 401, not a 500; an
    address that sends ten wrong keys in a minute waits; a client that stops sending its body
    gets a 408; a configured web page gets CORS, another gets nothing."""
    with open(model_workspace.config_path, "a") as config:
        config.write(
            '\n[server]\nkeys = ["WB_KEY_ADA"]\nbody_timeout_s = 1.5\ncors_origins = ["http://localhost:3000"]\n'
        )
    env = {"WB_KEY_ADA": "ada-token"}
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    run_cli("serve", "--port", str(port), "--background", env=env, check=True)
    try:
        ada = {"authorization": "Bearer ada-token"}
        assert httpx.get(f"{url}/health").json() == {"status": "ok"}, "nothing about the workspace"
        assert httpx.get(f"{url}/metrics").status_code == 401
        assert "workbench_requests_total" in httpx.get(f"{url}/metrics", headers=ada).text
        weird = httpx.get(f"{url}/v1/models", headers={"authorization": "Bearer clé-ünïcode".encode()})
        assert weird.status_code == 401
        # CORS for the configured page only
        preflight = httpx.options(
            f"{url}/v1/models",
            headers={
                "origin": "http://localhost:3000",
                "access-control-request-method": "GET",
                "access-control-request-headers": "authorization",
            },
        )
        assert preflight.status_code == 200
        assert preflight.headers["access-control-allow-origin"] == "http://localhost:3000"
        listed = httpx.get(f"{url}/v1/models", headers={**ada, "origin": "http://localhost:3000"})
        assert listed.headers.get("access-control-allow-origin") == "http://localhost:3000"
        other = httpx.get(f"{url}/v1/models", headers={**ada, "origin": "http://evil.example"})
        assert "access-control-allow-origin" not in other.headers
        # a body that stops arriving
        with socket.create_connection(("127.0.0.1", port), timeout=10) as slow:
            slow.sendall(
                b"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer ada-token\r\n"
                b'Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{"model":'
            )
            reply = b""
            while b"request_timeout" not in reply and (piece := slow.recv(4096)):
                reply += piece
            reply = reply.decode()
        assert reply.startswith("HTTP/1.1 408") and "request_timeout" in reply, reply
        # ten wrong keys (the non-ASCII one above, nine more), then even the right one waits
        for _ in range(9):
            assert httpx.get(f"{url}/v1/models", headers={"authorization": "Bearer guess"}).status_code == 401
        throttled = httpx.get(f"{url}/v1/models", headers=ada)
        assert throttled.status_code == 429 and throttled.json()["error"]["code"] == "too_many_failed_keys"
        assert 1 <= int(throttled.headers["retry-after"]) <= 61
    finally:
        run_cli("serve", "--stop", env=env)
    with open(model_workspace.config_path, "a") as config:
        config.write("public_metrics = true\n")
    port = free_port()
    run_cli("serve", "--port", str(port), "--background", env=env, check=True)
    try:
        assert httpx.get(f"http://127.0.0.1:{port}/metrics").status_code == 200, "for a scraper without a key"
    finally:
        run_cli("serve", "--stop", env=env)
