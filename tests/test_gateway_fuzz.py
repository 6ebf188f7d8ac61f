"""Whatever a client sends the gateway, it answers in OpenAI's error shape with a 4xx, never a
500 or a traceback: request-like JSON with wrong types, values and names in the right places,
posted to every route of a real app over a real (model-less) workspace."""

from __future__ import annotations

import json
import logging

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from starlette.testclient import TestClient

from workbench.server.app import create_app
from workbench.services import Service

FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])

scalars = st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats() | st.text(max_size=12)
values = st.recursive(
    scalars,
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=8), children, max_size=3)
    ),
    max_leaves=12,
)
models = st.sampled_from(["nope", "workflow/nope", "remote/x", "auto", "minilm", "smollm2", ""])
text = st.text(max_size=20)
message = st.fixed_dictionaries(
    {"role": st.sampled_from(["system", "developer", "user", "assistant"]), "content": text},
    optional={"name": values},
)
# Each parameter: mostly a plausible value, sometimes anything at all.
plausible = {
    "max_tokens": st.integers(-2, 5000),
    "max_output_tokens": st.integers(-2, 5000),
    "temperature": st.floats(-1, 3),
    "top_p": st.floats(-0.5, 1.5),
    "n": st.integers(0, 10),
    "stream": st.booleans(),
    "stream_options": st.fixed_dictionaries({"include_usage": st.booleans()}),
    "stop": text | st.lists(text, max_size=6),
    "seed": st.integers(-(2**70), 2**70),
    "logprobs": st.booleans() | st.integers(-1, 30),
    "top_logprobs": st.integers(-1, 30),
    "logit_bias": st.dictionaries(
        st.sampled_from(["1", "x", "99999999999"]), st.floats(-200, 200), max_size=2
    ),
    "presence_penalty": st.floats(-3, 3),
    "response_format": st.fixed_dictionaries(
        {"type": st.sampled_from(["text", "json_object", "json_schema", "xml"])},
        optional={"json_schema": st.fixed_dictionaries({"schema": values})},
    ),
    "text": st.fixed_dictionaries(
        {"format": st.fixed_dictionaries({"type": st.sampled_from(["text", "json_schema"])})}
    ),
    "tools": st.lists(values, max_size=2),
    "echo": st.booleans(),
    "dimensions": st.integers(-1, 1000),
    "encoding_format": st.sampled_from(["float", "base64", "hex"]),
    "previous_response_id": st.sampled_from(["resp_" + "0" * 32, "../../etc/passwd", ""]),
    "instructions": text,
    "truncate": st.booleans(),
    "top_n": st.integers(-1, 5),
}
optional = {name: strategy | values for name, strategy in plausible.items()}


def body(**required):
    return st.fixed_dictionaries({"model": models, **required}, optional=optional)


documents = st.lists(text, min_size=1, max_size=3) | st.lists(
    st.fixed_dictionaries({"text": text}), max_size=2
)
requests = st.one_of(
    st.tuples(st.just("/v1/chat/completions"), body(messages=st.lists(message, min_size=1, max_size=3))),
    st.tuples(st.just("/v1/completions"), body(prompt=text | st.lists(st.integers(-5, 2**40), max_size=4))),
    st.tuples(st.just("/v1/responses"), body(input=text | st.lists(message, min_size=1, max_size=2))),
    st.tuples(
        st.just("/v1/embeddings"),
        body(input=text | st.lists(text, max_size=3) | st.lists(st.integers(-5, 10**6))),
    ),
    st.tuples(st.just("/v1/rerank"), body(query=text, documents=documents)),
    st.tuples(
        st.just("/workbench/search"),
        st.fixed_dictionaries({"collection": text, "query": text}, optional={"k": values, "mode": values}),
    ),
    st.tuples(
        st.just("/workbench/compare"),
        st.fixed_dictionaries({"models": st.lists(models, min_size=2, max_size=4), "prompt": text}),
    ),
    # anything at all, anywhere
    st.tuples(
        st.sampled_from(
            ["/v1/chat/completions", "/v1/completions", "/v1/responses", "/v1/embeddings", "/v1/rerank"]
        ),
        values,
    ),
)


@pytest.fixture(scope="module")
def app_client(tmp_path_factory):
    service = Service(tmp_path_factory.mktemp("fuzz-workspace"))
    with TestClient(create_app(service), raise_server_exceptions=False) as client:
        yield client
    service.close()


@FUZZ
@given(request=requests)
def test_no_request_gets_a_500(app_client, caplog, request):
    route, body = request
    caplog.set_level(logging.ERROR)
    raw = json.dumps(body, allow_nan=True)
    answer = app_client.post(route, content=raw, headers={"content-type": "application/json"})
    if route == "/workbench/compare" and answer.status_code == 200:
        lines = [json.loads(line) for line in answer.text.splitlines()]
        assert "result" in lines[-1] or lines[-1]["error"]["status"] < 500, lines[-1]
        return
    assert 400 <= answer.status_code < 500, (route, raw[:300], answer.text[:300])
    error = answer.json()["error"]
    assert {"message", "type", "param", "code"} <= set(error), error
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR], "nothing in the log"
