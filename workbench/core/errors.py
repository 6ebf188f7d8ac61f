"""One error hierarchy for everything a user can get wrong or run into.

The CLI turns a WorkbenchError into one line (``error: <message> -> <hint>``) and a non-zero
exit code; the app turns it into a notification. Anything that is not a WorkbenchError is a
bug and is reported as such. Every error a user can see is defined here, whichever package
raises it; exit codes are part of the CLI's interface (scripts and CI test them).
"""

from __future__ import annotations

__all__ = [
    "WorkbenchError",
    "UsageError",
    "ConfigError",
    "WorkspaceError",
    "TraceStoreError",
    "ModelError",
    "ModelFetchError",
    "CloudError",
    "QueryError",
    "CollectionError",
    "WorkflowError",
    "RunStopped",
    "SpecError",
    "EvalError",
    "RegressionError",
    "PushError",
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


class UsageError(WorkbenchError):
    """The command or call was given something it cannot take (a wrong count of models, a
    file that is not JSON): fix the arguments and run it again."""

    title = "Usage error"
    exit_code = 64  # EX_USAGE of sysexits.h


class PushError(WorkbenchError):
    """An OTLP backend refused pushed traces or could not be reached."""

    title = "Push failed"
    exit_code = 1


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


class CloudError(ModelError):
    title = "Cloud model error"


class QueryError(WorkbenchError):
    title = "Query failed"
    exit_code = 6


class CollectionError(WorkbenchError):
    title = "Collection problem"
    exit_code = 7


class WorkflowError(WorkbenchError):
    title = "Workflow problem"
    exit_code = 8


class RunStopped(WorkflowError):
    """A workflow run stopped on request (its client went away, ctrl+s, ctrl+c): what its
    finished nodes wrote is checkpointed, and a resume runs the rest."""

    title = "Workflow run stopped"
    exit_code = 130  # as an interrupted command's


class SpecError(WorkflowError):
    """A workflow spec with problems, each naming its file and line (agents.spec.Problem)."""

    title = "Invalid workflow spec"

    def __init__(self, problems: list) -> None:
        self.problems = problems
        first = problems[0].file if problems else "spec"
        count = f"{len(problems)} problem{'s' * (len(problems) != 1)}"
        message = f"{first} has {count}:\n" + "\n".join(f"  {p}" for p in problems)
        super().__init__(message, "fix the spec, then run `workbench workflows validate NAME`")


class EvalError(WorkbenchError):
    title = "Eval problem"
    exit_code = 9


class RegressionError(EvalError):
    """A gated eval found a metric below its baseline by more than the threshold."""

    title = "Regression"
    exit_code = 10
