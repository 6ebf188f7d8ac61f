"""What every export target works from: the models a workflow uses and where they live, and the
Writer that confines every file to the export folder."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agents.spec import AgentNode, EscalateNode, GenerateNode, GradeNode, RouteNode, Spec
from indexes.fusion import Fusion
from workbench.core.errors import WorkflowError

__all__ = ["ExportContext", "ModelRef", "Writer", "models_used"]


@dataclass
class ModelRef:
    """A model as the workflow names it and where it really lives."""

    name: str  # as in the spec: `smollm2`, `remote/big`
    kind: str  # local | cloud
    path: str | None = None  # local: the GGUF file
    endpoint: str | None = None  # cloud: endpoint name in workbench.toml
    provider: str | None = None  # cloud: openai | anthropic
    base_url: str | None = None
    remote_model: str | None = None
    api_key_env: str | None = None


@dataclass
class ExportContext:
    workspace: Path
    models: dict[str, ModelRef]
    escalation: list[str]  # cloud models in the order to fall back to
    router_local: str | None
    collections: dict[str, dict[str, Any]] = field(default_factory=dict)  # name -> {"embedding_model": path}
    fusion: Fusion = field(default_factory=Fusion)  # hybrid search's, from [documents]
    spec_text: str = ""  # the spec's YAML as written (the langgraph export ships it)
    mcp: dict[str, dict[str, Any]] = field(default_factory=dict)  # [mcp.NAME] settings by name


class Writer:
    def __init__(self, root: Path) -> None:
        self.root = root.resolve()
        self.written: list[Path] = []

    def sub(self, folder: str) -> Writer:
        """A Writer for a folder inside this one, recording into the same list."""
        child = Writer(self.root / folder)
        if not child.root.is_relative_to(self.root):
            raise WorkflowError(
                f"refusing the folder {folder!r}", "this is a bug in the export; please report it"
            )
        child.written = self.written
        return child

    def write(self, relative: str, text: str, mode: int | None = None) -> Path:
        target = (self.root / relative).resolve()
        if not target.is_relative_to(self.root):
            raise WorkflowError(
                f"refusing to write {relative!r}: it is outside {self.root}",
                "this is a bug in the export; please report it",
            )
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".{target.name}.tmp")
        tmp.write_text(text, encoding="utf-8")
        if mode is not None:
            tmp.chmod(mode)
        tmp.replace(target)
        self.written.append(target)
        return target


def models_used(spec: Spec, router_local: str | None, escalate_to: str | None) -> list[str]:
    """Every model name a run of ``spec`` may call, in spec order; `auto` expands to the router's."""
    names: list[str] = []
    for node in spec.nodes.values():
        if isinstance(node, GenerateNode | GradeNode | AgentNode):
            names.append(node.model)
        elif isinstance(node, RouteNode) and node.classify:
            names.append(node.classify.model)
        elif isinstance(node, EscalateNode):
            names.append(node.model or escalate_to or "")
    expanded = []
    for name in names:
        for real in [router_local, escalate_to] if name == "auto" else [name]:
            if real and real not in expanded:
                expanded.append(real)
    return expanded
