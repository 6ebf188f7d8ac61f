"""What guards every route before its handler runs: the API key and its rate (every route
unless listed public), and the request's size, read no further than the limit. A handler finds
the key's name in ``request.state.key``."""

from __future__ import annotations

import asyncio
import json
from typing import Any
from urllib.parse import urlsplit

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from workbench.server.errors import ApiError
from workbench.server.limits import Keys

__all__ = ["KeyGuard", "read_json", "MAX_REQUEST_BYTES", "PUBLIC_ROUTES"]

MAX_REQUEST_BYTES = 1_000_000
# /health tells the CLI a gateway runs here; it says nothing else when keys are set.
PUBLIC_ROUTES = frozenset({"/health"})


_LOOPBACK_NAMES = frozenset({"127.0.0.1", "localhost", "::1"})


def _hostname(value: str) -> str:
    """The host of a Host header (host:port) or an Origin (a URL), lowercased; "" if unreadable."""
    try:
        return (urlsplit(value if "://" in value else f"//{value}").hostname or "").lower()
    except ValueError:
        return ""


class KeyGuard:
    """ASGI middleware: a request without a valid key (when the gateway has keys) or over its
    key's rate is answered here; a declared body over the limit is refused unread (413); a POST
    that is not JSON is refused (415). A keyless gateway (loopback only) answers only requests
    addressed to loopback from no web page: a page the user opens could otherwise drive it (a
    cross-site "simple" request: text/plain, no preflight) or read its answers (DNS rebinding,
    which sends another Host)."""

    def __init__(
        self,
        app: ASGIApp,
        keys: Keys,
        public: frozenset[str] = PUBLIC_ROUTES,
        loopback_only: bool = False,
        origins: frozenset[str] = frozenset(),
    ) -> None:
        self.app, self.keys, self.public, self.loopback_only = app, keys, public, loopback_only
        self.origins = origins  # web pages allowed to call ([server] cors_origins)

    def _check_origin(self, headers: dict[str, str]) -> None:
        if _hostname(headers.get("host", "")) not in _LOOPBACK_NAMES:
            raise ApiError(
                421, "this gateway answers requests to 127.0.0.1 or localhost only", code="host_not_allowed"
            )
        origin = headers.get("origin")
        if origin is not None and _hostname(origin) not in _LOOPBACK_NAMES and origin not in self.origins:
            raise ApiError(403, f"requests from web pages ({origin}) are refused", code="origin_not_allowed")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        try:
            if self.loopback_only:
                self._check_origin(headers)
            if scope["method"] == "POST" and not headers.get("content-type", "").startswith(
                "application/json"
            ):
                raise ApiError(
                    415,
                    "send the body as JSON (Content-Type: application/json)",
                    code="unsupported_media_type",
                )
            if scope["path"] in self.public:
                key = "public"
            else:
                client = (scope.get("client") or ("", 0))[0]
                key = self.keys.key_name(headers.get("authorization", ""), client)
            length = headers.get("content-length", "")
            if length.isdigit() and int(length) > MAX_REQUEST_BYTES:
                raise ApiError(
                    413, f"the request is over {MAX_REQUEST_BYTES:,} bytes", code="request_too_large"
                )
        except ApiError as exc:
            response = JSONResponse(exc.body(), exc.status, headers=exc.headers)
            await response(scope, receive, send)
            return
        scope.setdefault("state", {})["key"] = key
        await self.app(scope, receive, send)


async def read_json(request: Request) -> Any:
    """The request's JSON body, read in pieces and refused once past the size limit (a chunked
    body declares no length) or when the client pauses longer than [server] body_timeout_s (a
    slow client would hold its connection and the memory of what it sent so far)."""
    timeout = getattr(request.app.state, "body_timeout_s", 30.0)
    chunks, size = [], 0
    pieces = request.stream().__aiter__()
    while True:
        try:
            piece = await asyncio.wait_for(pieces.__anext__(), timeout)
        except StopAsyncIteration:
            break
        except TimeoutError:
            raise ApiError(
                408, f"the body stopped arriving for {timeout:g} s", code="request_timeout"
            ) from None
        size += len(piece)
        if size > MAX_REQUEST_BYTES:
            raise ApiError(413, f"the request is over {MAX_REQUEST_BYTES:,} bytes", code="request_too_large")
        chunks.append(piece)
    try:
        return json.loads(b"".join(chunks))
    except (ValueError, RecursionError):  # RecursionError: JSON nested thousands deep
        raise ApiError(400, "the body is not valid JSON") from None
