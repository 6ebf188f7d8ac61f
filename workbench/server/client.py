"""One code path per command: the CLI talks to a `Client`, which runs the work in this process
(`InProcess`, over the service) or asks the workspace's running gateway (`ThroughGateway`,
whose models are loaded already and whose requests join the ones it is decoding). Both take the
same request types (protocol/workbench.py) and give the same results: an `Answer`, search hits, a
workflow's outcome, an eval's run id; a failure is the same WorkbenchError, with the same
message, hint and exit code.

The gateway is found through <workspace>/server.json and a /health check; when none answers
(or it wants API keys), commands run in process, with no message.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

from workbench.server.errors import to_workbench_error
from workbench.server.protocol.workbench import (
    Answer,
    CompareRequest,
    EvalRequest,
    RunRequest,
    Sampling,
    SearchRequest,
)

if TYPE_CHECKING:
    import httpx

    from workbench.core.errors import WorkbenchError

__all__ = ["Client", "InProcess", "ThroughGateway", "client_for", "running_gateway"]

Messages = list[dict[str, str]]
OnText = Callable[[str], None] | None


class Client(Protocol):
    def prepare(self, model: str) -> dict[str, Any] | None:
        """Load ``model`` before a conversation (a wrong name fails at once); what it took, or
        None when nothing was loaded here."""

    def chat(self, model: str, messages: Messages, sampling: Sampling, on_text: OnText = None) -> Answer: ...

    def search(self, request: SearchRequest) -> list[dict[str, Any]]: ...

    def run_workflow(self, request: RunRequest, on_event: Callable[[dict], None]) -> dict[str, Any]: ...

    def compare(self, request: CompareRequest) -> list[Answer | WorkbenchError]: ...

    def eval_run(self, request: EvalRequest, progress: Callable[[str, int, int], None]) -> str: ...


class InProcess:
    """The work done here, on the service (``service`` is called on first use: opening it is
    the expensive part of a command that a gateway would spare)."""

    def __init__(self, service: Callable[[], Any], load_options: dict[str, Any] | None = None, ray=None):
        self._service, self.load_options, self.ray = service, load_options, ray

    @property
    def service(self):
        return self._service()

    def prepare(self, model: str) -> dict[str, Any] | None:
        if not self.service.is_local(model):
            return None
        return self.service.load_model(model, self.load_options)

    def chat(self, model: str, messages: Messages, sampling: Sampling, on_text: OnText = None) -> Answer:
        result = self.service.chat(model, messages, sampling.model_dump(), on_text, self.load_options)
        return Answer.of(result)

    def search(self, request: SearchRequest) -> list[dict[str, Any]]:
        return self.service.search(**request.arguments())

    def run_workflow(self, request: RunRequest, on_event: Callable[[dict], None]) -> dict[str, Any]:
        return self.service.workflows.run(
            request.name, request.input, request.thread_id, on_event, decision=request.decision()
        )

    def compare(self, request: CompareRequest) -> list[Answer | WorkbenchError]:
        from workbench.core.errors import WorkbenchError

        outcomes = self.service.compare(request.models, request.prompt, request.system, request.params)
        return [o if isinstance(o, WorkbenchError) else Answer.of(o) for o in outcomes]

    def eval_run(self, request: EvalRequest, progress: Callable[[str, int, int], None]) -> str:
        return self.service.evals.run(**request.arguments(), progress=progress, ray=self.ray)


class ThroughGateway:
    """The work done by the gateway at ``url``."""

    def __init__(self, url: str) -> None:
        self.url = url

    def prepare(self, model: str) -> dict[str, Any] | None:
        return None  # the gateway loads it on the first turn, and keeps it

    def chat(self, model: str, messages: Messages, sampling: Sampling, on_text: OnText = None) -> Answer:
        body = {
            "model": model,
            "messages": messages,
            "stream": True,
            "stream_options": {"include_usage": True},
            **sampling.chat_fields(),
        }
        text, answer = [], None
        with self._post("/v1/chat/completions", body, timeout=600) as response:
            for line in response.iter_lines():
                if not line.startswith("data: ") or line == "data: [DONE]":
                    continue
                data = json.loads(line.removeprefix("data: "))
                if "error" in data:
                    raise to_workbench_error(data["error"], 500)
                for choice in data.get("choices", []):
                    piece = choice.get("delta", {}).get("content")
                    if piece:
                        text.append(piece)
                        if on_text is not None:
                            on_text(piece)
                if "workbench" in data:
                    answer = data["workbench"]
        if answer is None:
            raise to_workbench_error({"message": "the gateway ended the answer early"}, 500)
        return Answer.model_validate({**answer, "text": "".join(text)})

    def search(self, request: SearchRequest) -> list[dict[str, Any]]:
        with self._post("/workbench/search", request.arguments(), timeout=120) as response:
            return json.loads(response.read())["hits"]

    def run_workflow(self, request: RunRequest, on_event: Callable[[dict], None]) -> dict[str, Any]:
        return self._command("run", request.model_dump(), on_event)

    def compare(self, request: CompareRequest) -> list[Answer | WorkbenchError]:
        rows = self._command("compare", request.model_dump(), None)
        return [
            to_workbench_error(row["error"], row["error"]["status"]) if "error" in row else Answer(**row)
            for row in rows
        ]

    def eval_run(self, request: EvalRequest, progress: Callable[[str, int, int], None]) -> str:
        def event(e: dict) -> None:
            progress(e["subject"], e["done"], e["total"])

        return self._command("eval", request.arguments(), event)["run_id"]

    def _post(self, path: str, body: dict[str, Any], timeout: float | None):
        """A streamed POST whose error answer is raised as the WorkbenchError it reports."""
        import contextlib

        import httpx  # here, not at the top: `workbench --help` imports this module

        @contextlib.contextmanager
        def opened():
            with httpx.stream(
                "POST", f"{self.url}{path}", json=body, timeout=httpx.Timeout(timeout, connect=2)
            ) as response:
                if response.status_code != 200:
                    response.read()
                    raise _error_of(response)
                yield response

        return opened()

    def _command(self, name: str, body: dict[str, Any], on_event) -> Any:
        """A /workbench/ command: events go to ``on_event`` as they come; returns the result, or
        raises the error the command ended in. No timeout: an eval may take hours."""
        with self._post(f"/workbench/{name}", body, timeout=None) as response:
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
                    raise to_workbench_error(data["error"], data["error"].get("status", 500))
        raise to_workbench_error({"message": "the gateway ended the answer early"}, 500)


def _error_of(response: httpx.Response) -> WorkbenchError:
    try:
        error = response.json()["error"]
    except (ValueError, KeyError, TypeError):
        error = {}
    return to_workbench_error(error if isinstance(error, dict) else {}, response.status_code)


def running_gateway(workspace: str | None) -> str | None:
    """The URL of the gateway serving this workspace, if one answers now."""
    from workbench.core.workspace import resolve_workspace_path
    from workbench.server.state import alive, read_state

    state = read_state(resolve_workspace_path(workspace))
    if state is None or state.get("keyed"):  # a gateway that wants API keys: run in process
        return None
    return state["url"] if alive(state, timeout=0.3) else None


def client_for(
    workspace: str | None,
    service: Callable[[], Any],
    in_process: bool = False,
    load_options: dict[str, Any] | None = None,
    ray: str | None = None,
) -> Client:
    """The workspace's running gateway when one answers, else this process; ``in_process``
    (load options of the command's own, a Ray run) keeps the work here."""
    url = None if in_process else running_gateway(workspace)
    return ThroughGateway(url) if url is not None else InProcess(service, load_options, ray)
