"""The gateway's wire format: every request it takes as a pydantic model, validated in one place
(`parse`), one module per kind of route. Unknown fields are accepted, as OpenAI accepts them; a
known parameter the gateway cannot honour is refused by name (UnsupportedParameter), never
dropped. protocol.workbench holds the types the CLI's two paths share."""

from __future__ import annotations

from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, ValidationError

from workbench.core.errors import UnsupportedParameter
from workbench.server.errors import ApiError, from_validation

__all__ = ["parse", "Open", "refuse", "text_of", "check_parts", "check_cap"]

T = TypeVar("T", bound=BaseModel)


def parse(model: type[T], body: Any) -> T:
    """``body`` (parsed JSON) as ``model``, or a 400 naming the first parameter that is wrong."""
    if not isinstance(body, dict):
        raise ApiError(400, "the body must be a JSON object")
    try:
        return model.model_validate(body)
    except ValidationError as exc:
        raise from_validation(exc) from None


class Open(BaseModel):
    """A request model that takes fields it does not know, as OpenAI does."""

    model_config = ConfigDict(extra="allow", populate_by_name=True)


def refuse(request: BaseModel, *names: str, why: str) -> None:
    """Refuse each of ``names`` the client set to something other than nothing."""
    extra = request.model_extra or {}
    for name in names:
        value = getattr(request, name, None) if name in type(request).model_fields else extra.get(name)
        if value not in (None, [], {}, False):
            raise UnsupportedParameter(name, f"`{name}` is not supported: {why}")


def text_of(content: str | list[dict[str, Any]] | None, part_types: tuple[str, ...]) -> str:
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    return "".join(str(part.get("text", "")) for part in content if part.get("type") in part_types)


def check_parts(parts: list[dict[str, Any]] | str | None, allowed: tuple[str, ...]):
    if isinstance(parts, list):
        for part in parts:
            if part.get("type") not in allowed or not isinstance(part.get("text"), str):
                raise ValueError(
                    f"content parts of type {part.get('type')!r} are not taken "
                    f"(this gateway's models read text: {', '.join(allowed)})"
                )
    return parts


def check_cap(asked: int, limit: int, param: str = "max_tokens") -> None:
    """The server's `[server] max_tokens` cap, the same on every route that generates."""
    if asked > limit:
        raise ApiError(
            400,
            f"`{param}` {asked} is over this server's limit of {limit}",
            param=param,
            code="max_tokens_too_large",
        )
