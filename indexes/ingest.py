"""Ingest: files into a collection, incrementally.

A file's chunks are written together in one add() (batches close on file boundaries), after
the rows of its previous version are deleted. So a SIGKILL leaves every file either at its old
version, at its new one, or absent, and the next run re-adds what is absent: no duplicates,
no half-written files. Unchanged files are skipped by content hash; unchanged chunks of a
changed file keep their vectors (looked up by model and chunk hash).
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from indexes.chunking import chunk_settings, prepare_chunks
from indexes.collection import Collections, check_name, known_files, sql_literal
from indexes.loaders import LoadedFile, LoadFailure, file_digest, load_file, walk
from workbench.core.errors import CollectionError

__all__ = ["IngestReport", "Ingest", "ingest"]


@dataclass
class IngestReport:
    collection: str
    added: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    unchanged: int = 0
    # left out by a rule, with the reason: type, size, hidden, --include/--exclude, .gitignore
    skipped: list[tuple[str, str]] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)
    chunks_added: int = 0
    chunks_embedded: int = 0  # chunks_added minus the vectors reused by chunk hash
    masked: dict[str, int] = field(default_factory=dict)
    rows: int = 0
    version: int | None = None
    seconds: float = 0.0
    trace_id: str | None = None

    def summary(self) -> str:
        masked = ", ".join(f"{n} {kind}" for kind, n in sorted(self.masked.items()))
        return (
            f"{len(self.added)} added, {len(self.updated)} updated, {len(self.removed)} removed, "
            f"{self.unchanged} unchanged, {len(self.skipped)} skipped, {len(self.failed)} failed; "
            f"{self.chunks_added} chunks written "
            f"({self.chunks_embedded} embedded), {self.rows} in {self.collection}"
            + (f"; masked {masked}" if masked else "")
            + f" in {self.seconds:.1f} s"
        )

    def details(self, limit: int = 20) -> list[tuple[str, str, str]]:
        """(what, path, reason) for the failed then the skipped files, ``limit`` of each; past
        it, one line per reason with how many more it left out."""
        lines = []
        for what, entries in (("failed", self.failed), ("skipped", self.skipped)):
            lines += [(what, path, reason) for path, reason in entries[:limit]]
            rest = Counter(reason for _, reason in entries[limit:])
            lines += [(what, f"... {n} more", reason) for reason, n in rest.most_common()]
        return lines


Progress = Callable[[dict[str, Any]], None]


def ingest(
    collections: Collections,
    name: str,
    source: str | Path,
    include: list[str] | None = None,
    exclude: list[str] | None = None,
    redact: bool | None = None,
    model: str | None = None,
    progress: Progress | None = None,
    ray: Any = None,
    ray_actors: int = 0,
) -> IngestReport:
    """Ingest a file or folder into collection ``name`` (created on first use); with ``ray``
    (a connected ray module) the files are read, cut and embedded on its cluster, by
    ``ray_actors`` embedding actors (0: one per GPU, or per node without GPUs)."""
    return Ingest(collections).run(name, source, include, exclude, redact, model, progress, ray, ray_actors)


class Ingest:
    def __init__(self, collections: Collections) -> None:
        self.collections = collections

    def run(
        self,
        name: str,
        source: str | Path,
        include: list[str] | None = None,
        exclude: list[str] | None = None,
        redact: bool | None = None,
        model: str | None = None,
        progress: Progress | None = None,
        ray: Any = None,
        ray_actors: int = 0,
    ) -> IngestReport:
        check_name(name)
        started = time.perf_counter()
        report = IngestReport(name)
        with (
            self.collections.lock(name),
            self.collections.tracer.span(
                "ingest",
                "ingest",
                {
                    "gen_ai.operation.name": "ingest",
                    "workbench.collection": name,
                    "workbench.source": str(source),
                },
            ) as span,
        ):
            meta = (
                self.collections.meta(name)
                if self.collections.meta_path(name).exists()
                else self.collections.create(name, model, bool(redact))
            )
            if model and model != meta["model"]:
                raise CollectionError(
                    f"'{name}' is embedded with {meta['model']}, not {model}",
                    "ingest into a new collection to use another model",
                )
            if redact is not None and redact != meta["redact"]:
                meta["redact"] = redact
                self.collections.save_meta(name, meta)
            report.trace_id = span.trace_id
            work = self._ingest if ray is None else self._ingest_on_ray(ray, ray_actors)
            work(name, meta, Path(source), include, exclude, progress or (lambda event: None), report)
            report.seconds = time.perf_counter() - started
            span.update(
                {
                    "workbench.ingest.added": len(report.added),
                    "workbench.ingest.updated": len(report.updated),
                    "workbench.ingest.removed": len(report.removed),
                    "workbench.ingest.unchanged": report.unchanged,
                    "workbench.ingest.skipped": len(report.skipped),
                    "workbench.ingest.failed": len(report.failed),
                    "workbench.ingest.chunks": report.chunks_added,
                    "workbench.ingest.masked": report.masked,
                    "workbench.collection.version": report.version,
                }
            )
        return report

    def _ingest(self, name, meta, source, include, exclude, progress, report) -> None:
        from indexes.embedder import get_embedder

        table, found, keys, known, removed = self._scan(source, include, exclude, progress, report)
        embedder = None  # loaded on the first changed file: an unchanged corpus needs no model
        settings = None
        pending: list[tuple[LoadedFile, list]] = []
        masked: Counter[str] = Counter()
        for done, (path, key) in enumerate(zip(found.files, keys), start=1):
            loaded = load_file(path, self._max_bytes(), skip_hash=known.get(key))
            if loaded is None:
                report.unchanged += 1
            elif isinstance(loaded, LoadFailure):
                (report.skipped if loaded.skipped else report.failed).append((key, loaded.reason))
            else:
                if embedder is None:
                    embedder = get_embedder(Path(meta["model_path"]))
                    settings = chunk_settings(meta, embedder.max_tokens)
                loaded.path = Path(key)
                pending.append((loaded, prepare_chunks(loaded, embedder.tokenizer, settings, masked)))
            progress({"phase": "read", "done": done, "total": len(found.files), "file": key})
        report.masked = dict(masked)
        # A file that now fails to load keeps its old chunks: a transient error loses nothing.
        changed = [loaded for loaded, _ in pending if str(loaded.path) in known]
        doomed = removed + [str(f.path) for f in changed]
        # Look vectors up before the old rows of changed files are deleted: most of their
        # chunks are usually unchanged.
        reuse = self._reusable_vectors(table, [c.hash for _, chunks in pending for c in chunks])
        self._delete(table, doomed)
        report.removed = removed
        report.updated = [str(f.path) for f in changed]
        report.added = [str(loaded.path) for loaded, _ in pending if str(loaded.path) not in known]
        table = self._write(name, table, meta, embedder, pending, reuse, progress, report)
        self._finish(name, table, known, doomed, [loaded for loaded, chunks in pending if chunks], report)

    def _ingest_on_ray(self, ray, actors: int):
        def work(name, meta, source, include, exclude, progress, report) -> None:
            """The diff here, the reading, cutting and embedding on the cluster, the commits
            here: files whole, a batch of them per commit, as in-process."""
            from indexes.embedder import get_embedder
            from indexes.ray_ingest import embedded_files, model_max_tokens

            table, found, keys, known, removed = self._scan(source, include, exclude, progress, report)
            todo = []
            for done, (path, key) in enumerate(zip(found.files, keys), start=1):
                digest = file_digest(path, self._max_bytes())
                if isinstance(digest, LoadFailure):
                    (report.skipped if digest.skipped else report.failed).append((key, digest.reason))
                elif digest == known.get(key):
                    report.unchanged += 1
                else:
                    todo.append((key, str(path)))
                progress({"phase": "read", "done": done, "total": len(found.files), "file": key})
            self._delete(table, removed)
            report.removed, doomed, written = removed, list(removed), []
            if todo:
                model_path = Path(meta["model_path"])
                window = model_max_tokens(model_path) or get_embedder(model_path).max_tokens
                settings = chunk_settings(meta, window)
                batch: list[tuple[LoadedFile, list]] = []
                vectors: dict[str, Any] = {}
                size, dimensions, masked = 0, 0, Counter[str]()

                def commit() -> None:
                    nonlocal table, batch, size
                    # A changed file's old rows go just before its new ones: a kill between
                    # leaves it absent, and the next run adds it.
                    replaced = [str(loaded.path) for loaded, _ in batch if str(loaded.path) in known]
                    self._delete(table, replaced)
                    doomed.extend(replaced)
                    if any(chunks for _, chunks in batch):
                        table = self._add(name, table, batch, vectors, meta["model"], dimensions)
                    written.extend(loaded for loaded, chunks in batch if chunks)
                    report.chunks_added += size
                    batch, size = [], 0
                    vectors.clear()

                attributes = {"workbench.files": len(todo), "workbench.ray.nodes": len(ray.nodes())}
                nodes: Counter[str] = Counter()  # files embedded by each node
                with self.collections.tracer.span("ray.ingest", "embedding", attributes) as span:
                    for key, loaded, chunks, file_masked, part, node in embedded_files(
                        ray, todo, settings, model_path, self._max_bytes(), actors
                    ):
                        if isinstance(loaded, LoadFailure):
                            (report.skipped if loaded.skipped else report.failed).append((key, loaded.reason))
                            continue
                        progress(
                            {
                                "phase": "embed",
                                "done": len(report.added) + len(report.updated) + 1,
                                "total": len(todo),
                            }
                        )
                        (report.updated if key in known else report.added).append(key)
                        masked.update(file_masked)
                        for chunk, vector in zip(chunks, part):
                            vectors[chunk.hash] = vector
                        dimensions = dimensions or (part.shape[1] if len(part) else 0)
                        report.chunks_embedded += len(chunks)
                        nodes[node] += 1
                        batch.append((loaded, chunks))
                        size += len(chunks)
                        if size >= self.collections.config.commit_rows:
                            commit()
                    commit()
                    span.set("workbench.ray.embed_nodes", dict(nodes))
                report.masked = dict(masked)
                report.added.sort()
                report.updated.sort()
            self._finish(name, table, known, doomed, written, report)

        return work

    def _scan(self, source, include, exclude, progress, report):
        """The table, the files under ``source``, their keys, what the table knows (path ->
        file hash) and the known files under ``source`` that are gone."""
        found = walk(source, include, exclude)
        report.failed += [(str(f.path), f.reason) for f in found.failures]
        report.skipped += [(str(f.path), f.reason) for f in found.skipped]
        table = self.collections.open_or_none(report.collection)
        known = known_files(table)  # path -> file hash
        # A file is known by its resolved path; a symlinked file by its own (absolute) path.
        keys = [str(path.absolute() if path.is_symlink() else path.resolve()) for path in found.files]
        progress({"phase": "scan", "files": len(found.files)})
        # Only files under this source can have been deleted: a collection may hold several.
        scope, seen = str(source.resolve()), set(keys)
        removed = sorted(p for p in set(known) - seen if p == scope or p.startswith(scope.rstrip("/") + "/"))
        return table, found, keys, known, removed

    def _max_bytes(self) -> int:
        return int(self.collections.config.max_file_mb * 1e6)

    def _delete(self, table, paths: list[str]) -> None:
        if not paths or table is None:
            return
        with self.collections.tracer.span("lancedb.delete", "io", {"workbench.files": len(paths)}):
            for begin in range(0, len(paths), 500):
                table.delete(
                    "path IN (" + ", ".join(sql_literal(p) for p in paths[begin : begin + 500]) + ")"
                )

    def _add(self, name, table, batch, vectors, model: str, dimensions: int):
        """One commit: the rows of whole files."""
        import pyarrow as pa

        rows = _rows(batch, vectors, model)
        data = pa.Table.from_pylist(rows, schema=_schema(dimensions))
        with self.collections.tracer.span("lancedb.add", "io", {"workbench.rows": len(rows)}):
            if table is None:
                return self.collections.db.create_table(name, data=data)
            table.add(data)
            return table

    def _finish(self, name, table, known, doomed, written, report) -> None:
        if table is None:
            return
        self.collections.build_indices(table, force_fts=bool(written or doomed))
        report.rows, report.version = table.count_rows(), table.version
        # The files now in the table: those it had, less the deleted, plus those written.
        files = (set(known) - set(doomed)) | {str(loaded.path) for loaded in written}
        self.collections.remember(name, table, len(files))

    def _write(self, name, table, meta, embedder, pending, reuse, progress, report):
        total = sum(len(chunks) for _, chunks in pending)
        done = 0

        def flush(batch: list[tuple[LoadedFile, list]]):
            nonlocal table, done
            chunks = [c for _, cs in batch for c in cs]
            if not chunks:
                return
            fresh = [c for c in chunks if c.hash not in reuse]
            with self.collections.tracer.span(
                "embed.batch",
                "embedding",
                {
                    "gen_ai.operation.name": "embeddings",
                    "gen_ai.request.model": meta["model"],
                    "workbench.chunks": len(fresh),
                    "workbench.device": embedder.device,
                },
            ):
                vectors = (
                    embedder.encode(
                        [c.embed_text for c in fresh],
                        progress=lambda n: progress({"phase": "embed", "done": done + n, "total": total}),
                    )
                    if fresh
                    else []
                )
            for chunk, vector in zip(fresh, vectors):
                reuse[chunk.hash] = vector
            report.chunks_embedded += len(fresh)
            table = self._add(name, table, batch, reuse, meta["model"], embedder.dimensions)
            done += len(chunks)
            report.chunks_added += len(chunks)
            progress({"phase": "write", "done": done, "total": total})

        batch, size = [], 0
        for item in pending:
            batch.append(item)
            size += len(item[1])
            if size >= self.collections.config.commit_rows:
                flush(batch)
                batch, size = [], 0
        flush(batch)
        return table

    def _reusable_vectors(self, table, hashes: list[str]) -> dict[str, Any]:
        if table is None or not hashes:
            return {}
        found: dict[str, Any] = {}
        unique = sorted(set(hashes))
        for begin in range(0, len(unique), 1000):
            part = unique[begin : begin + 1000]
            rows = (
                table.search()
                .where("chunk_hash IN (" + ", ".join(sql_literal(h) for h in part) + ")")
                .select(["chunk_hash", "vector"])
                .limit(len(part) * 50)
                .to_arrow()
            )
            for chunk_hash, vector in zip(
                rows["chunk_hash"].to_pylist(), rows["vector"].to_numpy(zero_copy_only=False)
            ):
                found[chunk_hash] = vector
        return found


def _schema(dimensions: int):
    import pyarrow as pa

    return pa.schema(
        [
            ("id", pa.string()),
            ("path", pa.string()),
            ("ext", pa.string()),
            ("kind", pa.string()),
            ("title", pa.string()),
            ("headings", pa.string()),
            ("page", pa.int32()),
            ("start", pa.int64()),
            ("end", pa.int64()),
            ("text", pa.string()),
            ("chunk_hash", pa.string()),
            ("file_hash", pa.string()),
            ("model", pa.string()),
            ("ingested_at", pa.float64()),
            ("vector", pa.list_(pa.float32(), dimensions)),
        ]
    )


def _rows(batch, vectors, model: str) -> list[dict[str, Any]]:
    import hashlib

    now, rows = time.time(), []
    for loaded, chunks in batch:
        path = str(loaded.path)
        for index, chunk in enumerate(chunks):
            rows.append(
                {
                    "id": hashlib.sha256(f"{path}\0{loaded.content_hash}\0{index}".encode()).hexdigest()[:16],
                    "path": path,
                    "ext": loaded.path.suffix.lower(),
                    "kind": loaded.kind,
                    "title": loaded.title,
                    "headings": " > ".join(chunk.headings),
                    "page": chunk.page,
                    "start": chunk.start,
                    "end": chunk.end,
                    "text": chunk.text,
                    "chunk_hash": chunk.hash,
                    "file_hash": loaded.content_hash,
                    "model": model,
                    "ingested_at": now,
                    "vector": vectors[chunk.hash],
                }
            )
    return rows
