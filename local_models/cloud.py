"""Cloud models: OpenAI-compatible chat completions and the Anthropic Messages API, streaming.

Keys are read from the environment variable an endpoint names and go into request headers
only: never into spans, logs or errors. Faults are met per attempt: connection refused,
timeouts, 429 (honouring Retry-After) and 5xx are retried with backoff and jitter while no text
has reached the caller; a stream cut after text was delivered, or a malformed body, is a clear
error. A circuit breaker per endpoint fails fast after repeated failures. Every attempt is a
span.
"""

from __future__ import annotations

import ipaddress
import json
import os
import random
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from urllib.parse import urlparse

import httpx

from local_models import cloud_tools
from local_models.types import GenerationParams, GenerationResult
from workbench.core import spend
from workbench.core.config import CloudEndpoint, WorkbenchConfig
from workbench.core.errors import CloudError, UnsupportedParameter
from workbench.core.tracing import Tracer
from workbench.core.tracing import attributes as A

__all__ = ["CloudClient", "CloudError", "RetryPolicy", "is_loopback"]


class _Retryable(Exception):
    def __init__(self, reason: str, delay: float | None = None) -> None:
        super().__init__(reason)
        self.reason, self.delay = reason, delay


@dataclass(frozen=True)
class RetryPolicy:
    attempts: int = 3
    base_delay_s: float = 0.5
    max_delay_s: float = 8.0
    connect_timeout_s: float = 5.0
    read_timeout_s: float = 60.0
    breaker_failures: int = 5
    breaker_cooldown_s: float = 30.0

    def delay(self, attempt: int, retry_after: float | None) -> float:
        if retry_after is not None:
            return min(retry_after, self.max_delay_s)
        backoff = min(self.max_delay_s, self.base_delay_s * 2 ** (attempt - 1))
        return backoff * (0.5 + random.random() / 2)  # jitter: spread retries of many callers


def is_loopback(url: str) -> bool:
    host = (urlparse(url).hostname or "").strip("[]")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class _Breaker:
    def __init__(self, policy: RetryPolicy) -> None:
        self.policy = policy
        self.failures = 0
        self.open_until = 0.0
        self.lock = threading.Lock()

    def check(self, name: str) -> None:
        with self.lock:
            if time.monotonic() < self.open_until:
                wait = self.open_until - time.monotonic()
                raise CloudError(
                    f"endpoint {name} failed {self.failures} times in a row; "
                    f"not calling it for another {wait:.0f} s",
                    "check the endpoint, or use a local model meanwhile",
                )

    def record(self, ok: bool) -> None:
        with self.lock:
            if ok:
                self.failures, self.open_until = 0, 0.0
                return
            self.failures += 1
            if self.failures >= self.policy.breaker_failures:
                self.open_until = time.monotonic() + self.policy.breaker_cooldown_s


class CloudClient:
    def __init__(
        self,
        config: WorkbenchConfig,
        tracer: Tracer,
        offline: bool = False,
        policy: RetryPolicy = RetryPolicy(),
    ) -> None:
        self.config = config
        self.tracer = tracer
        self.offline = offline
        self.policy = policy
        self._breakers: dict[str, _Breaker] = {}
        self._spend_lock = threading.Lock()
        self._spend_day, self._spend_usd = "", 0.0
        self._http = httpx.Client(
            timeout=httpx.Timeout(policy.read_timeout_s, connect=policy.connect_timeout_s)
        )

    def endpoint(self, name: str) -> CloudEndpoint:
        endpoint = self.config.cloud.get(name)
        if endpoint is None:
            raise CloudError(
                f"no cloud endpoint named '{name}'", "add it under [cloud.NAME] in workbench.toml"
            )
        return endpoint

    def price(self, endpoint: CloudEndpoint, model: str, input_tokens: int, output_tokens: int) -> float:
        price = endpoint.prices.get(model)
        if price is None:
            return 0.0
        return (input_tokens * price.input_per_mtok + output_tokens * price.output_per_mtok) / 1e6

    def spent_today(self) -> float:
        """What this client's calls cost today (local time): the router's budget adds it to
        what the store holds of other processes, without waiting for this one's spans."""
        with self._spend_lock:
            return self._spend_usd if self._spend_day == time.strftime("%Y-%m-%d") else 0.0

    def _record_spend(self, cost: float) -> None:
        with self._spend_lock:
            today = time.strftime("%Y-%m-%d")
            if self._spend_day != today:
                self._spend_day, self._spend_usd = today, 0.0
            self._spend_usd += cost

    def chat(
        self,
        endpoint_name: str,
        model: str,
        messages: list[dict[str, str]],
        params: GenerationParams = GenerationParams(),
        on_text: Callable[[str], None] | None = None,
        cancel: threading.Event | None = None,
    ) -> GenerationResult:
        endpoint = self.endpoint(endpoint_name)
        params.validate()
        attributes = {
            A.OPERATION: "chat",
            A.PROVIDER: endpoint.kind,
            A.REQUEST_MODEL: f"{endpoint_name}/{model}",
            "server.address": urlparse(endpoint.base_url).hostname or "",
            "gen_ai.request.temperature": params.temperature,
            "gen_ai.request.max_tokens": params.max_tokens,
            # The key the call is billed to, by the name of the variable holding it (never the
            # key itself); the gateway's requests carry their client's key name the same way.
            "workbench.key": endpoint.api_key_env or "",
        }
        with self.tracer.span("llm.chat", "llm", attributes) as span:
            if self.offline and not is_loopback(endpoint.base_url):
                # Refused inside the span, so that usage counts the refusals (offline, budget).
                span.set("workbench.refused", "offline")
                raise CloudError(
                    f"offline mode: {endpoint_name} ({urlparse(endpoint.base_url).hostname}) "
                    "is not on this machine",
                    "turn offline mode off, or use a local model",
                )
            headers = self._headers(endpoint_name, endpoint)
            breaker = self._breakers.setdefault(endpoint_name, _Breaker(self.policy))
            span.set_payload(messages=messages)
            delivered: list[str] = []
            payer = spend.payer()
            held = 0.0
            if payer is not None:  # a gateway key pays: hold the worst case of its budget first
                span.set("workbench.gateway_key", payer.key)
                worst = self.price(
                    endpoint, model, worst_input_tokens(messages, params.tools), params.max_tokens
                )
                try:
                    held = payer.reserve(worst)
                except spend.OverBudget:
                    span.set("workbench.refused", "budget")
                    raise

            def deliver(piece: str) -> None:
                # Only text someone was shown rules out a retry: with no on_text (an eval, a
                # grader) a stream cut mid-answer is asked again like any other fault.
                if on_text is not None:
                    delivered.append(piece)
                    on_text(piece)

            try:
                result = self._with_retries(
                    endpoint_name,
                    endpoint,
                    model,
                    messages,
                    params,
                    headers,
                    breaker,
                    deliver,
                    delivered,
                    cancel,
                )
            except BaseException:
                if payer is not None:
                    payer.settle(held, 0.0)  # a call that failed was not billed
                raise
            result.cost_usd = self.price(endpoint, model, result.input_tokens, result.output_tokens)
            self._record_spend(result.cost_usd)
            if payer is not None:
                payer.settle(held, result.cost_usd)
            result.model = f"{endpoint_name}/{model}"  # the name the user addresses it by
            result.trace_id = span.trace_id
            span.update(
                {
                    A.INPUT_TOKENS: result.input_tokens,
                    A.OUTPUT_TOKENS: result.output_tokens,
                    A.FINISH_REASONS: [result.finish_reason],
                    A.TIME_TO_FIRST_TOKEN: result.ttft_s,
                    A.COST_USD: result.cost_usd,
                    "workbench.tokens_per_s": round(result.tokens_per_s, 2),
                    "workbench.attempts": result.extra.get("attempts", 1),
                    "workbench.usage_estimated": result.extra.get("usage_estimated", False),
                }
            )
            span.set_payload(output=result.text)
            if result.tool_calls:
                span.set_payload(tool_calls=result.tool_calls)
            if result.finish_reason == "cancelled":
                span.cancelled()
        return result

    def _headers(self, name: str, endpoint: CloudEndpoint) -> dict[str, str]:
        headers = {"content-type": "application/json"}
        key = None
        if endpoint.api_key_env:
            key = os.environ.get(endpoint.api_key_env)
            if not key:
                raise CloudError(
                    f"endpoint {name} needs a key in ${endpoint.api_key_env}, which is not set",
                    f"export {endpoint.api_key_env}=... before running",
                )
        if endpoint.kind == "anthropic":
            headers["anthropic-version"] = "2023-06-01"
            if key:
                headers["x-api-key"] = key
        elif key:
            headers["authorization"] = f"Bearer {key}"
        return headers

    def _with_retries(
        self, name, endpoint, model, messages, params, headers, breaker, deliver, delivered, cancel=None
    ) -> GenerationResult:
        last = ""
        for attempt in range(1, self.policy.attempts + 1):
            breaker.check(name)
            with self.tracer.span("llm.attempt", "http", {"workbench.attempt": attempt}) as span:
                try:
                    result = self._attempt(endpoint, model, messages, params, headers, deliver, cancel)
                    result.extra["attempts"] = attempt
                    breaker.record(True)
                    return result
                except _Retryable as exc:
                    breaker.record(False)
                    span.fail(exc.reason)
                    last = exc.reason
                    if delivered:  # text already reached the caller: a retry would repeat it
                        raise CloudError(
                            f"{name}: {exc.reason} after {len(''.join(delivered))} characters had arrived",
                            "ask again",
                        ) from None
                    if attempt == self.policy.attempts:
                        break
                    delay = self.policy.delay(attempt, exc.delay)
                    span.set("workbench.retry_in_s", round(delay, 3))
                    time.sleep(delay)
        raise CloudError(
            f"{name}: {last} ({self.policy.attempts} attempts)",
            "check the endpoint and its status, or use a local model",
        )

    def _attempt(self, endpoint, model, messages, params, headers, deliver, cancel=None) -> GenerationResult:
        anthropic = endpoint.kind == "anthropic"
        url = endpoint.base_url.rstrip("/") + ("/messages" if anthropic else "/chat/completions")
        body = (
            _anthropic_body(model, messages, params) if anthropic else _openai_body(model, messages, params)
        )
        result = GenerationResult(model=model, hardware="cloud")
        start = time.perf_counter()
        try:
            with self._http.stream("POST", url, json=body, headers=headers) as response:
                if response.status_code == 429 or response.status_code >= 500:
                    response.read()
                    retry_after = _retry_after(response.headers.get("retry-after"))
                    raise _Retryable(f"HTTP {response.status_code}", retry_after)
                if response.status_code >= 400:
                    response.read()
                    raise CloudError(
                        f"HTTP {response.status_code} from {url}: {_error_text(response)}",
                        "check the model name, the key and the request",
                    )
                parse = _anthropic_events if anthropic else _openai_events
                for piece in parse(response.iter_lines(), result):
                    if result.ttft_s is None:
                        result.ttft_s = time.perf_counter() - start
                    result.text += piece
                    deliver(piece)
                    if cancel is not None and cancel.is_set():
                        result.finish_reason = "cancelled"  # leaving the block closes the stream
                        break
        except httpx.TimeoutException as exc:
            raise _Retryable(f"timed out ({type(exc).__name__})") from None
        except httpx.TransportError as exc:
            raise _Retryable(f"connection failed ({type(exc).__name__}: {exc})") from None
        if result.finish_reason == "":
            raise _Retryable("the stream ended before the answer was complete")
        if not result.input_tokens:
            # Some servers (llama.cpp's among them) send no usage when streaming: estimate at
            # ~4 characters a token, and say so on the span.
            result.input_tokens = max(1, sum(len(str(m.get("content") or "")) for m in messages) // 4)
            result.extra["usage_estimated"] = True
        result.duration_s = time.perf_counter() - start
        decode_s = result.duration_s - (result.ttft_s or 0.0)
        if result.output_tokens > 1 and decode_s > 0:
            result.tokens_per_s = (result.output_tokens - 1) / decode_s
        return result


def worst_input_tokens(messages: list[dict], tools: tuple[dict, ...] = ()) -> int:
    """An upper bound of a prompt's tokens on any tokenizer: its UTF-8 bytes (no tokenizer makes
    a token of less than one byte) and a few per message for the role and the template; the
    tools' schemas and the calls in the conversation count as their JSON."""
    calls = sum(len(json.dumps(m["tool_calls"]).encode()) for m in messages if m.get("tool_calls"))
    schemas = len(json.dumps(list(tools)).encode()) if tools else 0
    return sum(len(str(m.get("content") or "").encode()) + 8 for m in messages) + calls + schemas


def _retry_after(value: str | None) -> float | None:
    try:
        return max(0.0, float(value)) if value is not None else None
    except ValueError:
        return None


def _error_text(response: httpx.Response) -> str:
    try:
        data = response.json()
        error = data.get("error", data)
        return str(error.get("message", error) if isinstance(error, dict) else error)[:200]
    except ValueError:
        return response.text[:200]


def _openai_body(model, messages, params: GenerationParams) -> dict:
    body = {
        "model": model,
        "messages": messages,
        "stream": True,
        "temperature": params.temperature,
        "top_p": params.top_p,
        "max_tokens": params.max_tokens,
        "stream_options": {"include_usage": True},
    }
    if params.seed is not None:
        body["seed"] = params.seed
    if params.presence_penalty:
        body["presence_penalty"] = params.presence_penalty
    if params.frequency_penalty:
        body["frequency_penalty"] = params.frequency_penalty
    if params.stop:
        body["stop"] = list(params.stop)
    if params.json_schema is not None:
        body["response_format"] = {
            "type": "json_schema",
            "json_schema": {"name": "answer", "schema": params.json_schema, "strict": True},
        }
    body.update(cloud_tools.openai_tool_fields(params))
    return body


def _anthropic_body(model, messages, params: GenerationParams) -> dict:
    if params.json_schema is not None:
        raise CloudError(
            "JSON-schema output is not supported on Anthropic endpoints yet",
            "use an OpenAI-compatible endpoint or a local model for it",
        )
    for name, value in (
        ("presence_penalty", params.presence_penalty),
        ("frequency_penalty", params.frequency_penalty),
    ):
        if value:
            raise UnsupportedParameter(name, f"Anthropic endpoints take no {name}")
    system = "\n".join(m["content"] for m in messages if m["role"] == "system")
    body = {
        "model": model,
        "max_tokens": params.max_tokens,
        "stream": True,
        "messages": cloud_tools.anthropic_messages(messages),
        "temperature": min(params.temperature, 1.0),
        "top_p": params.top_p,
    }
    if system:
        body["system"] = system
    if params.stop:
        body["stop_sequences"] = list(params.stop)
    body.update(cloud_tools.anthropic_tool_fields(params))
    return body


def _sse_data(lines: Iterator[str]) -> Iterator[dict]:
    for line in lines:
        if not line.startswith("data:"):
            continue
        data = line[5:].strip()
        if data == "[DONE]":
            return
        try:
            yield json.loads(data)
        except ValueError:
            raise _Retryable(f"malformed JSON in the stream: {data[:80]!r}") from None


def _openai_events(lines: Iterator[str], result: GenerationResult) -> Iterator[str]:
    result.finish_reason = ""
    calls = cloud_tools.CallDeltas()
    for event in _sse_data(lines):
        if "error" in event:
            raise _Retryable(f"error in stream: {str(event['error'])[:120]}")
        usage = event.get("usage")
        if usage:
            result.input_tokens = usage.get("prompt_tokens", result.input_tokens)
            result.output_tokens = usage.get("completion_tokens", result.output_tokens)
        for choice in event.get("choices") or []:
            delta = choice.get("delta") or {}
            for call in delta.get("tool_calls") or []:
                calls.openai_delta(call)
            text = delta.get("content")
            if text:
                if not usage:
                    result.output_tokens += 1  # until the final usage chunk says exactly
                yield text
            if choice.get("finish_reason"):
                result.finish_reason = choice["finish_reason"]
    result.tool_calls = calls.calls() or None


def _anthropic_events(lines: Iterator[str], result: GenerationResult) -> Iterator[str]:
    result.finish_reason = ""
    calls = cloud_tools.CallDeltas()
    for event in _sse_data(lines):
        kind = event.get("type")
        if kind == "message_start":
            result.input_tokens = event["message"].get("usage", {}).get("input_tokens", 0)
        elif kind == "content_block_start" and event.get("content_block", {}).get("type") == "tool_use":
            block = event["content_block"]
            calls.start(event.get("index", 0), block.get("id"), block.get("name"))
        elif kind == "content_block_delta":
            delta = event.get("delta", {})
            if delta.get("type") == "input_json_delta":
                calls.add(event.get("index", 0), delta.get("partial_json"))
            text = delta.get("text")
            if text:
                yield text
        elif kind == "message_delta":
            reason = event.get("delta", {}).get("stop_reason") or "stop"
            result.finish_reason = {
                "end_turn": "stop",
                "max_tokens": "length",
                "stop_sequence": "stop",
                "tool_use": "tool_calls",
            }.get(reason, reason)
            result.output_tokens = event.get("usage", {}).get("output_tokens", result.output_tokens)
        elif kind == "error":
            raise _Retryable(f"error in stream: {str(event.get('error'))[:120]}")
    result.tool_calls = calls.calls() or None
