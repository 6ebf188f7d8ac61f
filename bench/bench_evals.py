"""Eval wall time divided by the sum of the raw model time of its cases (from each case's model
calls), SmolLM2 on this machine's CPU.

1. sequential: one local model, 16 cases: the ratio is the runner's own cost (goal <= 1.10).
2. overlapped: the same local model plus a "cloud" model (llama.cpp's OpenAI-compatible server
   serving SmolLM2 in another process, on loopback), cases of both at once: below 1.0 means the
   cloud cases ran while the local ones did (goal < 1.0).
"""

from __future__ import annotations

import shutil
import sys
import tempfile
from pathlib import Path

from figures import emit

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

CASES = 16


def main() -> None:
    from local_models.fetch import fetch_models
    from tests.conftest import llama_server
    from workbench.services import Service, init_workspace

    cache = ROOT / ".test-models"
    fetch_models(cache, ["smollm2"])
    model = cache / "SmolLM2-135M-Instruct.Q4_1.gguf"
    with tempfile.TemporaryDirectory() as folder:
        root, _ = init_workspace(Path(folder) / "ws")
        (root / "models" / model.name).symlink_to(model)
        shutil.copy(ROOT / "evals" / "data" / "demo.jsonl", root / "evals" / "demo.jsonl")
        with llama_server(model, "smol") as url:
            (root / "workbench.toml").write_text(f'[cloud.remote]\nbase_url = "{url}"\nmodels = ["smol"]\n')
            service = Service(root)
            service.models.load("smollm2")  # loading is not eval time
            for label, models in (("sequential", ["smollm2"]), ("overlapped", ["smollm2", "remote/smol"])):
                run_id = service.evals.run("demo", models, max_tokens=48, limit=CASES)
                shown = service.evals.show(run_id)
                model_s = sum(float(r["model_s"] or 0) for r in shown["results"])
                wall = shown["run"]["wall_s"]
                goal = "<= 1.10" if label == "sequential" else "< 1.0"
                met = wall / model_s <= 1.10 if label == "sequential" else wall / model_s < 1.0
                emit(
                    f"eval wall / sum of model time, {label}",
                    wall / model_s,
                    "ratio",
                    goal,
                    met,
                    wall / model_s,
                    f"{len(shown['results'])} cases, wall {wall:.1f} s, model time {model_s:.1f} s",
                )
            service.models.close()


if __name__ == "__main__":
    main()
