"""What every route of the gateway shares: the service, the metrics, the budgets and limits, and
the one way a request's answers are generated (under the request's root span, n at once)."""

from __future__ import annotations

import contextvars
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from workbench.core import spend
from workbench.core.errors import UnsupportedParameter
from workbench.server.errors import error_response, from_exception
from workbench.server.limits import Budgets
from workbench.server.metrics import Metrics, reason_kind

__all__ = ["Gateway", "gateway_of", "Ask"]


@dataclass
class Ask:
    """One request to a model, as the routes hand it to `Gateway.generate`."""

    model: str
    params: dict[str, Any]
    messages: list[dict[str, Any]] | None = None
    prompt: str | list[int] | None = None  # a raw prompt (completions) instead of messages
    n: int = 1


@dataclass
class Gateway:
    service: Any
    metrics: Metrics
    budgets: Budgets
    max_tokens: int

    def root_span(self, name: str, key: str, route: str, attributes: dict[str, Any]):
        return self.service.tracer.span(
            name, "server", {"workbench.key": key, "http.route": route, **attributes}, parent=None
        )

    async def check_budget(self, key: str) -> None:
        await run_in_threadpool(self.budgets.check, key)

    def generate(self, ask: Ask, key: str, root, cancel: threading.Event, emit: Callable | None = None):
        """``ask``'s answers (a list of GenerationResult, one per choice), on a worker thread,
        inside ``root``. Text goes to ``emit((choice index, piece))`` as it comes."""
        with root, spend.paying(key, self.budgets):
            user = next((m["content"] for m in reversed(ask.messages or []) if m["role"] == "user"), "")
            root.set_payload(input=user if ask.prompt is None else ask.prompt)

            def one(index: int):
                on_text = (lambda piece: emit((index, piece))) if emit is not None else None
                params = dict(ask.params)
                if index and params.get("seed") is not None:
                    params["seed"] += index  # the same seed n times would give n copies
                return self._one(ask, params, on_text, cancel)

            if ask.n == 1:
                results = [one(0)]
            else:
                results = _all_at_once(one, ask.n)
            first = results[0]
            root.update(
                {"workbench.route": first.extra.get("route") or "", "gen_ai.response.model": first.model}
            )
            if first.extra.get("escalation_reason"):
                root.set("workbench.escalation_reason", first.extra["escalation_reason"])
            root.set_payload(answer=first.text)
        return results

    def _one(self, ask: Ask, params: dict[str, Any], on_text, cancel: threading.Event):
        if ask.prompt is not None:
            return self.service.complete(ask.model, ask.prompt, params, on_text, cancel)
        if ask.model.startswith("workflow/"):
            extra = {
                "n": ask.n > 1,
                "logprobs": params.get("top_logprobs") is not None,
                "tools": bool(params.get("tools")),
            }
            for name, asked in extra.items():
                if asked:
                    raise UnsupportedParameter(name, f"a workflow answers once, without `{name}`")
            # A workflow's answer comes whole, at its end (it may be replaced by an escalation).
            result = self.service.workflows.as_model(ask.model.removeprefix("workflow/"), ask.messages)
            if on_text is not None and result.text:
                on_text(result.text)
            return result
        return self.service.chat(ask.model, ask.messages, params, on_text, cancel=cancel)

    def refusal(self, model: str, first: tuple[str, Any] | None, headers: dict[str, str]) -> Response | None:
        """The answer to a request that ended before its first token (its client gone, or an
        error with its status), or None when it is under way."""
        if first is None:
            return Response(status_code=499)  # the client left: nobody reads this
        if first[0] == "error":
            self.failed(model, first[1])
            return error_response(from_exception(first[1]), headers)
        return None

    def record(self, model: str, results: list, started: float) -> None:
        metrics = self.metrics
        metrics.requests.labels(model, "ok").inc()
        for result in results:
            metrics.tokens.labels(model, "input").inc(result.input_tokens)
            metrics.tokens.labels(model, "output").inc(result.output_tokens)
            metrics.cost.labels(model).inc(result.cost_usd or 0.0)
            if result.extra.get("route") == "cloud":
                metrics.escalations.labels(reason_kind(result.extra.get("escalation_reason"))).inc()
        metrics.latency.labels(model).observe(time.perf_counter() - started)

    def failed(self, model: str | None, exc: BaseException) -> None:
        self.metrics.errors.labels(type(exc).__name__).inc()
        if model is not None:
            self.metrics.requests.labels(model, "error").inc()


def _all_at_once(one: Callable[[int], Any], n: int) -> list:
    """``one(i)`` for i < n on threads of their own (a local model decodes them together);
    the first failure is raised once all have ended."""
    results: list[Any] = [None] * n
    errors: list[BaseException] = []

    def run(index: int) -> None:
        try:
            results[index] = one(index)
        except Exception as exc:  # noqa: BLE001 - raised below, on the request's thread
            errors.append(exc)

    threads = [threading.Thread(target=contextvars.copy_context().run, args=(run, i)) for i in range(n)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise errors[0]
    return results


def gateway_of(request: Request) -> Gateway:
    return request.app.state.gateway
