"""workbench.toml: typed, validated, documented field by field.

A broken file gives one ConfigError that names the file and the key. Cloud API keys are never
stored here: an endpoint names the environment variable that holds its key.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from workbench.core.errors import ConfigError

__all__ = [
    "CloudEndpoint",
    "ModelEntry",
    "Price",
    "RouterConfig",
    "ServerConfig",
    "TracingConfig",
    "WorkbenchConfig",
    "load_config",
    "DEFAULT_CONFIG_TEXT",
]

CONFIG_FILE = "workbench.toml"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TracingConfig(_Strict):
    payload_sample_rate: float = Field(1.0, ge=0.0, le=1.0)
    """Share of traces whose payloads (messages, outputs) are stored; metadata is always stored."""
    redact_payloads: bool = False
    """Mask e-mail addresses, phone and card numbers and API-key-like secrets in stored payloads."""
    flush_interval_s: float = Field(0.5, gt=0.0, le=60.0)
    """How often a process hands its buffered spans to the store."""
    flush_max_spans: int = Field(5000, ge=1, le=1_000_000)
    """Flush earlier when this many spans are buffered."""


class ModelEntry(_Strict):
    path: str
    """GGUF file or sentence-transformers folder; relative paths are inside the workspace."""
    kind: Literal["gguf", "embedding", "reranker"] = "gguf"
    """'gguf' for llama.cpp models, 'embedding' for sentence-transformers folders, 'reranker'
    for sentence-transformers CrossEncoder folders."""
    source: str | None = None
    """Where `models pull` took it from: hf://OWNER/NAME/FILE."""
    revision: str | None = None
    """The Hub commit it was pulled at."""
    quant: str | None = None
    sha256: str | None = None
    """Of the (first) file, as the Hub publishes it and as checked after the download."""
    context_length: int | None = None
    """The context the model was trained for (its GGUF header)."""
    license: str | None = None
    chat_template: bool | None = None
    """Whether the GGUF carries a chat template of its own."""


class Price(_Strict):
    input_per_mtok: float = Field(0.0, ge=0.0)
    """USD per million input tokens."""
    output_per_mtok: float = Field(0.0, ge=0.0)
    """USD per million output tokens."""


class CloudEndpoint(_Strict):
    kind: Literal["openai", "anthropic"] = "openai"
    """Wire format: OpenAI-compatible chat completions or the Anthropic Messages API."""
    base_url: str
    """Base URL of the API, for example http://127.0.0.1:8000/v1."""
    api_key_env: str | None = None
    """Name of the environment variable that holds the key; the key itself is never stored."""
    models: list[str] = []
    """Models this endpoint serves, addressed as ENDPOINT/MODEL."""
    prices: dict[str, Price] = {}
    """Price per model, for the cost of each call."""

    @field_validator("api_key_env")
    @classmethod
    def _env_name(cls, value: str | None) -> str | None:
        if value is not None and not value.replace("_", "").isalnum():
            raise ValueError("must be the NAME of an environment variable, such as OPENAI_API_KEY")
        return value


class RouterConfig(_Strict):
    local: str | None = None
    """The local model asked first (alias or unique prefix)."""
    escalate_to: str | None = None
    """The cloud model (ENDPOINT/MODEL) that takes over when the local answer is not good enough."""
    local_timeout_s: float = Field(120.0, gt=0)
    """A local call running longer than this is cancelled and escalated."""
    daily_budget_usd: float | None = Field(None, ge=0)
    """Escalation is refused once cloud calls today have cost this much."""
    min_mean_logprob: float | None = Field(None, le=0)
    """Escalate when the local answer's mean token log-probability is under this (e.g. -1.5):
    the model was unsure of its own words."""


class DocumentsConfig(_Strict):
    embedding_model: str = "minilm"
    """Default embedding model of new collections (alias of a sentence-transformers folder)."""
    chunk_tokens: int = Field(200, ge=16, le=8192)
    """Chunk size in the embedding model's own tokens (capped at the model's maximum)."""
    chunk_overlap: int = Field(32, ge=0)
    """Tokens shared by consecutive windows of a long section."""
    max_file_mb: float = Field(50.0, gt=0)
    """Files larger than this are skipped, with the reason in the ingest report."""
    fusion: Literal["zscore", "rrf"] = "zscore"
    """How hybrid search combines its legs: z-scores of each leg's scores, weighted (measured
    best on a labelled set, see indexes/retrieval.py), or reciprocal-rank fusion."""
    fusion_vector_weight: float = Field(3.0, ge=0)
    """Weight of the vector leg against the full-text leg's 1 in hybrid search."""
    rrf_k: int = Field(60, ge=1)
    """The k of reciprocal-rank fusion (fusion = "rrf")."""
    rerank: str = "none"
    """Rerank search results by default: "none", "sections" (built in: heading paths, no extra
    model) or the alias of a registered reranker (a CrossEncoder). A collection's own setting
    (`workbench collections set NAME --rerank ...`) wins."""
    lancedb_uri: str = ""
    """Where the collections' tables live: empty for <workspace>/lancedb, or object storage
    (s3://bucket/prefix, gs://..., az://...). Their metadata stays in the workspace."""
    storage_options: dict[str, str] = {}
    """That object store's settings as LanceDB takes them (region, aws_endpoint, allow_http,
    ...). No secrets here: see storage_secrets."""
    storage_secrets: dict[str, str] = {}
    """Settings whose values are secrets, each by the NAME of the environment variable that
    holds it, e.g. {aws_access_key_id = "AWS_ACCESS_KEY_ID"}; the values are never stored."""
    commit_rows: int = Field(5_000, ge=1)
    """Ingest commits files whole, in batches of about this many chunks (each a LanceDB version):
    fewer, larger commits read faster; a killed ingest redoes at most one batch."""
    ann_index_rows: int = Field(8_000, ge=256)
    """Past this many chunks an ANN index (IVF_PQ) is built after ingest; below, exact scans are
    fast enough. Measured on 2 cores: an exact scan took 43 ms at 30,000 rows (~1.4 us a row,
    so ~10 ms near 8,000), IVF_PQ 3.5 ms (bench/bench_documents.py: 6.8 ms at 100,000)."""


class ServerConfig(_Strict):
    keys: list[str] = []
    """Names of environment variables, each holding one client's API key (never the keys
    themselves). With keys every request needs one; off loopback `serve` refuses to start
    without them. The key's name tags the request's trace."""
    requests_per_minute: int | None = Field(None, ge=1)
    """Requests a key may make per minute; over it the gateway answers 429 with Retry-After."""
    max_tokens: int = Field(4096, ge=1)
    """The largest max_tokens a request may ask for."""
    daily_budget_usd: dict[str, float] = {}
    """Cloud spend a key may make per day (local midnight to midnight), by key name (the
    variable's name in `keys`); past it the gateway answers 429 until midnight."""
    public_metrics: bool = False
    """Serve /metrics without a key (for a Prometheus scraper that sends none); by default it
    needs one when keys are set."""
    body_timeout_s: float = Field(30.0, gt=0)
    """The longest a client may pause while sending a request's body (a 408 after it)."""
    cors_origins: list[str] = []
    """Web pages (origins such as http://localhost:3000) allowed to call the gateway from a
    browser; none by default, and then every request a web page makes is refused."""


class RayConfig(_Strict):
    address: str = ""
    """The Ray cluster `--ray` runs on when no address is given: "host:6379" (its head node),
    "auto" (the cluster already started on this machine) or "ray://host:10001" (Ray Client).
    Empty: each `--ray` run starts a Ray of its own on this machine and stops it after."""
    embed_actors: int = Field(0, ge=0)
    """Embedding actors of a Ray ingest; 0: one per GPU of the cluster, or on a cluster without
    GPUs one per node."""
    model_replicas: int = Field(0, ge=0)
    """Actors per local model in a Ray eval, each with the model loaded, the cases dealt out among
    them; 0: the cluster's GPUs shared out among the run's local models (at least one each), or
    one per model on a cluster without GPUs."""


class McpServer(_Strict):
    """An MCP server whose tools workflows' agent nodes may call (allow-listed by name there, as
    SERVER__TOOL). Started for each call and stopped after (stdio), or reached at its URL."""

    command: str | None = None
    """The program that serves MCP on stdin/stdout (stdio transport)."""
    args: list[str] = []
    cwd: str | None = None
    """Its working folder (relative to the workspace); default: the workspace."""
    env: list[str] = []
    """Names of environment variables passed on to it, values read at call time and never
    stored; it gets these and the MCP SDK's plain set (HOME, PATH, ...) and nothing else."""
    url: str | None = None
    """A streamable-HTTP MCP endpoint (http(s)://host:port/mcp), instead of ``command``."""
    bearer_env: str | None = None
    """The environment variable holding a bearer token for ``url``."""
    timeout_s: float = Field(30.0, gt=0, le=600)
    """A call (starting the server included) that takes longer is a tool error."""

    @field_validator("url")
    @classmethod
    def _http(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("http://", "https://")):
            raise ValueError("url must start with http:// or https://")
        return value

    def model_post_init(self, _context) -> None:
        if (self.command is None) == (self.url is None):
            raise ValueError("give either command (a stdio server) or url (streamable HTTP)")


class WorkbenchConfig(_Strict):
    offline: bool = False
    """When true no connection to a non-loopback address is opened."""
    tracing: TracingConfig = TracingConfig()
    models: dict[str, ModelEntry] = {}
    """Registered models by alias, beyond the ones found in <workspace>/models."""
    cloud: dict[str, CloudEndpoint] = {}
    """Cloud endpoints by name."""
    router: RouterConfig = RouterConfig()
    """Local first, escalate when needed: `workbench ask -m auto`."""
    documents: DocumentsConfig = DocumentsConfig()
    """Ingest and retrieval defaults."""
    server: ServerConfig = ServerConfig()
    """`workbench serve`: the OpenAI-compatible gateway."""
    ray: RayConfig = RayConfig()
    """`workbench ingest --ray` and `workbench eval run --ray`."""
    mcp: dict[str, McpServer] = {}
    """MCP servers by name, their tools for agent nodes (`workbench tools list`)."""


DEFAULT_CONFIG_TEXT = """\
# Workbench configuration. Every key is optional; see README.md for all of them.
offline = false

[tracing]
# Share of traces whose payloads (prompts, outputs) are stored; metadata is always stored.
payload_sample_rate = 1.0
# Mask e-mail addresses, phone/card numbers and API-key-like secrets in stored payloads.
redact_payloads = false

# Register a model by alias (or run `workbench models register PATH`):
# [models.my-model]
# path = "/data/models/my-model.Q4_K_M.gguf"
# kind = "gguf"

# A cloud endpoint; the key is read from the environment variable named here, never stored:
# [cloud.openai]
# kind = "openai"
# base_url = "https://api.openai.com/v1"
# api_key_env = "OPENAI_API_KEY"
# models = ["gpt-4o-mini"]
# prices."gpt-4o-mini" = { input_per_mtok = 0.15, output_per_mtok = 0.60 }
"""

_SECRET_KEYS = {"api_key", "key", "token", "secret", "password"}


def load_config(path: Path) -> WorkbenchConfig:
    """Read and validate ``path``; a missing file means the defaults."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return WorkbenchConfig()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot be read ({exc.strerror})", "check its permissions") from None
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: is not UTF-8 text", "save the file as UTF-8") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: TOML syntax error: {exc}", "fix the line it names") from None
    _refuse_stored_secrets(path, data)
    try:
        config = WorkbenchConfig.model_validate(data)
    except ValidationError as exc:
        raise _config_error(path, exc) from None
    remember_secrets(config)
    return config


def remember_secrets(config: WorkbenchConfig) -> None:
    """Every secret the config names by variable, known to `workbench.core.secrets.scrub`."""
    from workbench.core.secrets import register_env

    names = [endpoint.api_key_env for endpoint in config.cloud.values()]
    names += [server.bearer_env for server in config.mcp.values()]
    # an MCP server's variables may be anything (a locale, a folder): those named as secrets are
    names += [
        name
        for server in config.mcp.values()
        for name in server.env
        if any(word in name.upper() for word in ("KEY", "TOKEN", "SECRET", "PASSWORD", "AUTH"))
    ]
    register_env([*names, *config.documents.storage_secrets.values(), *config.server.keys])


def _refuse_stored_secrets(path: Path, data: dict) -> None:
    for name, endpoint in (data.get("cloud") or {}).items():
        if isinstance(endpoint, dict):
            for key in _SECRET_KEYS & endpoint.keys():
                raise ConfigError(
                    f"{path}: cloud.{name}.{key}: keys are never stored in workbench.toml",
                    "remove it and set api_key_env to the name of the environment variable "
                    "that holds the key",
                )


def _config_error(path: Path, exc: ValidationError) -> ConfigError:
    errors = exc.errors()
    first = errors[0]
    key = ".".join(str(part) for part in first["loc"]) or "(top level)"
    message = first["msg"]
    if first["type"] == "extra_forbidden":
        message = "unknown key"
    more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
    return ConfigError(f"{path}: {key}: {message}{more}", "fix that key or remove it")


def edit_config(path: Path, edit) -> WorkbenchConfig:
    """Apply ``edit(document)`` to workbench.toml, keeping the user's comments and layout.

    The result is validated before it is written, and written by atomic rename, so a failed
    edit leaves the file as it was.
    """
    import os

    import tomlkit

    text = path.read_text(encoding="utf-8") if path.exists() else DEFAULT_CONFIG_TEXT
    try:
        document = tomlkit.parse(text)
    except tomlkit.exceptions.ParseError as exc:
        raise ConfigError(f"{path}: TOML syntax error: {exc}", "fix the line it names") from None
    edit(document)
    new_text = tomlkit.dumps(document)
    try:
        config = WorkbenchConfig.model_validate(tomllib.loads(new_text))
    except ValidationError as exc:
        raise _config_error(path, exc) from None
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(new_text, encoding="utf-8")
    os.replace(tmp, path)
    return config
