"""The litellm export served by a real LiteLLM proxy (1.108.7 in its own virtualenv, on loopback;
not the compromised 1.82.7, 1.82.8 or 1.107.x): the official openai client gets the local model's
answer through it, streamed and not, the same text llama.cpp's server gives directly; with the
local server stopped, the proxy falls back to the cloud model the workflow escalates to (our
loopback cloud, OpenAI's wire format). The README's lines are run as written."""

from __future__ import annotations

import re

import openai
import pytest
import yaml

from tests.conftest import llama_server, run_cli
from tests.engines import Engine, engine_venv
from tests.fake_cloud import ANSWER
from tests.test_server import free_port

LITELLM = "litellm[proxy]==1.108.7"
MASTER = "sk-litellm-test-master-key"
QUESTION = [{"role": "user", "content": "Name one colour of the rainbow."}]


@pytest.fixture(scope="module")
def litellm_bin():
    return engine_venv("litellm", [LITELLM]).parent / "litellm"


def readme_environment(readme: str, values: dict[str, str]) -> dict[str, str]:
    """The `export NAME=...` lines of the README, with this test's values for the placeholders;
    a line the proxy needs but the README does not export would be missed here."""
    exported = dict(re.findall(r"^\s*export (\w+)=(\S*)", readme, re.MULTILINE))
    assert set(values) <= set(exported), f"the README exports {sorted(exported)}"
    return {name: values[name] for name in exported if name in values}


def test_the_litellm_proxy_serves_the_export_and_falls_back(
    model_workspace, fetched_models, cloud, tmp_path, litellm_bin
):
    model_workspace.config_path.write_text(
        f'[cloud.remote]\nbase_url = "{cloud.url}"\napi_key_env = "REMOTE_KEY"\nmodels = ["big"]\n'
        '[router]\nlocal = "smollm2"\nescalate_to = "remote/big"\n'
    )
    corpus = tmp_path / "notes"
    corpus.mkdir()
    (corpus / "sky.md").write_text("# Sky\n\nThe sky is blue on a clear day.\n")
    run_cli("ingest", str(corpus), "-c", "demo", check=True, timeout=300)
    run_cli("workflows", "new", "rag", "--from", "rag", check=True)
    out = tmp_path / "export"
    run_cli("export", "rag", "--target", "litellm", "--out", str(out), check=True)
    config = yaml.safe_load((out / "litellm.yaml").read_text())
    assert config["litellm_settings"]["fallbacks"] == [{"smollm2": ["remote/big"]}]
    readme = (out / "README.md").read_text()
    assert "falls back in the escalation order: smollm2 -> remote/big" in readme

    port = free_port()
    model = fetched_models / "SmolLM2-135M-Instruct.Q4_1.gguf"
    with llama_server(model, "smollm2") as local:
        env = readme_environment(
            readme, {"LITELLM_MASTER_KEY": MASTER, "SMOLLM2_BASE_URL": local, "REMOTE_KEY": "sk-remote-test"}
        )
        command = re.search(r"^\s*(litellm --config .*)$", readme, re.MULTILINE)[1].split()
        assert command[command.index("--host") + 1] == "127.0.0.1"
        command[command.index("--port") + 1] = str(port)
        proxy = Engine(
            [str(litellm_bin), *command[1:]],
            {**env, "LITELLM_TELEMETRY": "False"},
            f"http://127.0.0.1:{port}/health/liveliness",
            tmp_path / "litellm.log",
            cwd=out,
        )
        try:
            client = openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key=MASTER, max_retries=0)
            direct = openai.OpenAI(base_url=local, api_key="none")
            settings = {"temperature": 0, "max_tokens": 16, "seed": 0}
            expected = direct.chat.completions.create(model="smollm2", messages=QUESTION, **settings)
            answer = client.chat.completions.create(model="smollm2", messages=QUESTION, **settings)
            assert answer.choices[0].message.content == expected.choices[0].message.content
            stream = client.chat.completions.create(
                model="smollm2", messages=QUESTION, stream=True, **settings
            )
            streamed = "".join(chunk.choices[0].delta.content or "" for chunk in stream if chunk.choices)
            assert streamed == expected.choices[0].message.content
            assert not cloud.requests, "the cloud was not asked while the local model answered"
        except BaseException:
            proxy.stop()
            raise
    # The local server is gone: the proxy falls back to the cloud model.
    try:
        stream = client.chat.completions.with_raw_response.create(
            model="smollm2", messages=QUESTION, stream=True, **settings
        )
        text = "".join(chunk.choices[0].delta.content or "" for chunk in stream.parse() if chunk.choices)
        assert text == "".join(ANSWER)
        assert cloud.requests and cloud.requests[-1]["body"]["model"] == "big"
        assert int(stream.headers.get("x-litellm-attempted-fallbacks", "0")) >= 1, dict(stream.headers)
        print(
            f"litellm: local answer {expected.choices[0].message.content!r}; after the local server stopped: "
            f"{text!r}, x-litellm-attempted-fallbacks {stream.headers['x-litellm-attempted-fallbacks']}"
        )
    finally:
        proxy.stop()
