"""A small corpus of every supported format, and the bad files ingest must survive."""

from __future__ import annotations

import os
from pathlib import Path

MARKDOWN = """# Lighthouse manual

The lighthouse keeper logs every ship that passes.

## Lamp maintenance

Clean the Fresnel lens every morning with a dry cloth; oil the clockwork on Sundays.

## Storm procedure

During a storm, sound the fog horn every thirty seconds and keep the lamp lit all night.
"""

RST = """Bakery guide
============

Sourdough
---------

Feed the starter with rye flour twelve hours before baking the sourdough loaf.
"""

HTML = """<html><head><title>Garden</title><style>.x{color:red}</style></head><body>
<h1>Garden notes</h1><p>Tomatoes need six hours of sun and deep watering twice a week.</p>
<h2>Compost</h2><p>Turn the compost heap monthly so that it stays warm.</p></body></html>"""

PYTHON = '''"""Orbit tools."""


def orbital_period(radius_km: float) -> float:
    """Kepler's third law for a satellite around the Earth."""
    return 2 * 3.14159 * (radius_km**3 / 398600) ** 0.5


class Satellite:
    """A satellite with a name and an altitude."""

    def __init__(self, name: str) -> None:
        self.name = name
'''

GO = """package main

// Greet says hello to a volcano researcher.
func Greet(name string) string {
\treturn "hello " + name
}
"""


def pdf_bytes(pages: list[str]) -> bytes:
    """A minimal valid PDF with one line of Helvetica text per page."""
    objects = [
        "<< /Type /Catalog /Pages 2 0 R >>",
        None,
        "<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    kids = []
    for text in pages:
        stream = f"BT /F1 12 Tf 72 720 Td ({text}) Tj ET".encode()
        objects.append(f"<< /Length {len(stream)} >>\nstream\n{stream.decode()}\nendstream")
        content = len(objects)
        objects.append(
            f"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Resources << /Font << /F1 3 0 R >> >> "
            f"/Contents {content} 0 R >>"
        )
        kids.append(f"{len(objects)} 0 R")
    objects[1] = f"<< /Type /Pages /Kids [{' '.join(kids)}] /Count {len(kids)} >>"
    out, offsets = bytearray(b"%PDF-1.4\n"), []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += f"{number} 0 obj\n{body}\nendobj\n".encode()
    xref = len(out)
    out += f"xref\n0 {len(objects) + 1}\n0000000000 65535 f \n".encode()
    out += "".join(f"{o:010d} 00000 n \n" for o in offsets).encode()
    out += f"trailer\n<< /Size {len(objects) + 1} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n".encode()
    return bytes(out)


def build(root: Path) -> dict[str, str]:
    """Write the corpus under ``root``; returns the bad files and the reason ingest must give."""
    (root / "docs").mkdir(parents=True)
    (root / "src").mkdir()
    (root / "docs" / "manual.md").write_text(MARKDOWN)
    (root / "docs" / "bakery.rst").write_text(RST)
    (root / "docs" / "garden.html").write_text(HTML)
    (root / "src" / "orbit.py").write_text(PYTHON)
    (root / "src" / "greet.go").write_text(GO)
    (root / "notes.txt").write_text("The glacier moved forty meters last year, the survey team reported.\n")
    (root / "data.json").write_text('{"city": "Reykjavik", "fact": "geothermal water heats most homes"}\n')
    (root / "table.csv").write_text("animal,habitat\npenguin,antarctic ice\ncamel,desert\n")
    (root / "report.pdf").write_bytes(
        pdf_bytes(["Page one is about coral reefs.", "Page two covers deep sea vents."])
    )
    # Files ingest must report and survive.
    (root / "binary.txt").write_bytes(b"\x00\x01\x02 not text")
    (root / "latin1.txt").write_bytes("caf\xe9 cr\xe8me".encode("latin-1"))
    (root / "empty.md").write_text("")
    (root / "broken.pdf").write_bytes(b"%PDF-1.4\nthis is not really a pdf")
    (root / "huge.txt").write_text("x" * 3_000_000)
    os.mkfifo(root / "pipe.txt")  # reading it would block: must be reported, not read
    os.symlink(root, root / "docs" / "loop")  # a folder symlink back up: must not be followed
    (root / "ignored").mkdir()
    (root / "ignored" / "secret.md").write_text("# must not be ingested\n")
    (root / ".gitignore").write_text("ignored/\n")
    (root / "random.bin").write_bytes(bytes(range(256)))  # a type ingest does not read
    (root / ".draft.md").write_text("# hidden\n")
    return {
        "binary.txt": "binary content",
        "latin1.txt": "not UTF-8",
        "empty.md": "empty file",
        "broken.pdf": "corrupt or unreadable PDF",
        "pipe.txt": "not a regular file",
    }


# What ingest leaves out by a rule, each with (part of) the reason the report gives.
SKIPPED = {
    "huge.txt": "too large: 3.0 MB is over the 2.0 MB cap",
    "random.bin": "unsupported type '.bin'",
    ".draft.md": "hidden",
    ".gitignore": "hidden",
    "ignored": "ignored by ",
    "loop": "symlinked folder",
}


TOPICS = ["tides", "glaciers", "volcanoes", "deserts", "rivers", "forests", "reefs", "caves"]


def notes(root: Path, files: int, sections: int = 3, sentences: int = 6) -> Path:
    """``files`` markdown files of ``sections`` sections each, every sentence distinct (so are
    the chunks): a corpus of any size for the Ray tests and bench/bench_ray.py."""
    root.mkdir(parents=True, exist_ok=True)
    for n in range(files):
        topic = TOPICS[n % len(TOPICS)]
        body = "\n\n".join(
            f"## Field note {n}.{s}\n\n"
            + " ".join(
                f"Survey {n}-{s}-{w} of the {topic} recorded reading {(n * 31 + s * 7 + w) % 97} at station {w}."
                for w in range(sentences)
            )
            for s in range(sections)
        )
        (root / f"note-{n:03d}.md").write_text(f"# {topic.title()} log {n}\n\n{body}\n")
    return root
