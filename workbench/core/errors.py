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
    "ModelNotFound",
    "ContextLengthExceeded",
    "UnsupportedParameter",
    "ModelFetchError",
    "CloudError",
    "QueryError",
    "CollectionError",
    "WorkflowError",
    "WorkflowNotFound",
    "RunStopped",
    "SpecError",
    "EvalError",
    "RegressionError",
    "PushError",
    "ResponseNotFound",
    "GatewayError",
    "OverBudget",
]


class WorkbenchError(Exception):
    """An error the user can act on. ``hint`` says what to do next."""

    title = "Workbench error"
    exit_code = 1
    # How the gateway answers it (OpenAI's error shape): the error's class decides, never its
    # wording. A subclass the gateway does not know stays a 500.
    http_status = 500
    error_type = "api_error"
    code: str | None = None
    param: str | None = None

    def __init__(self, message: str, hint: str | None = None) -> None:
        from workbench.core.secrets import scrub

        # An upstream's text inside a message may echo a key: take the known ones out here, so
        # no printer, span, eval result or gateway answer of this error can carry them.
        message, hint = scrub(message), (scrub(hint) if hint else hint)
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
    http_status = 400
    error_type = "invalid_request_error"


class UnsupportedParameter(UsageError):
    """A request parameter this model or route cannot honour: refused by name rather than
    ignored."""

    title = "Unsupported parameter"
    code = "unsupported_parameter"

    def __init__(self, param: str, message: str, hint: str | None = None) -> None:
        super().__init__(message, hint)
        self.param = param


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


class ModelNotFound(ModelError):
    """No model of this workspace (local alias, cloud model or `auto`) has the name."""

    title = "No such model"
    http_status = 404
    error_type = "invalid_request_error"
    code = "model_not_found"
    param = "model"


class ContextLengthExceeded(ModelError):
    """The prompt does not fit the model's context: refused before any token is generated."""

    title = "Prompt too long"
    http_status = 400
    error_type = "invalid_request_error"
    code = "context_length_exceeded"
    param = "messages"


class ModelFetchError(ModelError):
    title = "Model download failed"


class CloudError(ModelError):
    title = "Cloud model error"
    http_status = 502
    code = "upstream_error"


class QueryError(WorkbenchError):
    http_status = 400
    error_type = "invalid_request_error"
    title = "Query failed"
    exit_code = 6


class CollectionError(WorkbenchError):
    http_status = 400
    error_type = "invalid_request_error"
    title = "Collection problem"
    exit_code = 7


class WorkflowError(WorkbenchError):
    http_status = 400
    error_type = "invalid_request_error"
    title = "Workflow problem"
    exit_code = 8


class WorkflowNotFound(WorkflowError):
    """No workflow (or workflow run) of this workspace has the name."""

    title = "No such workflow"
    http_status = 404
    error_type = "invalid_request_error"
    code = "model_not_found"
    param = "model"


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
    http_status = 400
    error_type = "invalid_request_error"
    title = "Eval problem"
    exit_code = 9


class RegressionError(EvalError):
    """A gated eval found a metric below its baseline by more than the threshold."""

    title = "Regression"
    exit_code = 10


class ResponseNotFound(WorkbenchError):
    """A stored response of the gateway's Responses API that is not (or no longer) kept."""

    title = "No such response"
    http_status = 404
    error_type = "invalid_request_error"
    code = "response_not_found"

    def __init__(self, response_id: str, param: str | None = None) -> None:
        super().__init__(
            f"no stored response {response_id!r} in this workspace",
            "responses are kept only when created with store: true",
        )
        self.param = param


class GatewayError(WorkbenchError):
    """An error the workspace's running gateway answered a command with: its message, hint,
    title and exit code as the gateway's own error had them, so a command prints and exits
    the same whether it ran in process or through the gateway."""

    def __init__(self, message: str, hint: str | None, exit_code: int = 1, title: str | None = None) -> None:
        super().__init__(message, hint)
        self.exit_code = exit_code
        self.title = title or WorkbenchError.title


class OverBudget(WorkbenchError):
    """A gateway key's daily cloud budget would be passed: the gateway answers 429 until its
    midnight (``retry_after`` seconds)."""

    title = "Over budget"
    http_status = 429
    error_type = "insufficient_quota"
    code = "daily_budget_exceeded"

    def __init__(self, message: str, hint: str | None = None, retry_after: int = 60) -> None:
        super().__init__(message, hint)
        self.retry_after = retry_after
