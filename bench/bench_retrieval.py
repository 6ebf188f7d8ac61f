"""Retrieval quality and speed on a real documentation corpus we did not write.

Corpus: the Debian Reference (Debian package debian-reference-en 2.100, its 14 HTML chapters,
~460 sections), fetched with `apt-get download` into ~/.cache/workbench/bench/ once.
Questions: bench/data/debian_reference_questions.jsonl, 56 paraphrased questions, each labelled
with the one section that answers it (its heading). A hit finds the section when its deepest
heading is that heading.

Prints, per mode (vector, fts, hybrid) with and without reranking: section recall@5, MRR@10,
and the p50 search time (query encoding included) on the corpus and on a 10,000-chunk copy of
it; then JSON lines for bench/run.py. `--sweep` also prints the fusion settings tried.

    python bench/bench_retrieval.py [--sweep] [--cross-encoder PATH]
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.figures import emit  # noqa: E402
from indexes.retrieval import Fusion, Stages, search  # noqa: E402
from local_models.fetch import fetch_models  # noqa: E402
from workbench.services import Service  # noqa: E402

PACKAGE, VERSION = "debian-reference-en", "2.100"
CACHE = Path.home() / ".cache" / "workbench" / "bench"
QUESTIONS = ROOT / "bench" / "data" / "debian_reference_questions.jsonl"
PADDED_ROWS = 10_000


def corpus() -> Path:
    """The package's HTML chapters (not its one-page index), fetched once."""
    target = CACHE / f"{PACKAGE}-{VERSION}"
    html = target / "usr" / "share" / "debian-reference"
    if not html.is_dir():
        target.mkdir(parents=True, exist_ok=True)
        try:
            subprocess.run(
                ["apt-get", "download", f"{PACKAGE}={VERSION}"], cwd=target, check=True, capture_output=True
            )
        except (OSError, subprocess.CalledProcessError) as exc:
            sys.exit(
                f"cannot fetch {PACKAGE} {VERSION} with apt-get download ({exc}); fetch the .deb into {target}"
            )
        deb = next(target.glob("*.deb"))
        subprocess.run(["dpkg-deb", "-x", str(deb), str(target)], check=True)
    chapters = CACHE / "debian-reference-chapters"
    if not chapters.is_dir():
        chapters.mkdir()
        for page in html.glob("*.en.html"):
            if not page.name.startswith("index"):
                shutil.copy(page, chapters / page.name)
    return chapters


def workspace() -> Service:
    models = ROOT / ".test-models"
    fetch_models(models, ["minilm"])
    root = CACHE / "retrieval-workspace"
    service = Service(root)
    link = service.workspace.models_dir / "all-MiniLM-L6-v2"
    if not link.exists():
        link.symlink_to(models / "all-MiniLM-L6-v2")
    return service


def padded(service: Service, name: str, rows: int) -> str:
    """A copy of collection ``name`` grown to ``rows`` chunks (copies under other paths with
    their vectors nudged), for timing search at that size: speed, not quality."""
    import numpy as np
    import pyarrow as pa

    big = f"{name}-{rows // 1000}k"
    source = service.collections.table(name)
    if big in service.collections.names() and service.collections.table(big).count_rows() >= rows:
        return big
    data = source.to_arrow()
    rng = np.random.default_rng(7)
    parts, total, copy = [data], data.num_rows, 0
    while total < rows:
        copy += 1
        vectors = data["vector"].to_numpy(zero_copy_only=False)
        vectors = np.stack(vectors) + rng.normal(0, 0.02, (data.num_rows, vectors[0].shape[0]))
        vectors = (vectors / np.linalg.norm(vectors, axis=1, keepdims=True)).astype(np.float32)
        part = data.set_column(
            data.schema.get_field_index("vector"),
            "vector",
            pa.FixedSizeListArray.from_arrays(pa.array(vectors.ravel()), vectors.shape[1]),
        )
        part = part.set_column(
            part.schema.get_field_index("id"), "id", pa.array([f"{i}-{copy}" for i in data["id"].to_pylist()])
        )
        part = part.set_column(
            part.schema.get_field_index("path"),
            "path",
            pa.array([f"copy{copy}/{p}" for p in data["path"].to_pylist()]),
        )
        parts.append(part)
        total += data.num_rows
    table = pa.concat_tables(parts).slice(0, rows)
    meta = service.collections.meta(name)
    meta.pop("summary", None)  # the copy's own is written below
    service.collections.meta_path(big).write_text(json.dumps(meta), encoding="utf-8")
    created = service.collections.db.create_table(big, data=table, mode="overwrite")
    service.collections.build_indices(created, force_fts=True)
    service.collections.remember(big, created)
    return big


def evaluate(service, name, questions, mode, fusion=None, reranker=None, k=10):
    """(recall@5, MRR@10, p50 ms) of ``mode`` over the questions."""
    table, meta = service.collections.reader(name), service.collections.meta(name)
    found5, reciprocal, times = 0, 0.0, []
    for question in questions:
        started = time.perf_counter()
        hits = search(table, meta, question["q"], mode, k, None, None, None, fusion, reranker, Stages())
        times.append((time.perf_counter() - started) * 1000)
        sections = [h["headings"].split(" > ")[-1] for h in hits]
        if question["section"] in sections[:5]:
            found5 += 1
        if question["section"] in sections:
            reciprocal += 1 / (sections.index(question["section"]) + 1)
    return found5 / len(questions), reciprocal / len(questions), statistics.median(times)


def latency(service, name, questions, mode, reranker=None, repeat=3):
    table, meta = service.collections.reader(name), service.collections.meta(name)
    times = []
    for _ in range(repeat):
        for question in questions:
            started = time.perf_counter()
            search(table, meta, question["q"], mode, 5, None, None, None, None, reranker, Stages())
            times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sweep", action="store_true", help="also print the fusion settings tried")
    parser.add_argument("--cross-encoder", type=Path, help="a sentence-transformers CrossEncoder folder")
    parser.add_argument(
        "--plain", action="store_true", help="chunks embedded without their heading path (as before #15)"
    )
    args = parser.parse_args()
    from indexes.rerank import CrossEncoderReranker, SectionReranker

    questions = [json.loads(line) for line in QUESTIONS.read_text().splitlines() if line.strip()]
    service = workspace()
    name = "debref-plain" if args.plain else "debref"
    if args.plain and name not in service.collections.names():
        meta = service.collections.create(name, None, False)
        meta["context_header"] = False
        service.collections.meta_path(name).write_text(json.dumps(meta), encoding="utf-8")
    report = service.ingest(name, str(corpus()))
    rows = service.collections.table(name).count_rows()
    meta = service.collections.meta(name)
    print(f"# corpus: {rows} chunks, {len(questions)} questions ({report.summary()})", file=sys.stderr)
    rerankers = {"none": None, "sections": SectionReranker(Path(meta["model_path"]))}
    if args.cross_encoder:
        rerankers[f"cross-encoder {args.cross_encoder.name}"] = CrossEncoderReranker(args.cross_encoder)
    # warm both the embedder and LanceDB's caches before timing
    evaluate(service, name, questions[:5], "hybrid", reranker=rerankers["sections"])

    if args.sweep:
        print(f"{'fusion / rerank':<40} {'recall@5':>9} {'MRR@10':>7}")
        for weight in (1.0, 2.0, 3.0, 4.0):
            fusion = Fusion(method="zscore", vector_weight=weight)
            recall, mrr, _ = evaluate(service, name, questions, "hybrid", fusion)
            print(f"{'zscore vector x' + str(weight):<40} {recall:>9.3f} {mrr:>7.3f}")
            for k in (10, 60):
                fusion = Fusion(method="rrf", rrf_k=k, vector_weight=weight)
                recall, mrr, _ = evaluate(service, name, questions, "hybrid", fusion)
                print(f"{f'rrf k={k} vector x{weight}':<40} {recall:>9.3f} {mrr:>7.3f}")
        for heading_weight in (0.25, 0.5, 1.0):
            reranker = SectionReranker(Path(meta["model_path"]), heading_weight=heading_weight)
            recall, mrr, _ = evaluate(service, name, questions, "hybrid", reranker=reranker)
            print(f"{f'hybrid + sections, headings x{heading_weight}':<40} {recall:>9.3f} {mrr:>7.3f}")

    big = padded(service, name, PADDED_ROWS)
    print(f"\n{'mode':<8} {'rerank':<14} {'recall@5':>9} {'MRR@10':>7} {'p50 ms':>7} {'p50 ms @10k':>12}")
    results = {}
    for mode in ("vector", "fts", "hybrid"):
        for label, reranker in rerankers.items():
            recall, mrr, p50 = evaluate(service, name, questions, mode, reranker=reranker)
            p50_big = latency(service, big, questions, mode, reranker)
            results[(mode, label)] = (recall, mrr, p50, p50_big)
            print(f"{mode:<8} {label:<14} {recall:>9.3f} {mrr:>7.3f} {p50:>7.1f} {p50_big:>12.1f}")

    best_single = max(results[("vector", "none")][0], results[("fts", "none")][0])
    hybrid = results[("hybrid", "none")]
    reranked = results[("hybrid", "sections")]
    emit(
        "hybrid + rerank section recall@5 (Debian Reference, 56 questions)",
        reranked[0],
        "",
        ">= 0.9",
        reranked[0] >= 0.9,
        note=f"MRR@10 {reranked[1]:.3f}; {rows} chunks",
    )
    emit(
        "hybrid section recall@5 over the best single mode",
        hybrid[0],
        "",
        f">= {best_single:.3f}",
        hybrid[0] >= best_single,
        ratio=hybrid[0] / best_single if best_single else None,
    )
    emit(
        f"hybrid search p50 at {PADDED_ROWS:,} chunks (query encoding included)",
        hybrid[3],
        "ms",
        "<= 50 ms",
        hybrid[3] <= 50,
        note=f"with the sections rerank {reranked[3]:.1f} ms",
    )


if __name__ == "__main__":
    main()
