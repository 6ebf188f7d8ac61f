"""The regression gate on real runs: two evals through the loopback cloud, compared by the CLI as
CI would run it. A noisy 1-of-33 fall passes; a 2%-of-2,000 fall that is real exits 10."""

from __future__ import annotations

import json

import pytest

from local_models.cloud import CloudClient, RetryPolicy
from tests.conftest import run_cli
from tests.fake_cloud import ANSWER, FakeCloud
from workbench.services import Service

SECOND_RUN = "second run"


def _answer(body: dict) -> list[str]:
    """The second run answers the cases marked [falls] wrongly; everything else, rightly."""
    system = next((m["content"] for m in body["messages"] if m["role"] == "system"), "")
    if system == SECOND_RUN and "[falls]" in body["messages"][-1]["content"]:
        return ["I ", "do ", "not ", "know."]
    return ANSWER


@pytest.fixture
def gated(workspace):
    cloud = FakeCloud(answer=_answer)
    workspace.config_path.write_text(f'[cloud.remote]\nbase_url = "{cloud.url}"\nmodels = ["big"]\n')
    for name, total, falling in (("noisy", 33, 1), ("large", 2000, 40)):
        lines = [
            {
                "id": f"q{i}",
                "input": "Capital of France?" + (" [falls]" if i < falling else ""),
                "expected": "Paris",
            }
            for i in range(total)
        ]
        (workspace.evals_dir / f"{name}.jsonl").write_text("".join(json.dumps(line) + "\n" for line in lines))
    service = Service(workspace.root)
    service.generation.use_cloud(CloudClient(service.config, service.tracer, False, RetryPolicy(attempts=1)))
    yield service
    cloud.close()


def test_noise_passes_and_a_real_fall_exits_10(gated):
    runs = {}
    for name in ("noisy", "large"):
        before = gated.evals.run(name, ["remote/big"], concurrency=8)
        after = gated.evals.run(name, ["remote/big"], system=SECOND_RUN, concurrency=8)
        runs[name] = (before, after)

    noisy = run_cli("eval", "compare", *runs["noisy"], "--fail-on-regression", "0.02")
    assert noisy.returncode == 0, noisy.stderr
    contains = next(line for line in noisy.stdout.splitlines() if line.startswith("contains"))
    assert "-0.030" in contains and "PASS" in contains and "within noise" in contains
    assert "gate passed" in noisy.stderr

    large = run_cli("eval", "compare", *runs["large"], "--fail-on-regression", "0.02", "--json")
    assert large.returncode == 10
    verdicts = {m["metric"]: m for m in json.loads(large.stdout)["metrics"]}
    assert verdicts["contains"]["verdict"] == "fail" and verdicts["contains"]["delta"] == pytest.approx(-0.02)
    assert verdicts["contains"]["p_fall"] < 1e-10 and verdicts["f1"]["verdict"] == "pass"
    assert (
        large.stderr.strip().splitlines()[-1].startswith("error: run ")
        and "contains: fell by 0.02" in large.stderr
    )

    # The same gate at the end of the run itself, as CI would use it.
    rerun = run_cli(
        "eval",
        "run",
        "large",
        "-m",
        "remote/big",
        "--system",
        SECOND_RUN,
        "--concurrency",
        "8",
        "--baseline",
        runs["large"][0],
        "--fail-on-regression",
        "0.02",
    )
    assert rerun.returncode == 10 and "FAIL" in rerun.stdout
