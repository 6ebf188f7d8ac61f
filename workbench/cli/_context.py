"""The object every command receives: the workspace it names and the service, opened on first use
(so that `workbench --help` imports nothing heavy)."""

from __future__ import annotations

import click

__all__ = ["Context", "ray_option"]


def ray_option(what: str):
    """`--ray [ADDRESS]` of ingest and eval run: "" when given alone, None when not given."""
    return click.option(
        "--ray",
        "ray",
        is_flag=False,
        flag_value="",
        default=None,
        metavar="[ADDRESS]",
        help=f"{what} on a Ray cluster (ADDRESS, else [ray] address, else a Ray started for this run).",
    )


class Context:
    def __init__(self, workspace: str | None, offline: bool) -> None:
        self.workspace = workspace
        self.offline = offline
        self._service = None

    @property
    def service(self):
        if self._service is None:
            from workbench.services import Service

            self._service = Service(self.workspace, offline=self.offline)
        return self._service

    def trace_note(self, trace_id: str | None) -> str:
        """ "trace ID" once the trace's spans are safely written; else why they are not, so no
        id is printed for a trace that will never be found. A command run through the gateway
        has its spans written by the gateway."""
        if not trace_id:
            return "no trace"
        failed = self._service.keep_traces() if self._service is not None else None
        if failed:
            return f"trace NOT stored: {failed}"
        return f"trace {trace_id[:16]}"
