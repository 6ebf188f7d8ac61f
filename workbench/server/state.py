"""<workspace>/server.json: how the workspace's running gateway is found (pid, URL), and whether
it still answers."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

__all__ = ["state_path", "read_state", "write_state", "clear_state", "alive"]


def state_path(root: Path) -> Path:
    return root / "server.json"


def write_state(root: Path, host: str, port: int, keyed: bool = False) -> None:
    """``keyed``: the gateway takes only requests with an API key (the CLI then runs in process)."""
    path = state_path(root)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    url_host = "127.0.0.1" if host in ("0.0.0.0", "::", "") else host
    tmp.write_text(
        json.dumps(
            {
                "pid": os.getpid(),
                "host": host,
                "port": port,
                "url": f"http://{url_host}:{port}",
                "keyed": keyed,
            }
        )
    )
    tmp.chmod(0o600)  # the gateway's address and whether it takes keys: the owner's business
    tmp.replace(path)


def read_state(root: Path) -> dict[str, Any] | None:
    try:
        state = json.loads(state_path(root).read_text())
    except (OSError, ValueError):
        return None
    return state if isinstance(state, dict) and isinstance(state.get("pid"), int) else None


def clear_state(root: Path) -> None:
    state = read_state(root)
    if state is None or state["pid"] == os.getpid():
        state_path(root).unlink(missing_ok=True)


def alive(state: dict[str, Any], timeout: float = 0.5) -> bool:
    """Whether the gateway the state names answers /health now."""
    import httpx

    try:
        return httpx.get(f"{state['url']}/health", timeout=timeout).status_code == 200
    except httpx.HTTPError:
        return False
