"""The workspace: one folder that holds all user state.

Chosen by ``--workspace DIR``, else ``WORKBENCH_HOME``, else a per-user default.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

from workbench.core.config import CONFIG_FILE, DEFAULT_CONFIG_TEXT, WorkbenchConfig, load_config
from workbench.core.errors import WorkspaceError

__all__ = ["Workspace", "resolve_workspace_path", "ENV_HOME"]

ENV_HOME = "WORKBENCH_HOME"
SUBDIRS = ("models", "lancedb", "workflows", "evals", "exports", "spool")


def resolve_workspace_path(explicit: str | os.PathLike[str] | None = None) -> Path:
    if explicit:
        return Path(explicit).expanduser().resolve()
    env = os.environ.get(ENV_HOME)
    if env:
        return Path(env).expanduser().resolve()
    import platformdirs

    return Path(platformdirs.user_data_dir("workbench", appauthor=False)).resolve()


@dataclass(frozen=True)
class Workspace:
    root: Path

    @classmethod
    def open(cls, explicit: str | os.PathLike[str] | None = None, create: bool = True) -> Workspace:
        """Open the workspace, creating it on first use; a path we cannot write is refused."""
        root = resolve_workspace_path(explicit)
        workspace = cls(root)
        if create:
            workspace.ensure_layout()
        elif not root.is_dir():
            raise WorkspaceError(f"no workspace at {root}", "run `workbench init` or pass --workspace DIR")
        return workspace

    def ensure_layout(self) -> bool:
        """Create the folders and a commented workbench.toml; True if anything was created."""
        created = False
        try:
            if self.root.exists() and not self.root.is_dir():
                raise WorkspaceError(
                    f"{self.root} is a file, not a workspace folder",
                    "pass --workspace with a folder path",
                )
            for sub in ("", *SUBDIRS):
                path = self.root / sub
                if not path.is_dir():
                    path.mkdir(parents=True, exist_ok=True)
                    created = True
            if not self.config_path.exists():
                self.config_path.write_text(DEFAULT_CONFIG_TEXT, encoding="utf-8")
                created = True
            probe = self.root / ".write-probe"
            probe.write_bytes(b"")
            probe.unlink()
        except OSError as exc:
            raise WorkspaceError(
                f"cannot write to the workspace {self.root} ({exc.strerror or exc})",
                f"choose a writable folder with --workspace DIR or {ENV_HOME}",
            ) from None
        return created

    @property
    def config_path(self) -> Path:
        return self.root / CONFIG_FILE

    @cached_property
    def config(self) -> WorkbenchConfig:
        return load_config(self.config_path)

    def edit_config(self, edit) -> WorkbenchConfig:
        """Edit workbench.toml (core.config.edit_config) and hold what it now says: a model
        registered in the app is then there for its next chat, not after a restart."""
        from workbench.core.config import edit_config

        self.__dict__["config"] = edit_config(self.config_path, edit)
        return self.config

    @property
    def models_dir(self) -> Path:
        return self.root / "models"

    @property
    def lancedb_dir(self) -> Path:
        return self.root / "lancedb"

    @property
    def traces_path(self) -> Path:
        return self.root / "traces.duckdb"

    @property
    def spool_dir(self) -> Path:
        return self.root / "spool"

    @property
    def workflows_dir(self) -> Path:
        return self.root / "workflows"

    @property
    def evals_dir(self) -> Path:
        return self.root / "evals"

    @property
    def exports_dir(self) -> Path:
        return self.root / "exports"
