"""Eval datasets, metrics, judges' verdict parsing and run-vs-run statistics, without models."""

from __future__ import annotations

import json

import pytest

from evals.compare import compare_rows, format_p, gate
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
        == "  evals/d.jsonl:5: unknown field(s) colour; known: expected, expected_calls, id, input, schema, "
        "sources, tags, tools"
    )
    assert lines[5] == "  evals/d.jsonl:6: `expected` must be a string or a list of strings"
    good = parse_jsonl(text.splitlines()[0] + "\n\n" + json.dumps({"input": "two", "tags": "t"}), "d")
    assert [(c.id, c.expected, c.tags) for c in good] == [("a", ("1",), ()), ("line3", (), ("t",))]


def test_csv_import_and_its_row_numbers():
    cases = csv_to_cases(
        'id,input,expected,sources\nq1,"What, exactly?",yes|b,docs/x.md\n,Second,,\n', "in.csv"
    )
    assert (
        cases[0].input == "What, exactly?"
        and cases[0].expected == ("yes", "b")
        and cases[0].sources == ("docs/x.md",)
    )
    assert cases[1].id == "row3"
    with pytest.raises(EvalError, match=r"in.csv:3: `input` is required"):
        csv_to_cases("id,input\nq1,fine\nq2,\n", "in.csv")
    with pytest.raises(EvalError, match="needs a header with an `input` column"):
        csv_to_cases("question,answer\nq,a\n", "in.csv")


def test_an_expected_answer_without_words_is_a_dataset_error_on_its_line():
    lines = [
        '{"input": "q1", "expected": "Paris"}',
        '{"input": "q2", "expected": ["Rome", "?"]}',
        '{"input": "q3", "expected": "The"}',
    ]
    with pytest.raises(EvalError) as caught:
        parse_jsonl("\n".join(lines), "data.jsonl")
    assert "data.jsonl:2: expected answer '?' has no words" in caught.value.message
    assert "data.jsonl:3: expected answer 'The' has no words" in caught.value.message


def test_the_shipped_demo_dataset_is_valid():
    from pathlib import Path

    from evals.datasets import load_dataset

    demo = load_dataset(Path(__file__).resolve().parent.parent / "evals" / "data" / "demo.jsonl")
    assert len(demo.cases) == 33 and all(case.expected for case in demo.cases)


def test_contains_matches_whole_tokens():
    assert answer_metrics("a party", ("art",), None)["contains"] == 0.0
    assert answer_metrics("founded in 2019", ("1",), None)["contains"] == 0.0
    assert answer_metrics("It was founded in 2019.", ("in 2019",), None)["contains"] == 1.0
    assert answer_metrics("New York City", ("york city",), None)["contains"] == 1.0
    assert answer_metrics("York New", ("new york",), None)["contains"] == 0.0


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


def test_compare_paired_statistics_and_the_gate():
    base = _rows("m", [1] * 20 + [0] * 10)
    worse = _rows("m", [0] * 15 + [1] * 5 + [0] * 10)  # 15 cases lost, none gained
    comparison = compare_rows(base, worse)
    contains = next(m for m in comparison["metrics"] if m["metric"] == "contains")
    assert comparison["pairs"] == 30 and contains["delta"] == pytest.approx(-0.5)
    assert contains["p"] == pytest.approx(2 / 2**15) and contains["test"] == "McNemar exact"
    assert contains["p_fall"] == pytest.approx(1 / 2**15) and contains["ci_high"] < 0
    assert len(comparison["changed"]) == 15
    verdicts = {v["metric"]: v for v in gate(comparison, 0.02)}
    assert verdicts["contains"]["verdict"] == "fail" and "a real fall" in verdicts["contains"]["why"]
    same = compare_rows(base, _rows("m", [1] * 20 + [0] * 10))
    assert all(v["verdict"] == "pass" for v in gate(same, 0.0)) and same["metrics"][0]["p"] == 1.0
    # one subject each (model A against model B): paired case by case
    assert compare_rows(base, _rows("other", [1] * 30))["pairs"] == 30


def test_the_gate_tells_noise_from_a_fall():
    # One case of 33 getting worse: a fall of 0.03 > 0.02, but p 0.5: noise, not a regression.
    noisy = gate(compare_rows(_rows("m", [1] * 33), _rows("m", [0] + [1] * 32)), 0.02)
    contains = next(v for v in noisy if v["metric"] == "contains")
    assert contains["verdict"] == "pass" and "within noise" in contains["why"]
    # 40 of 2,000 worse: exactly the threshold (no float surprise), and real.
    real = gate(compare_rows(_rows("m", [1] * 2000), _rows("m", [0] * 40 + [1] * 1960)), 0.02)
    contains = next(v for v in real if v["metric"] == "contains")
    assert contains["delta"] == pytest.approx(-0.02) and contains["verdict"] == "fail"
    # 380 of 20,000 worse: real (p < 1e-100) but 0.019 is under the user's threshold of 0.02.
    under = gate(compare_rows(_rows("m", [1] * 20000), _rows("m", [0] * 380 + [1] * 19620)), 0.02)
    contains = next(v for v in under if v["metric"] == "contains")
    assert contains["verdict"] == "pass" and "under the threshold" in contains["why"]
    assert contains["p_fall"] < 1e-100


def test_errored_missing_and_absent_fail_the_gate():
    base = _rows("m", [1] * 30)
    new = _rows("m", [1] * 30)
    for row in new[:29]:  # 29 of 30 cases errored: they count as failures, not as dropped pairs
        row["error"], row["metrics"] = "HTTP 500", {}
    verdicts = {v["metric"]: v for v in gate(compare_rows(base, new), 0.02)}
    assert verdicts["contains"]["verdict"] == "fail" and verdicts["contains"]["n"] == 30
    assert "29 case(s) errored or missing" in verdicts["contains"]["why"]
    missing = gate(compare_rows(base, _rows("m", [1] * 5)), 0.02)  # 25 cases never ran
    assert next(v for v in missing if v["metric"] == "contains")["verdict"] == "fail"
    no_f1 = [{**r, "metrics": {"contains": 1.0}} for r in base]
    absent = {v["metric"]: v for v in gate(compare_rows(base, no_f1), 0.02)}
    assert absent["f1"]["verdict"] == "fail" and "absent from the new run" in absent["f1"]["why"]
    assert absent["contains"]["verdict"] == "pass"


def test_too_few_cases_is_its_own_verdict():
    comparison = compare_rows(_rows("m", [1] * 5), _rows("m", [0] * 5))
    small = next(v for v in gate(comparison, 0.02) if v["metric"] == "contains")
    assert small["verdict"] == "fail" and "not enough cases" in small["why"]
    allowed = next(v for v in gate(comparison, 0.02, allow_small=True) if v["metric"] == "contains")
    assert allowed["verdict"] == "fail" and allowed["p_fall"] == pytest.approx(1 / 32)


def test_p_values_never_print_as_zero():
    assert format_p(1 / 10_001, 1 / 10_001) == "< 0.0001"
    assert format_p(4e-115) == "4.0e-115" and format_p(0.5) == "0.5" and format_p(1.0) == "1"
