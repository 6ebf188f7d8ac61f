"""The object every command receives: the workspace it names and the service, opened on first use
(so that `workbench --help` imports nothing heavy)."""

from __future__ import annotations

__all__ = ["Context"]


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
