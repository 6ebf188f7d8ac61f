"""One error hierarchy for everything a user can get wrong or run into.

The CLI turns a WorkbenchError into one line (``error: <message> -> <hint>``) and a non-zero
exit code; the app turns it into a notification. Anything that is not a WorkbenchError is a
bug and is reported as such.
"""

from __future__ import annotations

__all__ = [
    "WorkbenchError",
    "ConfigError",
    "WorkspaceError",
    "TraceStoreError",
    "ModelError",
    "ModelFetchError",
    "QueryError",
    "CollectionError",
    "WorkflowError",
    "EvalError",
    "RegressionError",
]


class WorkbenchError(Exception):
    """An error the user can act on. ``hint`` says what to do next."""

    title = "Workbench error"
    exit_code = 1

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def one_line(self) -> str:
        return f"{self.message} -> {self.hint}" if self.hint else self.message


class ConfigError(WorkbenchError):
    title = "Invalid configuration"
    exit_code = 2


class WorkspaceError(WorkbenchError):
    title = "Workspace problem"
    exit_code = 3


class TraceStoreError(WorkbenchError):
    title = "Trace store problem"
    exit_code = 4


class ModelError(WorkbenchError):
    title = "Model problem"
    exit_code = 5


class ModelFetchError(ModelError):
    title = "Model download failed"


class QueryError(WorkbenchError):
    title = "Query failed"
    exit_code = 6


class CollectionError(WorkbenchError):
    title = "Collection problem"
    exit_code = 7


class WorkflowError(WorkbenchError):
    title = "Workflow problem"
    exit_code = 8


class EvalError(WorkbenchError):
    title = "Eval problem"
    exit_code = 9


class RegressionError(EvalError):
    """A gated eval found a metric below its baseline by more than the threshold."""

    title = "Regression"
    exit_code = 10
