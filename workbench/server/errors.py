"""Errors as the gateway answers them: OpenAI's error shape, with the HTTP status, ``type``,
``code`` and ``param`` carried by the exception (never chosen from its wording)."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from workbench.core.errors import WorkbenchError

if TYPE_CHECKING:  # neither is imported at run time: the CLI's gateway client imports this module
    from pydantic import ValidationError
    from starlette.responses import JSONResponse

__all__ = [
    "ApiError",
    "error_body",
    "error_response",
    "from_exception",
    "from_validation",
    "to_workbench_error",
]

log = logging.getLogger("workbench.server")


class ApiError(Exception):
    """A request the gateway answers with an HTTP error in OpenAI's format."""

    def __init__(
        self,
        status: int,
        message: str,
        kind: str = "invalid_request_error",
        code: str | None = None,
        param: str | None = None,
        headers: dict[str, str] | None = None,
        detail: dict[str, Any] | None = None,
    ) -> None:
        from workbench.core.secrets import scrub, scrub_value

        message, detail = scrub(message), scrub_value(detail)  # whatever built it, no key goes out
        super().__init__(message)
        self.status, self.message, self.kind, self.code, self.param = status, message, kind, code, param
        self.headers = headers or {}
        self.detail = detail

    def body(self) -> dict[str, Any]:
        body = error_body(self.message, self.kind, self.code, self.param)
        if self.detail is not None:
            # Beyond OpenAI's fields: what the CLI needs to print and exit as it would in process.
            body["error"]["workbench"] = self.detail
        return body


def error_body(message: str, kind: str, code: str | None = None, param: str | None = None) -> dict[str, Any]:
    return {"error": {"message": message, "type": kind, "param": param, "code": code}}


def error_response(exc: ApiError, headers: dict[str, str] | None = None) -> JSONResponse:
    from starlette.responses import JSONResponse

    return JSONResponse(exc.body(), exc.status, headers={**(headers or {}), **exc.headers})


def from_exception(exc: BaseException) -> ApiError:
    """Any failure of a request as the ApiError it is answered with. An exception that is not
    ours is a bug: a 500 that says so, its traceback in the gateway's log only."""
    if isinstance(exc, ApiError):
        return exc
    if isinstance(exc, WorkbenchError):
        detail = {"message": exc.message, "hint": exc.hint, "title": exc.title, "exit_code": exc.exit_code}
        retry = getattr(exc, "retry_after", None)  # OverBudget: when the key may try again
        headers = {"retry-after": str(retry)} if retry is not None else None
        return ApiError(exc.http_status, exc.one_line(), exc.error_type, exc.code, exc.param, headers, detail)
    log.error("internal error answering a request", exc_info=exc)
    return ApiError(500, f"internal error ({type(exc).__name__}); see the gateway's log", "api_error")


def to_workbench_error(error: dict[str, Any], status: int) -> WorkbenchError:
    """An error object of the gateway's answer as the error the CLI prints and exits with."""
    from workbench.core.errors import GatewayError, UsageError

    detail = error.get("workbench")
    if isinstance(detail, dict):
        return GatewayError(detail["message"], detail.get("hint"), detail["exit_code"], detail.get("title"))
    message = str(error.get("message") or f"the gateway answered {status}")
    if 400 <= status < 500:  # a request the gateway refused (its validation, its keys)
        return UsageError(message, "check the command's arguments")
    return GatewayError(message, "see the gateway's log in <workspace>/server.log", 1)


def from_validation(exc: ValidationError, prefix: str = "") -> ApiError:
    """A request that does not fit its protocol model: 400 naming the first wrong parameter."""
    first = exc.errors(include_url=False)[0]
    param = ".".join(str(part) for part in (prefix, *first["loc"]) if part != "")
    message = first["msg"].removeprefix("Value error, ")
    if first["type"] == "missing":
        message = f"`{param}` is required"
    else:
        message = f"`{param}`: {message}"
    return ApiError(400, message, code="invalid_value" if first["type"] != "missing" else None, param=param)
