"""Ingest into real LanceDB with the packaged all-MiniLM-L6-v2, then search it back."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests import docs_corpus
from tests.conftest import run_cli
from workbench.core.errors import CollectionError
from workbench.services import Service

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def corpus(tmp_path):
    root = tmp_path / "corpus"
    bad = docs_corpus.build(root)
    return root, bad


@pytest.fixture
def service(model_workspace):
    model_workspace.config_path.write_text("[documents]\nmax_file_mb = 2\n")
    return Service(model_workspace.root)


def test_every_format_with_provenance_and_bad_files_reported(service, corpus):
    root, bad = corpus
    report = service.ingest("kb", str(root))
    names = sorted(Path(p).name for p in report.added)
    assert names == [
        "bakery.rst",
        "data.json",
        "garden.html",
        "greet.go",
        "manual.md",
        "notes.txt",
        "orbit.py",
        "report.pdf",
        "table.csv",
    ]
    failed = {Path(p).name: reason for p, reason in report.failed}
    assert set(failed) == set(bad), failed
    for name, reason in bad.items():
        assert reason in failed[name]
    skipped = {Path(p).name: reason for p, reason in report.skipped}
    assert set(skipped) == set(docs_corpus.SKIPPED), skipped
    for name, reason in docs_corpus.SKIPPED.items():
        assert reason in skipped[name], (name, skipped[name])
    assert "6 skipped, 5 failed" in report.summary()
    assert report.rows == report.chunks_added > 9 and report.version is not None

    manual = service.search("kb", "how often should the fog horn sound in a storm", "vector", k=1)[0]
    assert (
        manual["path"].endswith("manual.md") and manual["headings"] == "Lighthouse manual > Storm procedure"
    )
    text = (root / "docs" / "manual.md").read_text()
    assert text[manual["start"] : manual["end"]].strip() == manual["text"], "offsets point into the file"

    page = service.search("kb", "deep sea vents", "fts", k=1)[0]
    assert page["path"].endswith("report.pdf") and page["page"] == 2
    code = service.search("kb", "Kepler third law orbital period", "hybrid", k=1)[0]
    assert code["path"].endswith("orbit.py") and code["headings"] == "orbital_period"
    html = service.search("kb", "compost heap", "fts", k=1)[0]
    assert html["headings"] == "Garden notes > Compost" and "<p>" not in html["text"]
    assert (
        service.search("kb", "sourdough starter", "vector", k=1)[0]["headings"] == "Bakery guide > Sourdough"
    )
    assert not any(
        "secret.md" in h["path"] for h in service.search("kb", "must not be ingested", "fts", k=20)
    )


def test_filters_score_floor_and_the_retrieval_span(service, corpus):
    root, _ = corpus
    service.ingest("kb", str(root))
    only_py = service.search("kb", "satellite", "hybrid", k=10, file_type="py")
    assert only_py and all(h["path"].endswith(".py") for h in only_py)
    in_docs = service.search("kb", "lamp", "fts", k=10, path_glob="docs/*")
    assert in_docs and all("/docs/" in h["path"] for h in in_docs)
    assert service.search("kb", "lighthouse keeper", "vector", k=10, min_score=0.99) == []
    hits = service.search("kb", "glacier survey", "vector", k=3)
    assert hits[0]["score"] >= hits[-1]["score"]
    service.flush_traces()
    span = next(s for s in service.get_trace(hits[0]["trace_id"]) if s["name"] == "retrieval")
    attributes = json.loads(span["attributes"])
    assert attributes["gen_ai.operation.name"] == "retrieval"
    assert attributes["workbench.retrieval.chunk_ids"] == [h["id"] for h in hits]
    with pytest.raises(CollectionError, match="unknown search mode"):
        service.search("kb", "x", "semantic")
    with pytest.raises(CollectionError, match="no collection named 'nope'"):
        service.search("nope", "x")


def test_incremental_reingest(service, corpus):
    root, _ = corpus
    first = service.ingest("kb", str(root))
    again = service.ingest("kb", str(root))
    assert again.unchanged == len(first.added) and again.chunks_added == 0 and again.rows == first.rows

    manual = root / "docs" / "manual.md"
    manual.write_text(manual.read_text() + "\n## Visitors\n\nVisitors may climb the tower on Saturdays.\n")
    (root / "notes.txt").unlink()
    (root / "docs" / "new.md").write_text("# Tides\n\nHigh tide comes twice a day.\n")
    third = service.ingest("kb", str(root))
    assert [Path(p).name for p in third.updated] == ["manual.md"]
    assert [Path(p).name for p in third.removed] == ["notes.txt"]
    assert [Path(p).name for p in third.added] == ["new.md"]
    assert third.chunks_embedded < third.chunks_added, "unchanged sections of manual.md reuse their vectors"
    rows = service.collections.table("kb").search().select(["id", "path"]).limit(10_000).to_arrow()
    assert len(set(rows["id"].to_pylist())) == rows.num_rows == third.rows, "no duplicate chunks"
    assert not any(p.endswith("notes.txt") for p in rows["path"].to_pylist())
    assert service.search("kb", "climb the tower", "fts", k=1)[0]["headings"].endswith("Visitors")

    extra = root.parent / "extra.md"
    extra.write_text("# Extra\n\nA second source in the same collection.\n")
    fourth = service.ingest("kb", str(extra))
    assert [Path(p).name for p in fourth.added] == ["extra.md"] and fourth.removed == [], "other sources stay"
    assert fourth.rows == third.rows + 1


def test_an_unchanged_corpus_loads_no_model_and_several_paths_go_in_one_run(service, corpus, tmp_path):
    root, _ = corpus
    extra = tmp_path / "extra.md"
    extra.write_text("# Extra\n\nA second source in the same collection.\n")
    first = run_cli("ingest", str(root), str(extra), "-c", "kb", "--json", check=True, timeout=300)
    reports = json.loads(first.stdout)
    assert [len(r["added"]) > 0 for r in reports] == [True, True]
    assert [Path(p).name for p in reports[1]["added"]] == ["extra.md"]
    # Re-ingesting what did not change needs no embedding model (torch and sentence-transformers
    # took 8 of the 8.2 s it cost `make run` each time).
    script = (
        "import sys; from workbench.services import Service; s = Service(sys.argv[1]); "
        "r = [s.ingest('kb', p) for p in sys.argv[2:]]; "
        "print(sum(x.unchanged for x in r), 'torch' in sys.modules, 'sentence_transformers' in sys.modules)"
    )
    again = subprocess.run(
        [sys.executable, "-c", script, str(service.workspace.root), str(root), str(extra)],
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
    )
    unchanged = sum(len(r["added"]) for r in reports)
    assert again.stdout.split() == [str(unchanged), "False", "False"]


def test_redaction_masks_before_embedding_and_storage(service, tmp_path):
    folder = tmp_path / "pii"
    folder.mkdir()
    (folder / "contacts.md").write_text(
        "# Contacts\n\nWrite to ada@example.com or call +44 20 7946 0958. "
        "Card 4111 1111 1111 1111, SSN 123-45-6789, key sk-abcdefghijklmnop1234.\n"
    )
    report = service.ingest("private", str(folder), redact=True)
    assert report.masked == {"email": 1, "phone": 1, "card": 1, "national_id": 1, "secret": 1}
    stored = " ".join(
        service.collections.table("private")
        .search()
        .select(["text"])
        .limit(100)
        .to_arrow()["text"]
        .to_pylist()
    )
    for secret in ("ada@example.com", "7946", "4111", "123-45-6789", "sk-abcdefghijklmnop1234"):
        assert secret not in stored
    assert "[REDACTED:email]" in stored


def test_versions_and_restore(service, corpus):
    root, _ = corpus
    first = service.ingest("kb", str(root))
    (root / "notes.txt").unlink()
    second = service.ingest("kb", str(root))
    assert second.rows < first.rows
    versions = [v["version"] for v in service.collection_versions("kb")]
    assert first.version in versions and second.version == versions[-1]
    old = service.search("kb", "glacier", "fts", k=1, version=first.version)
    assert old[0]["path"].endswith("notes.txt"), "an older version can be searched read-only"
    assert not service.search("kb", "glacier", "fts", k=1), "and the newest is untouched"
    service.restore_collection("kb", first.version)
    assert service.collection("kb")["rows"] == first.rows
    assert service.search("kb", "glacier", "fts", k=1)[0]["path"].endswith("notes.txt"), (
        "FTS follows the restore"
    )
    with pytest.raises(CollectionError, match="has no version 999"):
        service.restore_collection("kb", 999)


KILL_AFTER_SECOND_ADD = """
import os, signal, sys
from workbench.services import Service
adds = []
def progress(event):
    if event["phase"] == "write":
        adds.append(event)
        if len(adds) == 2:
            os.kill(os.getpid(), signal.SIGKILL)
Service(sys.argv[1]).ingest("kb", sys.argv[2], progress=progress)
"""


def test_sigkill_mid_ingest_then_rerun_completes_without_duplicates(service, corpus, model_workspace):
    root, _ = corpus
    # Many small commits, so that the kill lands between two of them.
    model_workspace.config_path.write_text("[documents]\nmax_file_mb = 2\ncommit_rows = 3\n")
    killed = subprocess.run(
        [sys.executable, "-c", KILL_AFTER_SECOND_ADD, str(model_workspace.root), str(root)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    partial = service.collection("kb")
    assert 0 < partial["rows"], "the adds before the kill are committed"
    report = service.ingest("kb", str(root))
    assert report.unchanged == partial["files"] and report.added, "finished files are kept, the rest added"
    table = service.collections.table("kb")
    rows = table.search().select(["id", "path", "file_hash"]).limit(10_000).to_arrow()
    assert len(set(rows["id"].to_pylist())) == rows.num_rows, "no duplicate chunks"
    clean = Service(model_workspace.root)
    fresh = clean.ingest("kb-clean", str(root))
    assert fresh.rows == rows.num_rows, "the same chunks as an ingest that was never interrupted"


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads files whatever their mode; runs as a normal user")
def test_unreadable_file_is_reported(service, tmp_path):
    folder = tmp_path / "locked"
    folder.mkdir()
    (folder / "open.md").write_text("# Open\n\nreadable\n")
    closed = folder / "closed.md"
    closed.write_text("# Closed\n")
    closed.chmod(0)
    report = service.ingest("kb", str(folder))
    assert [Path(p).name for p in report.added] == ["open.md"]
    assert report.failed == [(str(closed), "no permission to read it")]


def test_cli_ingest_search_collections(model_workspace, corpus):
    root, _ = corpus
    result = run_cli("ingest", str(root / "docs"), "-c", "kb", "--include", "*.md", "--json", timeout=300)
    assert result.returncode == 0, result.stderr
    assert [Path(p).name for p in json.loads(result.stdout)["added"]] == ["manual.md"]
    plain = run_cli("ingest", str(root / "docs"), "-c", "kb", timeout=300)
    assert plain.returncode == 0 and "2 added" in plain.stdout and "1 unchanged" in plain.stdout

    hits = run_cli("search", "fog horn", "-c", "kb", "--json")
    assert hits.returncode == 0, hits.stderr
    assert json.loads(hits.stdout)[0]["headings"] == "Lighthouse manual > Storm procedure"
    shown = run_cli("search", "fog horn", "-c", "kb", "-k", "1")
    assert "manual.md" in shown.stdout and "Storm procedure" in shown.stdout

    listed = run_cli("collections", "list")
    assert listed.returncode == 0 and "kb" in listed.stdout
    versions = run_cli("collections", "versions", "kb")
    first = versions.stdout.splitlines()[1].split()[0]
    restored = run_cli("collections", "restore", "kb", first)
    assert restored.returncode == 0 and f"restored to version {first}" in restored.stdout

    assert run_cli("search", "x", "-c", "nope").returncode == 7
    bad_name = run_cli("ingest", str(root), "-c", "../evil")
    assert bad_name.returncode == 7 and "not a valid collection name" in bad_name.stderr
    missing = run_cli("ingest", str(root / "nowhere"), "-c", "kb")
    assert missing.returncode == 7 and "does not exist" in missing.stderr


def test_an_ann_index_is_built_past_the_configured_row_count(model_workspace, tmp_path):
    model_workspace.config_path.write_text("[documents]\nann_index_rows = 256\n")
    service = Service(model_workspace.root)
    sections = "\n".join(
        f"## Station {i}\n\nBuoy {i} measured a wave of {i % 7} meters.\n" for i in range(300)
    )
    (tmp_path / "buoys.md").write_text("# Buoys\n\n" + sections)
    report = service.ingest("sea", str(tmp_path / "buoys.md"))
    assert report.rows >= 256
    indices = " ".join(service.collection("sea")["indices"])
    assert "IvfPq" in indices and "FTS" in indices, indices
    hit = service.search("sea", "Buoy 123 measured a wave", "vector", k=3)
    assert hit and all("Station" in h["headings"] for h in hit)


def test_collections_list_needs_no_lancedb(service, corpus, model_workspace):
    import subprocess
    import sys

    root, _ = corpus
    service.ingest("kb", str(root / "docs"))
    live = service.collection("kb")
    script = (
        "import json, sys\n"
        "sys.modules['lancedb'] = None\n"
        "from workbench.services import Service\n"
        f"print(json.dumps(Service({str(model_workspace.root)!r}).list_collections(), default=str))\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr[-2000:]
    listed = json.loads(done.stdout)[0]
    assert {k: listed[k] for k in ("rows", "files", "version", "indices")} == {
        k: live[k] for k in ("rows", "files", "version", "indices")
    }
    restored = service.restore_collection("kb", live["version"] - 1)
    assert service.list_collections()[0]["version"] == restored == service.collection("kb")["version"]


def test_an_index_build_prints_no_library_warnings_unless_asked(model_workspace, tmp_path):
    """LanceDB's Rust core logged "WARN lance::index::vector ... partitions" lines to the user at
    every ANN index build (red-team review, low); they show with --verbose only."""
    corpus = tmp_path / "many"
    corpus.mkdir()
    words = "tide harbour lighthouse keeper night storm ship rope anchor sail wind wave gull".split()
    for i in range(300):
        (corpus / f"n{i}.md").write_text(
            f"# Note {i}\n\n" + " ".join(words[(i * 7 + j) % 13] for j in range(40))
        )
    with open(model_workspace.config_path, "a") as config:
        config.write("\n[documents]\nann_index_rows = 256\n")
    quiet = run_cli("ingest", str(corpus), "-c", "quiet", timeout=300)
    assert quiet.returncode == 0, quiet.stderr
    assert "300 in quiet" in quiet.stdout + quiet.stderr
    assert "WARN" not in quiet.stderr and "lance::" not in quiet.stderr, quiet.stderr
    loud = run_cli("--verbose", "ingest", str(corpus), "-c", "loud", timeout=300)
    assert loud.returncode == 0 and "lance::index" in loud.stderr, "the warning is there when asked for"
