"""PNG renders of the app's SVG snapshots (tests/__snapshots__/test_tui_snapshots), to look at the
screens as a person would. Needs cairosvg (not a dependency of the workbench: `pip install cairosvg`
in any virtualenv), and a monospace font: the snapshots name Fira Code, which is not installed
here, so DejaVu Sans Mono stands in (a proportional fallback misaligns every line).

    python bench/render_snapshots.py OUT_DIR [NAME_PART ...]   e.g. traces-160x48 evals-160x48

bench/renders/ holds three of them (Traces and Usage at 160x48, Home at 100x30).
"""

from __future__ import annotations

import sys
from pathlib import Path

import cairosvg

SNAPSHOTS = Path(__file__).resolve().parent.parent / "tests" / "__snapshots__" / "test_tui_snapshots"


def main(out: Path, parts: list[str]) -> None:
    out.mkdir(parents=True, exist_ok=True)
    for svg in sorted(SNAPSHOTS.glob("*.svg")):
        if parts and not any(part in svg.name for part in parts):
            continue
        text = svg.read_text().replace("Fira Code", "DejaVu Sans Mono")
        png = out / (svg.name.split("[", 1)[1].rstrip("].svg") + ".png")
        cairosvg.svg2png(bytestring=text.encode(), write_to=str(png), output_width=1600)
        print(png)


if __name__ == "__main__":
    main(Path(sys.argv[1]), sys.argv[2:])
