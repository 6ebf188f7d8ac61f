"""indexes/lance_native.py searches through lancedb's native module as lancedb's own Python
package would: pinned here against lancedb's package on the same tables (the rows, distances
and scores equal), and in fresh interpreters for what it spares a cold search."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from indexes import lance_native
from indexes.lancedb_import import import_lancedb

COLUMNS = ["id", "path", "ext", "text"]
WORDS = "storm horn lamp keeper fog weather light tower ship rock wave night signal bell oil".split()


def _rows(count: int, seed: int) -> list[dict]:
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(count):
        vector = rng.normal(size=64).astype(np.float32)
        rows.append(
            {
                "id": f"c{seed}-{i}",
                "path": f"/docs/{'a' if i % 2 else 'b'}/f{i % 7}.md",
                "ext": ".md" if i % 3 else ".txt",
                # lengths and words vary, so BM25 scores rarely tie
                "text": " ".join(rng.choice(WORDS, 5 + i % 17)) + f" é{i}",
                "vector": vector / np.linalg.norm(vector),
            }
        )
    return rows


@pytest.fixture(scope="module")
def tables(tmp_path_factory):
    """A table in three versions (create, full-text index, more rows), and one with an IVF-PQ
    index, written by lancedb's package as ingest writes them."""
    from lancedb.index import FTS, IvfPq

    uri = str(tmp_path_factory.mktemp("lance"))
    db = import_lancedb().connect(uri)
    table = db.create_table("notes", _rows(120, 0))
    table.create_index("text", config=FTS())
    table.add(_rows(60, 1))
    indexed = db.create_table("indexed", _rows(600, 2))
    indexed.create_index("vector", config=IvfPq(distance_type="cosine", num_partitions=4, num_sub_vectors=8))
    indexed.create_index("text", config=FTS())
    return uri, db


def _by_rank(rows: list[dict], key: str, descending: bool) -> list[dict]:
    """Rows in rank order with ties broken by id: the native and package queries may return
    rows of an equal score in either order, and nothing else may differ."""
    scores = [row[key] for row in rows]
    assert scores == sorted(scores, reverse=descending), "rows come best first"
    return sorted(rows, key=lambda row: (-row[key] if descending else row[key], row["id"]))


@pytest.mark.parametrize("name", ["notes", "indexed"])
@pytest.mark.parametrize("where", [None, "ext = '.md' AND path LIKE '%/a/%'"])
def test_vector_and_full_text_rows_equal_lancedbs(tables, name, where):
    uri, db = tables
    native = lance_native.connect(uri).open_table(name)
    package = db.open_table(name)
    query = _rows(1, 99)[0]["vector"]

    ours = native.vector_search(query, "vector", "cosine", [*COLUMNS, "_distance"], 25, where)
    builder = package.search(query, vector_column_name="vector").distance_type("cosine")
    builder = builder.select([*COLUMNS, "_distance"])
    theirs = (builder.where(where, prefilter=True) if where else builder).limit(25).to_list()
    assert len(ours) == 25
    assert ours == theirs  # float distances of random vectors do not tie: equal as they come

    for text in ("storm horn", "keeper é7"):
        ours = native.text_search(text, "text", [*COLUMNS, "_score"], 1000, where)
        builder = package.search(text, query_type="fts", fts_columns="text").select([*COLUMNS, "_score"])
        theirs = (builder.where(where, prefilter=True) if where else builder).limit(1000).to_list()
        assert ours, text
        assert _by_rank(ours, "_score", True) == _by_rank(theirs, "_score", True)


def test_versions_and_a_checkout_read_as_lancedbs(tables):
    uri, db = tables
    native = lance_native.connect(uri).open_table("notes")
    package = db.open_table("notes")
    assert native.version == package.version == 3
    assert native.versions() == [v["version"] for v in package.list_versions()] == [1, 2, 3]

    native.checkout(1)
    package.checkout(1)
    assert native.version == 1
    query = _rows(1, 7)[0]["vector"]
    ours = native.vector_search(query, "vector", "cosine", [*COLUMNS, "_distance"], 500, None)
    theirs = (
        package.search(query).distance_type("cosine").select([*COLUMNS, "_distance"]).limit(500).to_list()
    )
    assert len(ours) == 120 and ours == theirs, "version 1 holds the first 120 rows only"
    assert lance_native.connect(uri).open_table("notes").version == 3, "a checkout stays on its handle"


def test_a_missing_table_is_a_value_error_as_in_lancedb(tables):
    uri, _ = tables
    with pytest.raises(ValueError, match="nope"):
        lance_native.connect(uri).open_table("nope")


def _python(code: str) -> str:
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


def test_a_search_loads_neither_lancedbs_package_nor_pandas_and_lancedb_imports_after(tables):
    """The point of the adapter, in a fresh interpreter; and lancedb's package, imported
    afterwards in the same process, takes the native module already loaded and works."""
    uri, _ = tables
    out = _python(
        "import sys\n"
        "from indexes import lance_native\n"
        f"table = lance_native.connect({uri!r}).open_table('notes')\n"
        "hits = table.text_search('storm', 'text', ['id', '_score'], 3, None)\n"
        "print(len(hits), 'lancedb' in sys.modules, 'pandas' in sys.modules)\n"
        "from indexes.lancedb_import import import_lancedb\n"
        "lancedb = import_lancedb()\n"
        "print(lancedb._lancedb is sys.modules['lancedb._lancedb'])\n"
        f"rows = lancedb.connect({uri!r}).open_table('notes').search('storm', query_type='fts').limit(3).to_list()\n"
        "print([r['id'] for r in rows] == [h['id'] for h in hits])\n"
    )
    assert out.split() == ["3", "False", "False", "True", "True"]


def test_a_cold_workbench_search_imports_neither_lancedb_nor_pandas_nor_torch(model_workspace, tmp_path):
    from workbench.services import Service

    (tmp_path / "guide.md").write_text(
        "# Keeper's guide\n\n## Storm procedure\n\nSound the fog horn every two minutes.\n\n"
        "## Lamp care\n\nTrim the wick at dusk.\n"
    )
    Service(model_workspace.root).ingest("kb", str(tmp_path / "guide.md"))
    out = _python(
        "import atexit, json, sys\n"
        # registered first, so it runs last: after the exit flush of the search's span
        "atexit.register(lambda: print(json.dumps(sorted(m for m in ('lancedb', 'pandas', 'torch') if m in sys.modules))))\n"
        "from workbench.cli import main\n"
        f"main(['--workspace', {str(model_workspace.root)!r}, 'search', 'how often does the horn sound', '-c', 'kb', '--json'])\n"
    )
    *hits, loaded = out.strip().splitlines()
    assert json.loads(loaded) == []
    assert json.loads("\n".join(hits))[0]["headings"] == "Keeper's guide > Storm procedure"
