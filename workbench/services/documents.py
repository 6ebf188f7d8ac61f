"""Documents as the service layer offers them: collections in LanceDB, ingest and search."""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from indexes.collection import Collections
    from indexes.ingest import IngestReport
    from workbench.services.facade import Service

__all__ = ["Documents", "Cancelled", "EMBED_BATCH"]

# Inputs embedded at a time when the caller may leave: 2,048 inputs ran on for 47 s after their
# gateway client had gone, the next request waiting behind them.
EMBED_BATCH = 64


class Cancelled(Exception):
    """The caller of a cancellable embedding left; nobody reads its vectors."""


class Documents:
    def __init__(self, service: Service) -> None:
        self.service = service
        self._lock = threading.Lock()
        self._collections: Collections | None = None

    @property
    def collections(self) -> Collections:
        if self._collections is None:
            with self._lock:
                if self._collections is None:
                    self._collections = self._open()
        return self._collections

    def _open(self) -> Collections:
        from indexes.collection import Collections
        from local_models.catalog import resolve_model

        def find_model(name: str):
            info = resolve_model(self.service.workspace, name)
            return info.alias, info.kind, info.path

        return Collections(
            self.service.workspace, self.service.tracer, self.service.config.documents, find_model
        )

    def ingest(
        self,
        collection: str,
        source: str,
        include=None,
        exclude=None,
        redact: bool | None = None,
        model: str | None = None,
        progress=None,
        ray: str | None = None,
    ) -> IngestReport:
        """Ingest a file or folder into a collection (created on first use); returns the report.
        ``ray``: on a Ray cluster at this address ("": the configured one, or a Ray of its own)."""
        from indexes.ingest import ingest

        if ray is None:
            return ingest(self.collections, collection, source, include, exclude, redact, model, progress)
        from workbench.core.ray_cluster import ray_session

        config = self.service.config
        with ray_session(config, ray, self.service.workspace.root, data=True) as connected:
            return ingest(
                self.collections,
                collection,
                source,
                include,
                exclude,
                redact,
                model,
                progress,
                ray=connected,
                ray_actors=config.ray.embed_actors,
            )

    def search(
        self,
        collection: str,
        query: str,
        mode: str = "hybrid",
        k: int = 5,
        min_score=None,
        path_glob: str | None = None,
        file_type: str | None = None,
        version: int | None = None,
        rerank: str | None = None,
    ) -> list[dict[str, Any]]:
        if rerank == "auto":
            rerank = self.default_reranker()
        return self.collections.search(
            collection, query, mode, k, min_score, path_glob, file_type, version, rerank
        )

    def default_reranker(self) -> str:
        """A registered reranker (CrossEncoder) when there is one, else the built-in "sections"."""
        from local_models.catalog import list_models

        rerankers = [
            m.alias for m in list_models(self.service.workspace) if m.kind == "reranker" and m.present
        ]
        return rerankers[0] if rerankers else "sections"

    def set_collection_defaults(self, collection: str, rerank: str | None = None) -> dict[str, Any]:
        if rerank == "auto":
            rerank = self.default_reranker()
        return self.collections.set_default(collection, rerank)

    def embed(
        self,
        model: str,
        texts: list[str],
        truncate: bool = True,
        dimensions: int | None = None,
        cancel: threading.Event | None = None,
    ) -> tuple[str, Any, int]:
        """Unit-length float32 vectors of ``texts`` from an embedding model of the workspace
        (alias or prefix): (its alias, the vectors, the tokens read). A text over the model's
        window is cut there when ``truncate``, else refused before any is embedded. Setting
        ``cancel`` stops the work between batches (Cancelled)."""
        from indexes.embedder import get_embedder
        from local_models.catalog import resolve_model
        from workbench.core.errors import ContextLengthExceeded, UnsupportedParameter, UsageError

        info = resolve_model(self.service.workspace, model)
        if info.kind != "embedding":
            raise UsageError(
                f"'{info.alias}' is not an embedding model", "see `workbench models list` (kind)"
            )
        embedder = get_embedder(info.path)
        if dimensions is not None and dimensions != embedder.dimensions:
            # Cutting a vector short keeps its meaning only for models trained for it (Matryoshka).
            raise UnsupportedParameter(
                "dimensions",
                f"{info.alias} gives {embedder.dimensions}-dimensional vectors and cannot shorten them",
            )
        # offsets: the one tokenizer call both embedders answer (the app's runs in a child process)
        offsets = embedder.tokenizer(texts, add_special_tokens=True, return_offsets_mapping=True)[
            "offset_mapping"
        ]
        lengths = [len(o) for o in offsets]
        longest = max(range(len(texts)), key=lengths.__getitem__)
        window: int = embedder.max_tokens or lengths[longest]  # None: the model states no window
        if not truncate and lengths[longest] > window:
            error = ContextLengthExceeded(
                f"input {longest} has {lengths[longest]} tokens; {info.alias} reads at most {window}",
                "shorten it, or ask with truncate: true to embed its first tokens only",
            )
            error.param = "input"
            raise error
        if cancel is None:
            vectors = embedder.encode(texts)
        else:  # in batches, stopping between them once the caller has gone
            import numpy as np

            parts = []
            for start in range(0, len(texts), EMBED_BATCH):
                if cancel.is_set():
                    raise Cancelled(f"stopped after {start} of {len(texts)} inputs: the caller left")
                parts.append(np.asarray(embedder.encode(texts[start : start + EMBED_BATCH])))
            vectors = np.concatenate(parts)
        tokens = sum(min(n, window) for n in lengths)
        return info.alias, vectors, tokens

    def rerank(self, model: str, query: str, documents: list[str]) -> tuple[str, list[float], int]:
        """Each document's relevance to ``query`` from a registered CrossEncoder: (its alias, the
        scores in the documents' order, the tokens read)."""
        from indexes.rerank import get_reranker
        from local_models.catalog import resolve_model
        from workbench.core.errors import UsageError

        info = resolve_model(self.service.workspace, model)
        if info.kind != "reranker":
            raise UsageError(
                f"'{info.alias}' is not a reranker",
                "register a CrossEncoder with `workbench models register PATH`",
            )
        scores, tokens = get_reranker("cross-encoder", info.path).score(query, documents)
        return info.alias, scores, tokens

    def list(self) -> list[dict[str, Any]]:
        return [self.collections.describe(name, from_summary=True) for name in self.collections.names()]

    @staticmethod
    def isolate_heavy_work() -> None:
        """Run embedding models in child processes: the app calls this so that loading torch
        and a model (200-300 ms with the GIL held) never freezes its event loop."""
        from indexes.embedder import isolate

        isolate()
