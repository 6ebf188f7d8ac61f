"""Collections: one LanceDB table each, with its metadata file, versions, indices and search.
Filling one is indexes/ingest.py."""

from __future__ import annotations

import fcntl
import json
import os
import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from workbench.core.config import DocumentsConfig
from workbench.core.errors import CollectionError
from workbench.core.tracing import Tracer
from workbench.core.workspace import Workspace

__all__ = ["Collections", "check_name", "known_files", "sql_literal"]

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")


class Collections:
    def __init__(
        self,
        workspace: Workspace,
        tracer: Tracer,
        config: DocumentsConfig,
        find_model: Callable[[str], tuple[str, str, Path]],
    ) -> None:
        """``find_model(name)`` gives (alias, kind, path) of a model in the workspace catalog."""
        self.workspace, self.tracer, self.config, self.find_model = workspace, tracer, config, find_model
        self._db = None
        self._reader = None

    @property
    def db(self):
        if self._db is None:
            from indexes.lancedb_import import import_lancedb

            lancedb = import_lancedb()
            uri, options = self.storage()
            self._db = lancedb.connect(uri, storage_options=options or None)
        return self._db

    @property
    def reading(self):
        """A read-only connection through lancedb's native module, for searches: a cold
        search need not import lancedb's Python package (indexes/lance_native.py)."""
        if self._reader is None:
            from indexes.lance_native import connect

            uri, options = self.storage()
            self._reader = connect(uri, options or None)
        return self._reader

    def storage(self) -> tuple[str, dict[str, str]]:
        """Where the tables live and the object store's options, secrets read from the
        environment variables the config names."""
        if not self.config.lancedb_uri:
            return str(self.workspace.lancedb_dir), {}
        options = dict(self.config.storage_options)
        for option, variable in self.config.storage_secrets.items():
            value = os.environ.get(variable)
            if not value:
                raise CollectionError(
                    f"[documents] storage_secrets takes {option} from ${variable}, which is not set",
                    f"export {variable}=... before running the workbench",
                )
            options[option] = value
        return self.config.lancedb_uri, options

    # -- metadata -------------------------------------------------------------------------

    def meta_path(self, name: str) -> Path:
        return self.workspace.lancedb_dir / f"{name}.collection.json"

    def meta(self, name: str) -> dict[str, Any]:
        check_name(name)
        try:
            return json.loads(self.meta_path(name).read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise CollectionError(
                f"no collection named '{name}'", "see `workbench collections list`, or ingest into it first"
            ) from None
        except ValueError as exc:
            raise CollectionError(
                f"{self.meta_path(name)} is damaged: {exc}",
                "restore it from a backup, or delete the collection and ingest again",
            ) from None

    def save_meta(self, name: str, meta: dict[str, Any]) -> None:
        """Write a collection's metadata whole or not at all (a temporary file, then a rename):
        a crash mid-write must not leave it damaged."""
        path = self.meta_path(name)
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_text(json.dumps(meta, indent=2), encoding="utf-8")
        tmp.replace(path)

    def names(self) -> list[str]:
        return sorted(
            p.name.removesuffix(".collection.json")
            for p in self.workspace.lancedb_dir.glob("*.collection.json")
        )

    def table(self, name: str):
        self.meta(name)
        try:
            return self.db.open_table(name)
        except (ValueError, FileNotFoundError):
            raise CollectionError(f"collection '{name}' has no rows yet", "ingest into it first") from None

    def reader(self, name: str):
        """A collection's table to search (indexes/lance_native.py's NativeTable), opened at
        its newest version."""
        self.meta(name)
        try:
            return self.reading.open_table(name)
        except (ValueError, FileNotFoundError):
            raise CollectionError(f"collection '{name}' has no rows yet", "ingest into it first") from None

    def describe(self, name: str, from_summary: bool = False) -> dict[str, Any]:
        """A collection's metadata with its rows, files, version and indices: read from the
        table, or with ``from_summary`` from what the last ingest or restore wrote into the
        metadata (no LanceDB to import: `collections list` in well under a second)."""
        meta = self.meta(name)
        summary = meta.pop("summary", None)
        info = {"name": name, **meta, "rows": 0, "files": 0, "version": None, "indices": []}
        if from_summary and summary is not None:
            return info | summary
        try:
            table = self.table(name)
        except CollectionError:
            return info
        info.update(self._summary(table))
        return info

    @staticmethod
    def _summary(table, files: int | None = None) -> dict[str, Any]:
        return {
            "rows": table.count_rows(),
            "files": len(known_files(table)) if files is None else files,
            "version": table.version,
            "indices": [f"{i.index_type} on {', '.join(i.columns)}" for i in table.list_indices()],
        }

    def remember(self, name: str, table, files: int | None = None) -> None:
        """Keep the table's rows, files, version and indices in the metadata (after a change);
        ``files``, when the caller knows it, saves reading every row's path."""
        meta = self.meta(name)
        meta["summary"] = self._summary(table, files)
        self.save_meta(name, meta)

    def versions(self, name: str) -> list[dict[str, Any]]:
        table = self.table(name)
        return [{"version": v["version"], "timestamp": str(v["timestamp"])} for v in table.list_versions()]

    def restore(self, name: str, version: int) -> int:
        """Make ``version`` the newest (a new version; nothing is lost, later ones remain)."""
        table = self.table(name)
        known = {v["version"] for v in table.list_versions()}
        if version not in known:
            raise CollectionError(
                f"'{name}' has no version {version}",
                f"pick one of {sorted(known)[-10:]} (`workbench collections versions {name}`)",
            )
        with self.lock(name):
            table.restore(version)
            self.build_indices(table, force_fts=True)
            self.remember(name, table)
            return table.version

    def _reranker_path(self, rerank: str) -> Path | None:
        """The CrossEncoder folder ``rerank`` names; None for the built-in ones."""
        if rerank in ("none", "sections"):
            return None
        alias, kind, path = self.find_model(rerank)
        if kind != "reranker":
            raise CollectionError(
                f"{alias} is a {kind} model, not a reranker",
                "use none, sections, or register a CrossEncoder: "
                "`workbench models register PATH --kind reranker`",
            )
        return path

    def reranker(self, rerank: str, meta: dict[str, Any]):
        """The reranker named by ``rerank`` (None for "none"), loaded once per process."""
        from indexes.rerank import get_reranker

        if rerank == "none":
            return None
        path = self._reranker_path(rerank)
        return (
            get_reranker("cross-encoder", path)
            if path
            else get_reranker("sections", Path(meta["model_path"]))
        )

    def set_default(self, name: str, rerank: str | None = None) -> dict[str, Any]:
        """Change a collection's search defaults (the reranker); the new metadata."""
        meta = self.meta(name)
        if rerank is not None:
            self._reranker_path(rerank)  # refuse a name that does not resolve, before storing it
            meta["rerank"] = rerank
        self.save_meta(name, meta)
        return meta

    # -- what ingest builds on --------------------------------------------------------------

    def lock(self, name: str):
        return _FileLock(self.workspace.lancedb_dir / f".{name}.lock", name)

    def create(self, name: str, model: str | None, redact: bool) -> dict[str, Any]:
        alias, kind, path = self.find_model(model or self.config.embedding_model)
        if kind != "embedding":
            raise CollectionError(f"{alias} is not an embedding model", "pick a sentence-transformers model")
        meta = {
            "model": alias,
            "model_path": str(path),
            "chunk_tokens": self.config.chunk_tokens,
            "chunk_overlap": self.config.chunk_overlap,
            "redact": redact,
            # chunks are embedded with "title > headings" in front (indexes/chunking.py);
            # collections made before this embed the bare text, and keep doing so
            "context_header": True,
            "created": time.time(),
        }
        self.save_meta(name, meta)
        return meta

    def open_or_none(self, name: str):
        try:
            return self.db.open_table(name)
        except (ValueError, FileNotFoundError):
            return None

    def build_indices(self, table, force_fts: bool) -> None:
        """Full-text index always; an ANN index past the configured row count (see config)."""
        with self.tracer.span("lancedb.index", "io", {"workbench.rows": table.count_rows()}):
            table.optimize()
            existing = {i.index_type for i in table.list_indices()}
            if force_fts or "FTS" not in existing:
                table.create_fts_index("text", replace=True)
            rows = table.count_rows()
            if rows >= self.config.ann_index_rows and (force_fts or "IVF_PQ" not in existing):
                from lancedb.index import IvfPq

                table.create_index(
                    "vector",
                    config=IvfPq(
                        distance_type="cosine", num_partitions=max(1, int(rows**0.5)), num_sub_vectors=48
                    ),
                )

    # -- retrieval ------------------------------------------------------------------------

    def search(
        self,
        name: str,
        query: str,
        mode: str = "hybrid",
        k: int = 5,
        min_score: float | None = None,
        path_glob: str | None = None,
        file_type: str | None = None,
        version: int | None = None,
        rerank: str | None = None,
    ) -> list[dict[str, Any]]:
        """Ranked chunks; ``version`` searches an older version read-only (a checkout).
        ``rerank``: "none", "sections" or a reranker's alias; None: the collection's default,
        else [documents] rerank."""
        from indexes.retrieval import Fusion, Stages, search

        if not query.strip():
            raise CollectionError("the query is empty", "type what you are looking for")
        meta = self.meta(name)
        rerank = rerank or meta.get("rerank") or self.config.rerank
        reranker = self.reranker(rerank, meta)
        table = self.reader(name)  # a handle of its own: a checkout does not stick
        if version is not None:
            if version not in table.versions():
                raise CollectionError(
                    f"'{name}' has no version {version}", f"see `workbench collections versions {name}`"
                )
            table.checkout(version)
        with self.tracer.span(
            "retrieval",
            "retrieval",
            {
                "gen_ai.operation.name": "retrieval",
                "workbench.collection": name,
                "workbench.retrieval.mode": mode,
                "workbench.k": k,
                "workbench.collection.version": table.version,
                "gen_ai.request.model": meta["model"],
                "workbench.retrieval.rerank": rerank,
                "workbench.retrieval.fusion": self.config.fusion if mode == "hybrid" else None,
            },
        ) as span:
            span.set_payload(query=query)
            stages = Stages()
            fusion = Fusion(
                method=self.config.fusion,
                vector_weight=self.config.fusion_vector_weight,
                rrf_k=self.config.rrf_k,
            )
            hits = search(
                table, meta, query, mode, k, min_score, path_glob, file_type, fusion, reranker, stages
            )
            span.update(
                {
                    # each stage's ranking (chunk ids, best first): why a chunk made the cut
                    "workbench.retrieval.stages": stages.ranked,
                    "workbench.retrieval.chunk_ids": [h["id"] for h in hits],
                    # the files the answer could draw on: a trace turned into an eval case
                    # expects them as its sources
                    "workbench.retrieval.paths": [h["path"] for h in hits],
                    "workbench.retrieval.top_score": hits[0]["score"] if hits else None,
                }
            )
            # The passages as text, for the trace's reader (payloads: sampled and redacted as
            # every payload is); chunk ids alone said nothing.
            span.set_payload(
                passages=[
                    {
                        "path": h["path"],
                        "heading": h.get("headings") or h.get("title") or "",
                        "score": round(float(h["score"]), 4),
                        "text": h["text"][:PASSAGE_CHARS],
                    }
                    for h in hits
                ]
            )
        for hit in hits:
            hit["trace_id"] = span.trace_id
        return hits


PASSAGE_CHARS = 1500  # of each retrieved passage kept in the trace


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
            raise CollectionError(
                f"another ingest into '{self.name}' is running", "wait for it to finish, then run this again"
            ) from None
        return self

    def __exit__(self, *exc) -> None:
        fcntl.flock(self.handle, fcntl.LOCK_UN)
        self.handle.close()


def check_name(name: str) -> None:
    if not _NAME.match(name):
        raise CollectionError(
            f"'{name}' is not a valid collection name",
            "use letters, digits, - and _ (up to 64, starting with a letter or digit)",
        )


def sql_literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def known_files(table) -> dict[str, str]:
    """path -> file hash of every file in a collection's table."""
    if table is None or table.count_rows() == 0:
        return {}
    rows = table.search().select(["path", "file_hash"]).limit(table.count_rows()).to_arrow()
    return dict(zip(rows["path"].to_pylist(), rows["file_hash"].to_pylist()))
