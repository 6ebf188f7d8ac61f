"""Retrieval that finds the section: chunks capped in tokens whatever the input, clean heading
paths, a contextual header in what is embedded (not in what is stored), and every stage of a
search (vector, full text, fusion, rerank) in the retrieval span, each checked against the
library that computes it: LanceDB's own searches, numpy, sentence-transformers' encode and
CrossEncoder.predict. Real MiniLM, real LanceDB."""

from __future__ import annotations

import json
import random
import string
from pathlib import Path

import numpy as np
import pytest

from indexes import structure
from indexes.chunking import HEADER_TOKENS, chunk_file
from indexes.embedder import _OffsetsTokenizer
from indexes.loaders import LoadedFile, Section
from tests.conftest import run_cli

GUIDE = """# Lighthouse keeper's guide

## Lamp care

Trim the wick at dusk and polish the lens with a dry cloth before lighting.

## Storm procedure

Sound the fog horn every thirty seconds while visibility is under one mile.

## Supplies

Order paraffin, wicks and cloths from the mainland each spring.
"""
GARDEN = """# Garden notes

## Compost

Turn the heap every two weeks; keep it as damp as a wrung-out sponge.

## Roses

Prune roses in late winter, just above an outward-facing bud.
"""


@pytest.fixture
def tokenizer(fetched_models):
    return _OffsetsTokenizer(fetched_models / "all-MiniLM-L6-v2")


@pytest.fixture
def notes(model_workspace, tmp_path):
    from workbench.services import Service

    folder = tmp_path / "notes"
    folder.mkdir()
    (folder / "guide.md").write_text(GUIDE)
    (folder / "garden.md").write_text(GARDEN)
    service = Service(model_workspace.root)
    service.ingest("notes", str(folder))
    return service, folder


def loaded(text: str, headings=()) -> LoadedFile:
    return LoadedFile(Path("blob.txt"), "text", "blob", [Section(text, 0, tuple(headings))], "h", len(text))


def test_no_chunk_exceeds_the_cap_on_unbroken_text(tokenizer):
    rng = random.Random(3)
    base64ish = "".join(rng.choice(string.ascii_letters + string.digits) for _ in range(60_000))
    inputs = {
        "random letters": base64ish,
        "one letter": "x" * 50_000,
        "long rows between words": ("id name " + base64ish[:3000] + "\n") * 10,
    }
    for label, text in inputs.items():
        chunks = chunk_file(loaded(text), tokenizer, 128, 16)
        # Before: WordPiece read any word over 100 characters as one [UNK], so each of these
        # was one chunk of the whole text.
        assert len(chunks) > len(text) // 2000, label
        for chunk in chunks:
            read = tokenizer([chunk.embed_text], add_special_tokens=False)["offset_mapping"][0]
            assert len(read) <= 128 + HEADER_TOKENS, f"{label}: {len(read)} tokens"
            assert text[chunk.start : chunk.end] == chunk.text, f"{label}: offsets are exact"
        assert all(a.end >= b.start for a, b in zip(chunks, chunks[1:])), f"{label}: no text left out"
        assert chunks[0].start == 0 and chunks[-1].end == len(text.rstrip()), label


def test_a_section_that_fits_is_one_chunk_with_its_header(tokenizer):
    text = "# Guide\n\n## Lamp care\n\nTrim the wick.\n\n## Storm\n\nSound the horn.\n"
    file = LoadedFile(Path("g.md"), "markdown", "Guide", structure.markdown(text), "h", len(text))
    chunks = chunk_file(file, tokenizer, 64, 8)
    by_heading = {c.headings: c for c in chunks}
    lamp = by_heading[("Guide", "Lamp care")]
    assert lamp.text == "## Lamp care\n\nTrim the wick." and text[lamp.start : lamp.end] == lamp.text
    assert lamp.embed_text == "Guide > Lamp care\n\n## Lamp care\n\nTrim the wick."
    plain = chunk_file(file, tokenizer, 64, 8, headers=False)
    assert [c.embed_text for c in plain] == [c.text for c in plain]
    assert len({c.hash for c in chunks} & {c.hash for c in plain}) == 0, "the vector depends on the header"


def test_headings_are_clean_text():
    sphinx = (
        '<h1>datetime<a class="headerlink" href="#dt" title="Permalink to this headline">¶</a></h1>'
        '<h2>date Objects<a class="headerlink" href="#d">¶</a></h2><p>A date object.</p>'
        '<h3>Examples of Usage:   date<a class="headerlink" href="#e">¶</a></h3><p>Example.</p>'
    )
    paths = [s.headings for s in structure.html(sphinx) if s.headings]
    assert paths[-1] == ("datetime", "date Objects", "Examples of Usage: date")
    assert "¶" not in "".join(s.text for s in structure.html(sphinx)), "the permalink text is dropped too"
    markdown = structure.markdown("# Intro ¶\n\ntext\n\n## Learning C#\n\nmore\n\n## Links #\n\nx\n")
    assert [s.headings[-1] for s in markdown] == ["Intro", "Learning C#", "Links"]


def test_the_header_is_embedded_but_the_stored_text_is_exact(notes, fetched_models):
    from sentence_transformers import SentenceTransformer

    service, folder = notes
    table = service.collections.table("notes")
    rows = table.search().select(["path", "headings", "start", "end", "text", "vector"]).limit(100).to_list()
    model = SentenceTransformer(str(fetched_models / "all-MiniLM-L6-v2"), device="cpu")
    storm = next(r for r in rows if r["headings"].endswith("Storm procedure"))
    assert Path(storm["path"]).read_text()[storm["start"] : storm["end"]] == storm["text"]
    with_header = model.encode(
        "Lighthouse keeper's guide > Storm procedure\n\n" + storm["text"], normalize_embeddings=True
    )
    np.testing.assert_allclose(storm["vector"], with_header, atol=1e-5)
    bare = model.encode(storm["text"], normalize_embeddings=True)
    assert float(np.dot(storm["vector"], bare)) < 0.999, "not the bare text's vector"


def test_each_stage_is_in_the_span_and_fusion_equals_the_legs_by_hand(notes, fetched_models):
    service, _ = notes
    query = "how often must the horn sound in bad weather"
    hits = service.search("notes", query, "hybrid", k=3, rerank="sections")
    service.flush_traces()
    span = next(s for s in service.get_trace(hits[0]["trace_id"]) if s["name"] == "retrieval")
    attributes = json.loads(span["attributes"])
    stages = attributes["workbench.retrieval.stages"]
    assert list(stages) == ["vector", "fts", "fusion", "rerank"]
    assert attributes["workbench.retrieval.rerank"] == "sections"
    assert attributes["workbench.retrieval.fusion"] == "zscore"
    assert [h["id"] for h in hits] == stages["rerank"][:3]
    for hit in hits:
        assert set(hit["ranks"]) >= {"fusion", "rerank"}

    # The legs straight from LanceDB, fused by hand: z-scores, vector x3, full text x1.
    table = service.collections.table("notes")
    from sentence_transformers import SentenceTransformer

    reference = SentenceTransformer(str(fetched_models / "all-MiniLM-L6-v2"), device="cpu")
    vector = reference.encode([query], normalize_embeddings=True)[0]
    legs = {
        "vector": table.search(vector).distance_type("cosine").limit(40).to_list(),
        "fts": table.search(query, query_type="fts", fts_columns="text").limit(40).to_list(),
    }
    assert [r["id"] for r in legs["vector"]] == stages["vector"]
    assert [r["id"] for r in legs["fts"]] == stages["fts"]
    fused: dict[str, float] = {}
    for leg, weight, key, sign in (("vector", 3.0, "_distance", -1), ("fts", 1.0, "_score", 1)):
        scores = np.array([sign * r[key] for r in legs[leg]])
        z = (scores - scores.mean()) / scores.std() if scores.std() > 0 else np.zeros_like(scores)
        for row, value in zip(legs[leg], z):
            fused[row["id"]] = fused.get(row["id"], 0.0) + weight * value
    assert stages["fusion"] == sorted(fused, key=fused.get, reverse=True)
    assert "Storm procedure" in hits[0]["headings"]


def test_a_registered_cross_encoder_reranks_as_sentence_transformers_scores(notes, fetched_models, tmp_path):
    import torch
    from sentence_transformers import CrossEncoder

    service, _ = notes
    # A real CrossEncoder: MiniLM's encoder with a seeded, untrained head (no model hub here,
    # and no trained cross-encoder on PyPI); the order it gives is what matters.
    torch.manual_seed(0)
    folder = tmp_path / "tiny-reranker"
    CrossEncoder(str(fetched_models / "all-MiniLM-L6-v2"), num_labels=1, local_files_only=True).save(
        str(folder)
    )
    wrong = run_cli("models", "register", str(fetched_models / "all-MiniLM-L6-v2"), "--kind", "reranker")
    assert wrong.returncode != 0 and "not a cross-encoder" in wrong.stderr and "Traceback" not in wrong.stderr
    registered = run_cli("models", "register", str(folder), check=True)
    assert "tiny-reranker (reranker)" in registered.stdout, "told from its config.json"

    query = "when do I prune roses"
    result = run_cli("search", query, "-c", "notes", "-k", "3", "--rerank", "--json", check=True)
    hits = json.loads(result.stdout)
    first_stage = service.search("notes", query, "hybrid", k=40, rerank="none")
    reference = CrossEncoder(str(folder), local_files_only=True).predict(
        [(query, f"{' > '.join(h['headings'].split(' > '))}\n{h['text']}") for h in first_stage]
    )
    expected = [first_stage[i]["id"] for i in np.argsort(-reference, kind="stable")[:3]]
    assert [h["id"] for h in hits] == expected
    np.testing.assert_allclose(
        [h["score"] for h in hits], sorted(reference, reverse=True)[:3], rtol=1e-4, atol=1e-5
    )

    # A collection's default, kept in its metadata; a name that is no reranker is refused.
    assert run_cli("collections", "set", "notes", "--rerank", "tiny-reranker", check=True).returncode == 0
    assert (
        json.loads(run_cli("search", query, "-c", "notes", "--json", check=True).stdout)[0]["id"]
        == expected[0]
    )
    refused = run_cli("collections", "set", "notes", "--rerank", "minilm")
    assert (
        refused.returncode != 0 and "not a reranker" in refused.stderr and "Traceback" not in refused.stderr
    )
    assert service.collections.meta("notes")["rerank"] == "tiny-reranker", "nothing stored is lost"


def test_queries_are_embedded_without_torch_as_sentence_transformers_does(fetched_models, tmp_path):
    import subprocess
    import sys

    from sentence_transformers import SentenceTransformer

    from indexes.query_encoder import query_encoder

    folder = fetched_models / "all-MiniLM-L6-v2"
    texts = [
        "how do I restore a collection",
        "Café, naïve façade — ünïcode and emoji 🚀",
        "x",
        "a long query " * 200,  # past the model's 256 tokens: cut as sentence-transformers cuts it
    ]
    ours = query_encoder(folder).encode(texts)
    theirs = SentenceTransformer(str(folder), device="cpu").encode(texts, normalize_embeddings=True)
    np.testing.assert_allclose(ours, theirs, atol=1e-5)
    # It needs neither torch nor sentence-transformers, nor scipy (a cold search imports it).
    script = (
        "import sys\n"
        "for name in ('torch', 'sentence_transformers', 'transformers', 'scipy'):\n"
        "    sys.modules[name] = None\n"
        "from pathlib import Path\n"
        "from indexes.query_encoder import query_encoder\n"
        f"print(query_encoder(Path({str(folder)!r})).encode(['hi']).shape)\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and "(1, 384)" in done.stdout, done.stderr
    # A model it cannot run (a cross-encoder: no mean pooling) is left to sentence-transformers.
    (tmp_path / "other").mkdir()
    for name in ("config.json", "tokenizer.json", "model.safetensors"):
        (tmp_path / "other" / name).symlink_to(folder / name)
    (tmp_path / "other" / "modules.json").write_text("[]")
    assert query_encoder(tmp_path / "other") is None
