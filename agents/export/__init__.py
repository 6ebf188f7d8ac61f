"""Export a workflow to production configs: langgraph, litellm, vllm, otel.

Every file goes through ``Writer``, which refuses any path that resolves outside the export
folder, so neither a workflow name nor a model file name can write elsewhere.
"""

from __future__ import annotations

from pathlib import Path

from agents.export.context import ExportContext, ModelRef, Writer, models_used
from agents.spec import Spec
from workbench.core.errors import WorkflowError

__all__ = ["TARGETS", "ExportContext", "ModelRef", "Writer", "export", "models_used"]

TARGETS = ("langgraph", "litellm", "vllm", "otel")


def export(spec: Spec, spec_text: str, target: str, out: Path, context: ExportContext) -> list[Path]:
    if target not in TARGETS:
        raise WorkflowError(f"unknown export target {target!r}", f"use one of {', '.join(TARGETS)}")
    import dataclasses

    context = dataclasses.replace(context, spec_text=spec_text)
    writer = Writer(out)
    if target == "langgraph":
        from agents.export.langgraph import write_langgraph

        write_langgraph(spec, spec_text, context, writer)
    else:
        from agents.export import configs

        getattr(configs, f"write_{target}")(spec, context, writer)
    return writer.written
