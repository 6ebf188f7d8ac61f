"""Collections: one LanceDB table each, filled by incremental ingest.

A file's chunks are written together in one add() (batches close on file boundaries), after
the rows of its previous version are deleted. So a SIGKILL leaves every file either at its old
version, at its new one, or absent, and the next run re-adds what is absent: no duplicates,
no half-written files. Unchanged files are skipped by content hash; unchanged chunks of a
changed file keep their vectors (looked up by model and chunk hash).
"""

from __future__ import annotations

import fcntl
import json
import re
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from indexes.loaders import LoadedFile, LoadFailure, load_file, walk
from workbench.config import DocumentsConfig
from workbench.errors import CollectionError
from workbench.tracing import Tracer
from workbench.workspace import Workspace

__all__ = ["Collections", "IngestReport"]

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")
_ROWS_PER_ADD = 5000  # every add() is a LanceDB commit: thousands of rows each


@dataclass
class IngestReport:
    collection: str
    added: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    skipped: int = 0
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
        return (f"{len(self.added)} added, {len(self.updated)} updated, {len(self.removed)} removed, "
                f"{self.skipped} skipped, {len(self.failed)} failed; {self.chunks_added} chunks written "
                f"({self.chunks_embedded} embedded), {self.rows} in {self.collection}"
                + (f"; masked {masked}" if masked else "") + f" in {self.seconds:.1f} s")  # fmt: skip


Progress = Callable[[dict[str, Any]], None]


class Collections:
    def __init__(self, workspace: Workspace, tracer: Tracer, config: DocumentsConfig,
                 find_model: Callable[[str], tuple[str, str, Path]]) -> None:  # fmt: skip
        """``find_model(name)`` gives (alias, kind, path) of a model in the workspace catalog."""
        self.workspace, self.tracer, self.config, self.find_model = workspace, tracer, config, find_model
        self._db = None

    @property
    def db(self):
        if self._db is None:
            import lancedb

            self._db = lancedb.connect(str(self.workspace.lancedb_dir))
        return self._db

    # -- metadata -------------------------------------------------------------------------

    def _meta_path(self, name: str) -> Path:
        return self.workspace.lancedb_dir / f"{name}.collection.json"

    def meta(self, name: str) -> dict[str, Any]:
        _check_name(name)
        try:
            return json.loads(self._meta_path(name).read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise CollectionError(f"no collection named '{name}'",
                                  "see `workbench collections list`, or ingest into it first") from None  # fmt: skip
        except ValueError as exc:
            raise CollectionError(f"{self._meta_path(name)} is damaged: {exc}",
                                  "restore it from a backup, or delete the collection and ingest again") from None  # fmt: skip

    def names(self) -> list[str]:
        return sorted(p.name.removesuffix(".collection.json")
                      for p in self.workspace.lancedb_dir.glob("*.collection.json"))  # fmt: skip

    def table(self, name: str):
        self.meta(name)
        try:
            return self.db.open_table(name)
        except (ValueError, FileNotFoundError):
            raise CollectionError(f"collection '{name}' has no rows yet", "ingest into it first") from None

    def describe(self, name: str) -> dict[str, Any]:
        meta = self.meta(name)
        info = {"name": name, **meta, "rows": 0, "files": 0, "version": None, "indices": []}
        try:
            table = self.table(name)
        except CollectionError:
            return info
        info.update(rows=table.count_rows(), files=len(self._known_files(table)), version=table.version,
                    indices=[f"{i.index_type} on {', '.join(i.columns)}" for i in table.list_indices()])  # fmt: skip
        return info

    def versions(self, name: str) -> list[dict[str, Any]]:
        table = self.table(name)
        return [{"version": v["version"], "timestamp": str(v["timestamp"])} for v in table.list_versions()]

    def restore(self, name: str, version: int) -> int:
        """Make ``version`` the newest (a new version; nothing is lost, later ones remain)."""
        table = self.table(name)
        known = {v["version"] for v in table.list_versions()}
        if version not in known:
            raise CollectionError(f"'{name}' has no version {version}",
                                  f"pick one of {sorted(known)[-10:]} (`workbench collections versions {name}`)")  # fmt: skip
        with self._lock(name):
            table.restore(version)
            self._indices(table, force_fts=True)
            return table.version

    # -- ingest ---------------------------------------------------------------------------

    def _lock(self, name: str):
        return _FileLock(self.workspace.lancedb_dir / f".{name}.lock", name)

    def _create(self, name: str, model: str | None, redact: bool) -> dict[str, Any]:
        alias, kind, path = self.find_model(model or self.config.embedding_model)
        if kind != "embedding":
            raise CollectionError(f"{alias} is not an embedding model", "pick a sentence-transformers model")
        meta = {"model": alias, "model_path": str(path), "chunk_tokens": self.config.chunk_tokens,
                "chunk_overlap": self.config.chunk_overlap, "redact": redact, "created": time.time()}  # fmt: skip
        self._meta_path(name).write_text(json.dumps(meta, indent=2), encoding="utf-8")
        return meta

    def ingest(self, name: str, source: str | Path, include: list[str] | None = None,
               exclude: list[str] | None = None, redact: bool | None = None, model: str | None = None,
               progress: Progress | None = None) -> IngestReport:  # fmt: skip
        _check_name(name)
        started = time.perf_counter()
        report = IngestReport(name)
        with self._lock(name), self.tracer.span("ingest", "ingest", {
                "gen_ai.operation.name": "ingest", "workbench.collection": name, "workbench.source": str(source)}) as span:  # fmt: skip
            meta = (
                self.meta(name) if self._meta_path(name).exists() else self._create(name, model, bool(redact))
            )
            if model and model != meta["model"]:
                raise CollectionError(f"'{name}' is embedded with {meta['model']}, not {model}",
                                      "ingest into a new collection to use another model")  # fmt: skip
            if redact is not None and redact != meta["redact"]:
                meta["redact"] = redact
                self._meta_path(name).write_text(json.dumps(meta, indent=2), encoding="utf-8")
            report.trace_id = span.trace_id
            self._ingest(name, meta, Path(source), include, exclude, progress or (lambda event: None), report)
            report.seconds = time.perf_counter() - started
            span.update({"workbench.ingest.added": len(report.added), "workbench.ingest.updated": len(report.updated),
                         "workbench.ingest.removed": len(report.removed), "workbench.ingest.skipped": report.skipped,
                         "workbench.ingest.failed": len(report.failed), "workbench.ingest.chunks": report.chunks_added,
                         "workbench.ingest.masked": report.masked, "workbench.collection.version": report.version})  # fmt: skip
        return report

    def _ingest(self, name, meta, source, include, exclude, progress, report) -> None:
        from indexes.chunking import chunk_file
        from indexes.embedder import get_embedder

        found = walk(source, include, exclude)
        report.failed += [(str(f.path), f.reason) for f in found.failures]
        table = self._open_or_none(name)
        known = self._known_files(table)  # path -> file hash
        # A file is known by its resolved path; a symlinked file by its own (absolute) path.
        keys = [str(path.absolute() if path.is_symlink() else path.resolve()) for path in found.files]
        seen = set(keys)
        progress({"phase": "scan", "files": len(found.files)})

        embedder = get_embedder(Path(meta["model_path"]))
        max_tokens = min(meta["chunk_tokens"], embedder.max_tokens)
        overlap = min(meta["chunk_overlap"], max_tokens // 2)
        pending: list[tuple[LoadedFile, list]] = []
        masked: Counter[str] = Counter()
        for done, (path, key) in enumerate(zip(found.files, keys), start=1):
            loaded = load_file(path, int(self.config.max_file_mb * 1e6), skip_hash=known.get(key))
            if loaded is None:
                report.skipped += 1
            elif isinstance(loaded, LoadFailure):
                report.failed.append((key, loaded.reason))
            else:
                loaded.path = Path(key)
                chunks = chunk_file(loaded, embedder.tokenizer, max_tokens, overlap)
                if meta["redact"]:
                    from workbench.redaction import redact as mask

                    for chunk in chunks:
                        chunk.text = mask(chunk.text, masked)
                pending.append((loaded, chunks))
            progress({"phase": "read", "done": done, "total": len(found.files), "file": key})
        report.masked = dict(masked)
        # Only files under this source can have been deleted: a collection may hold several.
        scope = str(source.resolve())
        removed = sorted(p for p in set(known) - seen if p == scope or p.startswith(scope.rstrip("/") + "/"))
        # A file that now fails to load keeps its old chunks: a transient error loses nothing.
        changed = [loaded for loaded, _ in pending if str(loaded.path) in known]
        doomed = removed + [str(f.path) for f in changed]
        # Look vectors up before the old rows of changed files are deleted: most of their
        # chunks are usually unchanged.
        reuse = self._reusable_vectors(table, [c.hash for _, chunks in pending for c in chunks])
        if doomed and table is not None:
            with self.tracer.span("lancedb.delete", "io", {"workbench.files": len(doomed)}):
                for begin in range(0, len(doomed), 500):
                    table.delete("path IN (" + ", ".join(_sql(p) for p in doomed[begin : begin + 500]) + ")")
        report.removed = removed
        report.updated = [str(f.path) for f in changed]
        report.added = [str(loaded.path) for loaded, _ in pending if str(loaded.path) not in known]
        table = self._write(name, table, meta, embedder, pending, reuse, progress, report)
        if table is not None:
            self._indices(table, force_fts=bool(pending or doomed))
            report.rows, report.version = table.count_rows(), table.version

    def _open_or_none(self, name: str):
        try:
            return self.db.open_table(name)
        except (ValueError, FileNotFoundError):
            return None

    @staticmethod
    def _known_files(table) -> dict[str, str]:
        if table is None or table.count_rows() == 0:
            return {}
        rows = table.search().select(["path", "file_hash"]).limit(table.count_rows()).to_arrow()
        return dict(zip(rows["path"].to_pylist(), rows["file_hash"].to_pylist()))

    def _write(self, name, table, meta, embedder, pending, reuse, progress, report):
        import pyarrow as pa

        total = sum(len(chunks) for _, chunks in pending)
        done = 0

        def flush(batch: list[tuple[LoadedFile, list]]):
            nonlocal table, done
            chunks = [c for _, cs in batch for c in cs]
            if not chunks:
                return
            fresh = [c for c in chunks if c.hash not in reuse]
            with self.tracer.span("embed.batch", "embedding", {"gen_ai.operation.name": "embeddings",
                                  "gen_ai.request.model": meta["model"], "workbench.chunks": len(fresh),
                                  "workbench.device": embedder.device}):  # fmt: skip
                vectors = embedder.encode([c.text for c in fresh], progress=lambda n: progress(
                    {"phase": "embed", "done": done + n, "total": total})) if fresh else []  # fmt: skip
            for chunk, vector in zip(fresh, vectors):
                reuse[chunk.hash] = vector
            report.chunks_embedded += len(fresh)
            rows = _rows(batch, reuse, meta["model"])
            data = pa.Table.from_pylist(rows, schema=_schema(embedder.dimensions))
            with self.tracer.span("lancedb.add", "io", {"workbench.rows": len(rows)}):
                if table is None:
                    table = self.db.create_table(name, data=data)
                else:
                    table.add(data)
            done += len(chunks)
            report.chunks_added += len(chunks)
            progress({"phase": "write", "done": done, "total": total})

        batch, size = [], 0
        for item in pending:
            batch.append(item)
            size += len(item[1])
            if size >= _ROWS_PER_ADD:
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
            rows = (table.search().where("chunk_hash IN (" + ", ".join(_sql(h) for h in part) + ")")
                    .select(["chunk_hash", "vector"]).limit(len(part) * 50).to_arrow())  # fmt: skip
            for chunk_hash, vector in zip(
                rows["chunk_hash"].to_pylist(), rows["vector"].to_numpy(zero_copy_only=False)
            ):
                found[chunk_hash] = vector
        return found

    def _indices(self, table, force_fts: bool) -> None:
        """Full-text index always; an ANN index past the configured row count (see config)."""
        with self.tracer.span("lancedb.index", "io", {"workbench.rows": table.count_rows()}):
            table.optimize()
            existing = {i.index_type for i in table.list_indices()}
            if force_fts or "FTS" not in existing:
                table.create_fts_index("text", replace=True)
            rows = table.count_rows()
            if rows >= self.config.ann_index_rows and (force_fts or "IVF_PQ" not in existing):
                from lancedb.index import IvfPq

                table.create_index("vector", config=IvfPq(distance_type="cosine", num_partitions=max(1, int(rows**0.5)),
                                                          num_sub_vectors=48))  # fmt: skip

    # -- retrieval ------------------------------------------------------------------------

    def search(self, name: str, query: str, mode: str = "hybrid", k: int = 5, min_score: float | None = None,
               path_glob: str | None = None, file_type: str | None = None,
               version: int | None = None) -> list[dict[str, Any]]:  # fmt: skip
        """Ranked chunks; ``version`` searches an older version read-only (a checkout)."""
        from indexes.retrieval import search

        if not query.strip():
            raise CollectionError("the query is empty", "type what you are looking for")
        meta = self.meta(name)
        table = self.table(name)
        if version is not None:
            known = {v["version"] for v in table.list_versions()}
            if version not in known:
                raise CollectionError(f"'{name}' has no version {version}",
                                      f"see `workbench collections versions {name}`")  # fmt: skip
            table = self.db.open_table(name)  # a handle of its own: the checkout must not stick
            table.checkout(version)
        with self.tracer.span("retrieval", "retrieval", {"gen_ai.operation.name": "retrieval",
                              "workbench.collection": name, "workbench.retrieval.mode": mode, "workbench.k": k,
                              "workbench.collection.version": table.version,
                              "gen_ai.request.model": meta["model"]}) as span:  # fmt: skip
            span.set_payload(query=query)
            hits = search(table, meta, query, mode, k, min_score, path_glob, file_type)
            span.update({"workbench.retrieval.chunk_ids": [h["id"] for h in hits],
                         "workbench.retrieval.top_score": hits[0]["score"] if hits else None})  # fmt: skip
        for hit in hits:
            hit["trace_id"] = span.trace_id
        return hits


class _FileLock:
    """One ingest per collection at a time, across processes."""

    def __init__(self, path: Path, name: str) -> None:
        self.path, self.name, self.handle = path, name, None

    def __enter__(self):
        self.handle = open(self.path, "w")  # noqa: SIM115 - closed in __exit__
        try:
            fcntl.flock(self.handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self.handle.close()
            raise CollectionError(f"another ingest into '{self.name}' is running",
                                  "wait for it to finish, then run this again") from None  # fmt: skip
        return self

    def __exit__(self, *exc) -> None:
        fcntl.flock(self.handle, fcntl.LOCK_UN)
        self.handle.close()


def _check_name(name: str) -> None:
    if not _NAME.match(name):
        raise CollectionError(f"'{name}' is not a valid collection name",
                              "use letters, digits, - and _ (up to 64, starting with a letter or digit)")  # fmt: skip


def _sql(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _schema(dimensions: int):
    import pyarrow as pa

    return pa.schema([
        ("id", pa.string()), ("path", pa.string()), ("ext", pa.string()), ("kind", pa.string()),
        ("title", pa.string()), ("headings", pa.string()), ("page", pa.int32()), ("start", pa.int64()),
        ("end", pa.int64()), ("text", pa.string()), ("chunk_hash", pa.string()), ("file_hash", pa.string()),
        ("model", pa.string()), ("ingested_at", pa.float64()),
        ("vector", pa.list_(pa.float32(), dimensions)),
    ])  # fmt: skip


def _rows(batch, vectors, model: str) -> list[dict[str, Any]]:
    import hashlib

    now, rows = time.time(), []
    for loaded, chunks in batch:
        path = str(loaded.path)
        for index, chunk in enumerate(chunks):
            rows.append({
                "id": hashlib.sha256(f"{path}\0{loaded.content_hash}\0{index}".encode()).hexdigest()[:16],
                "path": path, "ext": loaded.path.suffix.lower(), "kind": loaded.kind, "title": loaded.title,
                "headings": " > ".join(chunk.headings), "page": chunk.page, "start": chunk.start, "end": chunk.end,
                "text": chunk.text, "chunk_hash": chunk.hash, "file_hash": loaded.content_hash, "model": model,
                "ingested_at": now, "vector": vectors[chunk.hash],
            })  # fmt: skip
    return rows
