"""Local first, cloud when needed.

Per request: answer with the local model, or escalate to the configured cloud model when
(a) the prompt does not fit the local context, (b) the local answer fails a check (empty, not
valid against the requested JSON schema, or a check the caller supplies), or (c) the local call
fails or times out. The reason is recorded on the span and returned to the user. Escalation
past the daily budget, or to a remote host in offline mode, is refused with a clear message.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from dataclasses import dataclass, replace

from local_models.cloud import CloudClient
from local_models.manager import ModelManager
from local_models.types import GenerationParams, GenerationResult
from workbench.core.clock import local_midnight_ns
from workbench.core.config import RouterConfig
from workbench.core.errors import CloudError, ModelError, ModelNotFound
from workbench.core.tracing import Tracer, TraceStore

__all__ = ["Router", "RoutedResult", "Check"]

Check = Callable[[str], str | None]  # answer -> reason it is not good enough, or None


@dataclass
class RoutedResult:
    result: GenerationResult
    route: str  # "local" or "cloud"
    reason: str | None = None  # why it escalated (or wanted to)
    refused: str | None = None  # why escalation was refused, when it was


class Router:
    def __init__(
        self,
        config: RouterConfig,
        models: ModelManager,
        cloud: CloudClient,
        tracer: Tracer,
        store: TraceStore,
    ) -> None:
        self.config, self.models, self.cloud, self.tracer, self.store = config, models, cloud, tracer, store

    def ask(
        self,
        messages: list[dict[str, str]],
        params: GenerationParams = GenerationParams(),
        check: Check | None = None,
        on_text: Callable[[str], None] | None = None,
        cancel: threading.Event | None = None,
    ) -> RoutedResult:
        if not self.config.local:
            # `auto` is no model of this workspace until the router has one (/v1/models omits it)
            raise ModelNotFound(
                "auto routes nowhere: no [router] local model is configured",
                'set [router] local = "smollm2" in workbench.toml',
            )
        with self.tracer.span(
            "router.ask",
            "router",
            {
                "workbench.router.local": self.config.local,
                "workbench.router.cloud": self.config.escalate_to or "",
            },
        ) as span:
            local, reason = self._try_local(messages, params, check, on_text, cancel)
            if reason is None:
                span.update({"workbench.route": "local"})
                return RoutedResult(local, "local")
            span.set("workbench.escalation_reason", reason)
            refused = self.refusal()
            if refused is None:
                try:
                    cloud = self._escalate(messages, params, on_text, cancel)
                    span.set("workbench.route", "cloud")
                    return RoutedResult(cloud, "cloud", reason)
                except CloudError as exc:
                    refused = exc.one_line()
            span.update({"workbench.route": "local", "workbench.escalation_refused": refused})
            if local is None:
                raise ModelError(
                    f"the local model could not answer ({reason}) and escalation was refused: {refused}",
                    "fix the cause above, then ask again",
                )
            return RoutedResult(local, "local", reason, refused)

    def _try_local(
        self, messages, params, check, on_text, cancel
    ) -> tuple[GenerationResult | None, str | None]:
        try:
            model = self.models.load(self.config.local)
            needed = model.prompt_tokens(messages)
            if needed + 1 > model.context_length:
                return (
                    None,
                    f"the prompt ({needed} tokens) does not fit the local context ({model.context_length})",
                )
            floor = self.config.min_mean_logprob
            if floor is not None:
                params = replace(params, logprobs=True)
            # Stream local text to the caller only once it passes: a failed answer is replaced.
            result = self.models.chat(
                self.config.local,
                messages,
                params,
                None,
                timeout_s=self.config.local_timeout_s,
                cancel=cancel,
            )
        except ModelError as exc:
            return None, f"the local call failed: {exc.message}"
        if cancel is not None and cancel.is_set():
            return result, None  # the caller stopped it: nothing to escalate
        if result.finish_reason == "cancelled":
            return result, f"the local call timed out after {self.config.local_timeout_s:g} s"
        # a tool call is checked already (its grammar or its schema); the text checks are for text
        reason = None if result.tool_calls else _failed_check(result.text, params, check)
        if "unfinished_tool_answer" in result.extra:
            reason = f"the local tool call was cut at max_tokens ({params.max_tokens})"
        if (
            reason is None
            and floor is not None
            and result.mean_logprob is not None
            and result.mean_logprob < floor
        ):
            reason = (
                f"the local answer's mean token log-probability {result.mean_logprob:.2f} is under "
                f"[router] min_mean_logprob {floor:g}"
            )
        if reason is None and on_text is not None and result.text:
            on_text(result.text)
        return result, reason

    def refusal(self) -> str | None:
        if not self.config.escalate_to:
            return "no [router] escalate_to model is configured"
        return self.budget_refusal()

    def budget_refusal(self) -> str | None:
        """Why a cloud call would break the daily budget, or None."""
        budget = self.config.daily_budget_usd
        if budget is not None:
            spent = self.spent_today()
            if spent >= budget:
                return (
                    f"today's cloud spend ${spent:.4f} has reached the daily budget ${budget:.2f} "
                    "(raise [router] daily_budget_usd or wait until tomorrow)"
                )
        return None

    def spent_today(self) -> float:
        """Today's cloud spend: this process's from memory (its spans may not be written yet),
        the other processes' from the store as it is, without compacting on the caller's
        thread (their own flush threads move their spans in within seconds)."""
        midnight_ns = local_midnight_ns()
        here = getattr(self.tracer.sink, "process", "")
        rows = self.store.query(
            "SELECT coalesce(sum(cost_usd), 0) AS spent FROM spans WHERE name = 'llm.chat' "
            "AND provider IN ('openai', 'anthropic') AND start_ns >= ? AND process IS DISTINCT FROM ?",
            [midnight_ns, here],
            compact=False,
        )
        return float(rows[0]["spent"]) + self.cloud.spent_today()

    def _escalate(self, messages, params, on_text, cancel) -> GenerationResult:
        endpoint, _, model = self.config.escalate_to.partition("/")
        return self.cloud.chat(endpoint, model, messages, params, on_text, cancel)


def _failed_check(text: str, params: GenerationParams, check: Check | None) -> str | None:
    if not text.strip():
        return "the local answer was empty"
    if params.json_schema is not None:
        import jsonschema

        try:
            jsonschema.validate(json.loads(text), params.json_schema)
        except (ValueError, jsonschema.ValidationError) as exc:
            return f"the local answer is not valid against the JSON schema ({str(exc).splitlines()[0][:80]})"
    if check is not None:
        return check(text)
    return None
