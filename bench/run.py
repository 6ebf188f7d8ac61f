"""`make bench`: run every bench/bench_*.py, print one table, write bench/results.json.

Each script prints JSON lines: {"figure", "value", "unit", "goal", "ratio"?, "note"?}. Ratios
compare against the raw library doing the same work in the same run, because absolute times
on these shared machines are noisy. Benchmarks are not tests: nothing here fails a build.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def main() -> int:
    results, failures = [], []
    for script in sorted(HERE.glob("bench_*.py")):
        started = time.perf_counter()
        proc = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, cwd=HERE.parent)
        for line in proc.stdout.splitlines():
            if line.startswith("{"):
                row = json.loads(line)
                row["script"] = script.name
                results.append(row)
        if proc.returncode != 0:
            failures.append(f"{script.name}: exit {proc.returncode}: {proc.stderr.strip()[-500:]}")
        print(f"# {script.name}: {time.perf_counter() - started:.1f} s", flush=True)
    header = ("figure", "value", "goal", "ratio", "met")
    rows = [
        (
            r["figure"],
            f"{r['value']:,.2f} {r['unit']}",
            r["goal"],
            f"{r['ratio']:.2f}" if r.get("ratio") is not None else "-",
            {True: "yes", False: "NO", None: "-"}[r.get("met")],
        )
        for r in results
    ]
    widths = [max(len(str(x)) for x in col) for col in zip(header, *rows)]
    for row in (header, *rows):
        print("  ".join(str(x).ljust(w) for x, w in zip(row, widths)))
    for row in results:
        if row.get("note"):
            print(f"  * {row['figure']}: {row['note']}")
    (HERE / "results.json").write_text(
        json.dumps({"when": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "results": results}, indent=2)
    )
    for failure in failures:
        print(f"FAILED {failure}", file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
