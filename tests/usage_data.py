"""A generated workspace history for the usage figures: spans shaped as the real code writes them
(local and cloud calls, routed requests, workflow runs with escalate nodes, refusals, failures)
and feedback scores, spread over several days. Used by tests/test_usage.py and bench/bench_usage.py.
"""

from __future__ import annotations

import random
from typing import Any

from workbench.core.tracing import Span, Tracer
from workbench.core.tracing import attributes as A

DAY_NS = 86_400 * 10**9
LOCAL_MODELS = (("smollm2", "cpu:2 threads"), ("gemma3", "gpu:all layers"))
CLOUD_MODELS = (
    ("openai", "openai/gpt-4o-mini", "OPENAI_API_KEY"),
    ("anthropic", "claude/haiku", "ANTHROPIC_API_KEY"),
)
REASONS = (
    "the local answer was empty",
    "the prompt (4100 tokens) does not fit the local context (2048)",
    "the local answer's mean token log-probability -2.31 is under [router] min_mean_logprob -1.5",
)


def _span(
    tracer: Tracer, name: str, kind: str, attrs: dict[str, Any], parent: Span | None, start: int, ms: float
) -> Span:
    span = Span(tracer, name, kind, attrs, parent)
    span.start_ns = start
    span.end_ns = start + int(ms * 1e6)
    return span


def _local(tracer, parent, start, rng, model=None) -> Span:
    alias, hardware = model or rng.choice(LOCAL_MODELS)
    out = rng.randint(1, 200)
    ms = rng.uniform(50, 3000)
    return _span(
        tracer,
        "llm.chat",
        "llm",
        {
            A.OPERATION: "chat",
            A.PROVIDER: "llama.cpp",
            A.REQUEST_MODEL: alias,
            A.INPUT_TOKENS: rng.randint(5, 900),
            A.OUTPUT_TOKENS: out,
            A.TIME_TO_FIRST_TOKEN: round(rng.uniform(0.01, 0.5), 4),
            A.COST_USD: 0.0,
            "workbench.hardware": hardware,
            "workbench.queue_wait_s": round(rng.uniform(0, 0.2), 4),
        },
        parent,
        start,
        ms,
    )


def _cloud(tracer, parent, start, rng) -> Span:
    provider, model, key = rng.choice(CLOUD_MODELS)
    inp, out = rng.randint(5, 3000), rng.randint(1, 400)
    span = _span(
        tracer,
        "llm.chat",
        "llm",
        {
            A.OPERATION: "chat",
            A.PROVIDER: provider,
            A.REQUEST_MODEL: model,
            A.INPUT_TOKENS: inp,
            A.OUTPUT_TOKENS: out,
            A.TIME_TO_FIRST_TOKEN: round(rng.uniform(0.1, 1.5), 4),
            A.COST_USD: (inp * 0.15 + out * 0.6) / 1e6,
            "workbench.key": key,
        },
        parent,
        start,
        rng.uniform(200, 5000),
    )
    if rng.random() < 0.05:
        span.fail("CloudError: openai answered 503 after 3 attempts")
    return span


# Shares of local chats, cloud chats, `auto` requests, workflow runs and eval cases.
MIXES = {
    # chats first: about two spans per trace, the hardest case for counting requests
    "chat": (0.35, 0.20, 0.25, 0.20, 0.0),
    # a workspace that runs workflows and evals as well as chats: about five spans per trace
    "typical": (0.12, 0.08, 0.10, 0.50, 0.20),
}


def generate(
    tracer: Tracer, requests: int, start_ns: int, days: int = 7, seed: int = 7, mix: str = "chat"
) -> tuple[list[Span], list[dict]]:
    """``requests`` traces between start_ns and start_ns + days; returns (spans, feedback rows)."""
    bounds = [sum(MIXES[mix][: i + 1]) for i in range(5)]
    rng = random.Random(seed)
    spans: list[Span] = []
    scores: list[dict] = []
    step = days * DAY_NS // max(requests, 1)
    for index in range(requests):
        start = start_ns + index * step + rng.randint(0, max(step // 2, 1))
        kind = rng.random()
        if kind < bounds[0]:  # a local chat, some through the gateway with a client's key
            if rng.random() < 0.5:
                key = rng.choice(["WB_KEY_ADA", "WB_KEY_BOB"])
                root = _span(tracer, "gateway.chat", "server", {"workbench.key": key}, None, start, 3000)
                call = _local(tracer, root, start + 1, rng)
                spans += [root, call]
            else:
                root = call = _local(tracer, None, start, rng)
                spans.append(root)
            if rng.random() < 0.03:
                call.fail("ModelError: the model ran out of context")
        elif kind < bounds[1]:  # a cloud chat, sometimes refused offline
            root = _cloud(tracer, None, start, rng)
            if rng.random() < 0.1:
                root.attributes.pop(A.INPUT_TOKENS), root.attributes.pop(A.OUTPUT_TOKENS)
                root.attributes.pop(A.COST_USD), root.attributes.pop(A.TIME_TO_FIRST_TOKEN)
                root.attributes["workbench.refused"] = "offline"
                root.status, root.error = "ok", None
                root.fail("CloudError: offline mode: openai (api.openai.com) is not on this machine")
            spans.append(root)
        elif kind < bounds[2]:  # model auto: the router decides
            root = _span(
                tracer, "router.ask", "router", {"workbench.router.local": "smollm2"}, None, start, 4000
            )
            local = _local(tracer, root, start + 1000, rng, LOCAL_MODELS[0])
            spans += [root, local]
            if rng.random() < 0.3:
                root.attributes["workbench.escalation_reason"] = rng.choice(REASONS)
                if rng.random() < 0.25:
                    root.attributes["workbench.route"] = "local"
                    root.attributes["workbench.escalation_refused"] = rng.choice(
                        [
                            "today's cloud spend $1.0000 has reached the daily budget $1.00",
                            "no [router] escalate_to model is configured",
                        ]
                    )
                else:
                    root.attributes["workbench.route"] = "cloud"
                    spans.append(_cloud(tracer, root, local.end_ns + 1000, rng))
            else:
                root.attributes["workbench.route"] = "local"
        elif kind >= bounds[3]:  # an eval case: the model's answer and a judge's grade
            root = _span(tracer, "eval.case", "eval", {"workbench.eval.case": f"q{index}"}, None, start, 3000)
            spans += [root, _local(tracer, root, start + 10, rng), _local(tracer, root, start + 2000, rng)]
        else:  # a workflow run: retrieve, screen, answer, grade, check, sometimes an escalate node
            workflow = rng.choice(["rag", "router", "agent"])
            root = _span(
                tracer, "workflow.run", "workflow", {"workbench.workflow": workflow}, None, start, 6000
            )
            retrieve = _span(
                tracer,
                "node.retrieve",
                "workflow",
                {"workbench.node": "retrieve", "workbench.node_type": "retrieve"},
                root,
                start + 10,
                30,
            )
            answer = _span(
                tracer,
                "node.answer",
                "workflow",
                {"workbench.node": "answer", "workbench.node_type": "generate"},
                root,
                start + 50,
                3000,
            )
            retrieval = _span(tracer, "retrieval", "retrieval", {"workbench.k": 4}, retrieve, start + 12, 25)
            screen = _span(
                tracer, "node.screen", "workflow", {"workbench.node_type": "guardrail"}, root, start + 45, 1
            )
            grade = _span(
                tracer, "node.grade", "workflow", {"workbench.node_type": "grade"}, root, start + 3060, 20
            )
            check = _span(
                tracer, "node.check", "workflow", {"workbench.node_type": "route"}, root, start + 3090, 1
            )
            spans += [root, retrieve, retrieval, screen, answer, _local(tracer, answer, start + 60, rng)]
            spans += [grade, _local(tracer, grade, start + 3061, rng), check]
            if rng.random() < 0.3:
                escalate = _span(
                    tracer,
                    "node.escalate",
                    "workflow",
                    {"workbench.node": "escalate", "workbench.node_type": "escalate"},
                    root,
                    start + 3100,
                    2000,
                )
                spans.append(escalate)
                if rng.random() < 0.3:
                    escalate.attributes["workbench.escalation_reason"] = (
                        "grade 0.2 < 0.5; escalation refused: offline mode: openai is not on this machine"
                    )
                else:
                    escalate.attributes["workbench.escalation_reason"] = "grade 0.2 < 0.5"
                    escalate.attributes["workbench.escalated_to"] = "openai/gpt-4o-mini"
                    spans.append(_cloud(tracer, escalate, start + 3200, rng))
            if rng.random() < 0.08:
                answer.fail("WorkflowError: node answer: the model gave no answer")
                root.fail("WorkflowError: node answer: the model gave no answer")
        if rng.random() < 0.1:
            scores.append(
                {
                    "trace_id": root.trace_id,
                    "name": "feedback",
                    "value": 1.0 if rng.random() < 0.7 else -1.0,
                    "note": None,
                    "source": "test",
                    "author": "ada",
                    "created_ns": start + 10**9,
                }
            )
    return spans, scores


def store(service, spans: list[Span], scores: list[dict]) -> None:
    """Write generated spans into the workspace's store as one spool segment (the way every
    process hands its spans over), and the feedback scores in one transaction."""
    import pyarrow.parquet as pq

    from workbench.core.tracing.spool import encode_spans

    spool = service.workspace.root / "spool"
    spool.mkdir(exist_ok=True)
    pq.write_table(encode_spans(spans, "generated"), spool / "0000-generated.parquet")
    service.store.compact()
    columns = ("trace_id", "name", "value", "note", "source", "author", "created_ns")
    sql = f"INSERT INTO scores ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})"
    service.store.write([(sql, [[score[c] for c in columns] for score in scores])])
