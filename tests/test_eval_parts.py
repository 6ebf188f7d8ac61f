"""Eval datasets, metrics, judges' verdict parsing and run-vs-run statistics, without models."""

from __future__ import annotations

import json

import pytest

from evals.compare import compare_rows, regressions
from evals.datasets import csv_to_cases, parse_jsonl
from evals.judges import Judge
from evals.metrics import answer_metrics, normalize, percentile, retrieval_metrics, summarize
from workbench.core.errors import EvalError


def test_jsonl_problems_name_their_lines():
    text = "\n".join(
        [
            json.dumps({"id": "a", "input": "one", "expected": "1"}),
            "{not json",
            json.dumps({"id": "b"}),
            json.dumps({"id": "a", "input": "again"}),
            json.dumps({"input": "x", "colour": "red"}),
            json.dumps({"input": "x", "expected": [1, 2]}),
        ]
    )
    with pytest.raises(EvalError) as caught:
        parse_jsonl(text, "evals/d.jsonl")
    lines = caught.value.message.splitlines()
    assert lines[0] == "evals/d.jsonl has 5 bad lines:"
    assert lines[1].startswith("  evals/d.jsonl:2: not JSON:")
    assert lines[2] == "  evals/d.jsonl:3: `input` is required and must be a non-empty string"
    assert lines[3] == "  evals/d.jsonl:4: id 'a' is already used on line 1"
    assert (
        lines[4]
        == "  evals/d.jsonl:5: unknown field(s) colour; known: expected, id, input, schema, sources, tags"
    )
    assert lines[5] == "  evals/d.jsonl:6: `expected` must be a string or a list of strings"
    good = parse_jsonl(text.splitlines()[0] + "\n\n" + json.dumps({"input": "two", "tags": "t"}), "d")
    assert [(c.id, c.expected, c.tags) for c in good] == [("a", ("1",), ()), ("line3", (), ("t",))]


def test_csv_import_and_its_row_numbers():
    cases = csv_to_cases(
        'id,input,expected,sources\nq1,"What, exactly?",a|b,docs/x.md\n,Second,,\n', "in.csv"
    )
    assert (
        cases[0].input == "What, exactly?"
        and cases[0].expected == ("a", "b")
        and cases[0].sources == ("docs/x.md",)
    )
    assert cases[1].id == "row3"
    with pytest.raises(EvalError, match=r"in.csv:3: `input` is required"):
        csv_to_cases("id,input\nq1,fine\nq2,\n", "in.csv")
    with pytest.raises(EvalError, match="needs a header with an `input` column"):
        csv_to_cases("question,answer\nq,a\n", "in.csv")


def test_answer_metrics():
    assert normalize("The  Answer, is: 42!") == "answer is 42"
    got = answer_metrics("It is Paris, France.", ("paris",), None)
    assert got["exact"] == 0.0 and got["contains"] == 1.0 and 0 < got["f1"] < 1
    assert answer_metrics("Paris", ("London", "paris"), None)["exact"] == 1.0
    schema = {"type": "object", "required": ["city"]}
    assert answer_metrics('{"city": "Paris"}', (), schema) == {"json_valid": 1.0}
    assert answer_metrics("Paris", (), schema) == {"json_valid": 0.0}
    assert answer_metrics("anything", (), None) == {}  # nothing applies: nothing is scored


def test_retrieval_metrics():
    retrieved = ["/ws/docs/b.md", "/ws/docs/a.md", "/ws/docs/a.md", "/ws/docs/c.md"]
    got = retrieval_metrics(retrieved, ("docs/a.md", "docs/c.md"))
    assert got["recall_at_k"] == 1.0 and got["mrr"] == 0.5
    assert got["ndcg"] == pytest.approx((1 / 1.5849625 + 1 / 2) / (1 + 1 / 1.5849625), rel=1e-6)
    assert retrieval_metrics(["/ws/x.md"], ("docs/a.md",)) == {"recall_at_k": 0.0, "mrr": 0.0, "ndcg": 0.0}
    assert retrieval_metrics(retrieved, ()) == {}
    assert percentile([1, 2, 3, 4], 50) == 2.5 and percentile([], 95) is None


class _Scripted:
    """A chat function answering from a list: to test how verdicts are read, not a model."""

    def __init__(self, *answers: str) -> None:
        self.answers = list(answers)

    def __call__(self, model, messages, params) -> str:
        assert params["json_schema"] and params["temperature"] == 0.0
        return self.answers.pop(0)


def test_judge_failures_are_kept_not_zeroed():
    judge = Judge(
        "m",
        _Scripted(
            '{"verdict": "correct", "reason": "same"}',
            '{"verdict": "correct", "reason": "cut',
            '{"score": 4, "reason": "ok"}',
            '{"score": 9, "reason": "?"}',
        ),
    )
    assert judge.correctness("q", ("a",), "a") == {
        "criterion": "correctness",
        "failed": False,
        "score": 1.0,
        "verdict": "correct",
        "reason": "same",
    }
    failed = judge.correctness("q", ("a",), "a")
    assert failed == {
        "criterion": "correctness",
        "failed": True,
        "raw": '{"verdict": "correct", "reason": "cut',
    }
    assert judge.groundedness("a", ["p"])["score"] == 0.75
    assert judge.groundedness("a", ["p"])["failed"] is True
    rows = [
        {"metrics": {"correctness": 1.0}, "judge_failures": 0, "latency_s": 1.0},
        {"metrics": {}, "judge_failures": 1, "latency_s": 3.0},
    ]
    summary = summarize(rows)
    assert (
        summary["correctness"] == 1.0 and summary["judge_failures"] == 1
    )  # the failure is not a 0 in the mean


def _rows(subject: str, passes: list[int]) -> list[dict]:
    return [
        {
            "subject": subject,
            "case_id": f"c{i}",
            "metrics": {"contains": float(p), "f1": p * 0.8},
            "output": str(p),
        }
        for i, p in enumerate(passes)
    ]


def test_compare_paired_statistics_and_regressions():
    base = _rows("m", [1] * 20 + [0] * 10)
    worse = _rows("m", [0] * 15 + [1] * 5 + [0] * 10)  # 15 cases lost, none gained
    comparison = compare_rows(base, worse)
    contains = next(m for m in comparison["metrics"] if m["metric"] == "contains")
    assert comparison["pairs"] == 30 and contains["delta"] == pytest.approx(-0.5)
    assert contains["p_mcnemar"] == pytest.approx(2 / 2**15)
    assert contains["p_bootstrap"] < 0.01 and contains["ci_high"] < 0
    assert len(comparison["changed"]) == 15
    fallen = regressions(comparison, 0.02)
    assert fallen[0].startswith("contains 0.667 -> 0.167 (-0.500")
    same = compare_rows(base, _rows("m", [1] * 20 + [0] * 10))
    assert regressions(same, 0.0) == [] and same["metrics"][0]["p_mcnemar"] == 1.0
    # one subject each (model A against model B): paired case by case
    assert compare_rows(base, _rows("other", [1] * 30))["pairs"] == 30
