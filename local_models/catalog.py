"""The workspace's models: the default ones fetched into <workspace>/models and any GGUF file or
sentence-transformers folder registered by path in workbench.toml."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from local_models.fetch import DEFAULT_MODELS
from workbench.core.errors import ModelError, ModelNotFound, UsageError
from workbench.core.workspace import Workspace

__all__ = ["ModelInfo", "list_models", "register_model", "resolve_model"]

GGUF_MAGIC = b"GGUF"


@dataclass(frozen=True)
class ModelInfo:
    alias: str
    kind: str
    path: Path
    present: bool
    size_bytes: int
    source: str  # "default" or "registered"


def _size(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    if path.is_dir():
        return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())
    return 0


def _resolve(workspace: Workspace, raw: str) -> Path:
    path = Path(raw).expanduser()
    return path if path.is_absolute() else workspace.root / path


def list_models(workspace: Workspace) -> list[ModelInfo]:
    models = []
    for spec in DEFAULT_MODELS:
        path = workspace.models_dir / spec.target
        models.append(ModelInfo(spec.alias, spec.kind, path, path.exists(), _size(path), "default"))
    for alias, entry in workspace.config.models.items():
        path = _resolve(workspace, entry.path)
        models.append(ModelInfo(alias, entry.kind, path, path.exists(), _size(path), "registered"))
    return models


def resolve_model(workspace: Workspace, name: str) -> ModelInfo:
    """A model by alias or by a unique prefix of its alias or file name."""
    models = list_models(workspace)
    exact = [m for m in models if m.alias == name]
    matches = exact or [m for m in models if m.alias.startswith(name) or m.path.name.startswith(name)]
    if not matches:
        raise ModelNotFound(f"no model named '{name}'", "see `workbench models list`")
    if len(matches) > 1:
        raise UsageError(f"'{name}' matches {', '.join(m.alias for m in matches)}", "give the full alias")
    model = matches[0]
    if not model.present:
        hint = (
            "run `workbench models fetch`"
            if model.source == "default"
            else f"fix its path in {workspace.config_path} or register it again"
        )
        raise ModelNotFound(f"model file {model.path} is missing", hint)
    return model


KINDS = ("gguf", "embedding", "reranker")


def _is_cross_encoder(path: Path) -> bool:
    """A transformers sequence-classification model (what sentence-transformers' CrossEncoder
    loads), told by the architecture its config.json names."""
    import json

    try:
        config = json.loads((path / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return any(a.endswith("ForSequenceClassification") for a in config.get("architectures") or [])


def detect_kind(path: Path, kind: str | None = None) -> str:
    """The kind of model at ``path`` (checked against ``kind`` when the user names one)."""
    if kind == "reranker":
        if path.is_dir() and _is_cross_encoder(path):
            return kind
        raise ModelError(
            f"{path} is not a cross-encoder folder (its config.json names no "
            "...ForSequenceClassification architecture)",
            "point at the folder of a sentence-transformers CrossEncoder (config.json, weights, tokenizer)",
        )
    if kind not in (None, "gguf", "embedding"):
        raise ModelError(f"unknown model kind '{kind}'", f"use one of {', '.join(KINDS)}")
    if path.is_dir() and kind is None and _is_cross_encoder(path):
        return "reranker"
    if path.is_file():
        with path.open("rb") as handle:
            if handle.read(4) == GGUF_MAGIC:
                return "gguf"
        raise ModelError(
            f"{path} is not a GGUF file (no GGUF magic bytes)",
            "register a .gguf model file or a sentence-transformers folder",
        )
    if path.is_dir():
        if (path / "modules.json").exists() or (path / "config_sentence_transformers.json").exists():
            return "embedding"
        raise ModelError(
            f"{path} is not a sentence-transformers model folder (no modules.json)",
            "point at the folder that holds modules.json",
        )
    raise ModelError(f"{path} does not exist", "check the path")


def register_model(
    workspace: Workspace,
    raw_path: str,
    alias: str | None = None,
    kind: str | None = None,
    record: dict | None = None,
) -> ModelInfo:
    path = Path(raw_path).expanduser().resolve()
    kind = detect_kind(path, kind)
    alias = alias or re.sub(r"[^a-z0-9._-]+", "-", path.name.lower().removesuffix(".gguf")).strip("-")
    if any(m.alias == alias for m in list_models(workspace)):
        raise ModelError(f"the alias '{alias}' is taken", "choose another with --alias")

    def add(document):
        import tomlkit

        if "models" not in document:
            document["models"] = tomlkit.table(is_super_table=True)
        entry = tomlkit.inline_table()
        entry.update({"path": str(path), "kind": kind})
        entry.update({key: value for key, value in (record or {}).items() if value not in (None, "")})
        document["models"][alias] = entry

    workspace.edit_config(add)
    return ModelInfo(alias, kind, path, True, _size(path), "registered")
