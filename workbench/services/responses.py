"""Stored responses of the gateway's Responses API (`store: true`): each response and the
conversation it ended, so that a later request can go on from it (`previous_response_id`).

One JSON file per response in <workspace>/responses/, written whole and renamed into place
(a reader never sees half a file), readable by the user alone: answers are as private as
traces."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

from workbench.core.errors import ResponseNotFound

__all__ = ["ResponseStore"]

_ID = re.compile(r"^resp_[0-9a-f]{16,64}$")


class ResponseStore:
    def __init__(self, root: Path) -> None:
        self.dir = root / "responses"

    def _path(self, response_id: str, param: str | None = None) -> Path:
        if not _ID.match(response_id):  # also keeps the name inside the folder
            raise ResponseNotFound(response_id, param)
        return self.dir / f"{response_id}.json"

    def save(self, response: dict[str, Any], conversation: list[dict[str, str]]) -> None:
        """``conversation``: the messages up to and including this response's answer (without
        the instructions, which a following request does not inherit)."""
        self.dir.mkdir(mode=0o700, exist_ok=True)
        path = self._path(response["id"])
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump({"response": response, "conversation": conversation}, handle, ensure_ascii=False)
        tmp.replace(path)

    def _read(self, response_id: str, param: str | None) -> dict[str, Any]:
        try:
            return json.loads(self._path(response_id, param).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            raise ResponseNotFound(response_id, param) from None

    def get(self, response_id: str) -> dict[str, Any]:
        return self._read(response_id, None)["response"]

    def conversation(self, response_id: str) -> list[dict[str, str]]:
        """The messages a request with ``previous_response_id`` goes on from."""
        return self._read(response_id, "previous_response_id")["conversation"]

    def delete(self, response_id: str) -> None:
        try:
            self._path(response_id).unlink()
        except FileNotFoundError:
            raise ResponseNotFound(response_id) from None
