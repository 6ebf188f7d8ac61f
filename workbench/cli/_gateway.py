"""The CLI through a running gateway of its workspace (`workbench serve`): the models stay loaded
in the gateway, so a command answers without importing or loading anything heavy. Found through
<workspace>/server.json and a /health check; when none answers, commands run in process, with no
message."""

from __future__ import annotations

import json
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any

from workbench.core.errors import ModelError, UsageError, WorkbenchError

if TYPE_CHECKING:
    import httpx

__all__ = ["running_gateway", "ask", "search", "command", "error_from_wire"]


def running_gateway(workspace: str | None) -> str | None:
    """The URL of the gateway serving this workspace, if one answers now."""
    from workbench.core.workspace import resolve_workspace_path
    from workbench.server.state import alive, read_state

    state = read_state(resolve_workspace_path(workspace))
    if state is None or state.get("keyed"):  # a gateway that wants API keys: run in process
        return None
    return state["url"] if alive(state, timeout=0.3) else None


def ask(url: str, model: str, messages: list[dict[str, str]], params: dict[str, Any], on_text=None):
    """One chat through the gateway, streamed to ``on_text``; returns what `report` prints (the
    fields of a GenerationResult)."""
    import httpx  # here, not at the top: `workbench --help` imports this module

    body: dict[str, Any] = {
        "model": model,
        "messages": messages,
        "stream": True,
        "stream_options": {"include_usage": True},
        **{
            k: v
            for k, v in params.items()
            if k in ("temperature", "top_p", "max_tokens", "seed") and v is not None
        },
    }
    if params.get("stop"):
        body["stop"] = list(params["stop"])
    if params.get("json_schema") is not None:
        body["response_format"] = {
            "type": "json_schema",
            "json_schema": {"name": "answer", "schema": params["json_schema"]},
        }
    text, usage, extra = [], None, {}
    with httpx.stream(
        "POST", f"{url}/v1/chat/completions", json=body, timeout=httpx.Timeout(600, connect=2)
    ) as response:
        if response.status_code != 200:
            response.read()
            raise _error(response)
        for line in response.iter_lines():
            if not line.startswith("data: ") or line == "data: [DONE]":
                continue
            data = json.loads(line.removeprefix("data: "))
            if "error" in data:
                raise ModelError(data["error"]["message"], "see the gateway's log in <workspace>/server.log")
            for choice in data.get("choices", []):
                piece = choice.get("delta", {}).get("content")
                if piece:
                    text.append(piece)
                    if on_text is not None:
                        on_text(piece)
            usage = data.get("usage", usage)
            extra = data.get("workbench", extra)
    return SimpleNamespace(
        model=extra.get("model") or model,
        text="".join(text),
        finish_reason=extra.get("finish_reason", "stop"),
        input_tokens=(usage or {}).get("prompt_tokens", 0),
        output_tokens=(usage or {}).get("completion_tokens", 0),
        ttft_s=extra.get("ttft_s"),
        tokens_per_s=extra.get("tokens_per_s") or 0.0,
        cost_usd=extra.get("cost_usd") or 0.0,
        hardware=extra.get("hardware", ""),
        trace_id=extra.get("trace_id"),
        extra={k: extra.get(k) for k in ("route", "escalation_reason", "escalation_refused") if extra.get(k)},
    )


def search(url: str, **arguments: Any) -> list[dict[str, Any]]:
    """`workbench search` through the gateway: the same hits, one trace per search."""
    import httpx

    from workbench.core.errors import CollectionError

    response = httpx.post(f"{url}/workbench/search", json=arguments, timeout=httpx.Timeout(120, connect=2))
    if response.status_code == 200:
        return response.json()["hits"]
    try:
        error = response.json()["error"]
        raise CollectionError(error["message"], response.json().get("hint"))
    except (ValueError, KeyError, TypeError):
        raise _error(response) from None


def command(url: str, name: str, body: dict[str, Any], on_event=None) -> Any:
    """`workbench run`, `compare` or `eval run` through the gateway (workbench/server/commands.py):
    events go to ``on_event`` as they come; returns the result, or raises the error the command
    ended in, as the same kind of error it would raise in process."""
    import httpx

    timeout = httpx.Timeout(None, connect=2)  # an eval may take hours; the gateway keeps going
    with httpx.stream("POST", f"{url}/workbench/{name}", json=body, timeout=timeout) as response:
        if response.status_code != 200:
            response.read()
            raise _error(response)
        for line in response.iter_lines():
            if not line:
                continue
            data = json.loads(line)
            if "event" in data:
                if on_event is not None:
                    on_event(data["event"])
            elif "result" in data:
                return data["result"]
            else:
                raise error_from_wire(data["error"])
    raise ModelError("the gateway ended the answer early", "see the gateway's log in <workspace>/server.log")


def error_from_wire(error: dict[str, Any]) -> WorkbenchError:
    """The WorkbenchError a gateway command reported ({"type", "message", "hint"}), of the same
    kind it was raised as in the gateway."""
    from workbench.core import errors

    kind = getattr(errors, error["type"], None)
    if not (isinstance(kind, type) and issubclass(kind, WorkbenchError)):
        kind = WorkbenchError
    return kind(error["message"], error.get("hint"))


def _error(response: httpx.Response) -> WorkbenchError:
    try:
        message = response.json()["error"]["message"]
    except (ValueError, KeyError, TypeError):
        message = f"the gateway answered {response.status_code}"
    if response.status_code in (400, 404, 413):
        return UsageError(message, "check the model name and the options")
    return ModelError(message, "see the gateway's log in <workspace>/server.log")
