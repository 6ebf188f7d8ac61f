"""The model catalog: aliases, prefixes and missing files."""

from __future__ import annotations

import pytest

from local_models.catalog import list_models, register_model, resolve_model
from workbench.core.errors import ModelError, UsageError
from workbench.core.workspace import Workspace


def fake_gguf(path):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"GGUF" + b"\0" * 60)  # the magic is all registration checks
    return path


def test_register_resolve_and_missing_file(workspace):
    model = fake_gguf(workspace.root / "outside" / "Qwen-0.5B.Q8_0.gguf")
    info = register_model(workspace, str(model), alias="qwen")
    assert info.kind == "gguf"
    fresh = Workspace.open(workspace.root)  # config is read again from workbench.toml
    assert resolve_model(fresh, "qw").path == model  # a unique prefix is enough
    assert [m.alias for m in list_models(fresh)][-1] == "qwen"
    model.unlink()
    with pytest.raises(ModelError, match="is missing") as info:
        resolve_model(fresh, "qwen")
    assert "workbench.toml" in info.value.hint
    with pytest.raises(ModelError, match="SmolLM2-135M-Instruct.Q4_1.gguf is missing") as info:
        resolve_model(fresh, "smollm2")  # a default model not fetched yet
    assert info.value.hint == "run `workbench models fetch`"
    with pytest.raises(ModelError, match="no model named"):
        resolve_model(fresh, "mistral")


def test_ambiguous_prefix(workspace):
    register_model(workspace, str(fake_gguf(workspace.root / "a.gguf")), alias="smol-a")
    register_model(Workspace.open(workspace.root), str(fake_gguf(workspace.root / "b.gguf")), alias="smol-b")
    with pytest.raises(UsageError, match="'smo' matches smollm2, smol-a, smol-b"):
        resolve_model(Workspace.open(workspace.root), "smo")
    assert resolve_model(Workspace.open(workspace.root), "smol-b").alias == "smol-b"
