"""The Ray half of `workbench ingest --ray`: files are read and cut on CPU tasks and embedded by
a pool of actors (Ray Data), and each file comes back to the driver whole, with its vectors.

What the driver does with them (the diff before, the commits after) is in indexes/ingest.py:
it alone writes LanceDB. A file travels as one row from end to end, so the driver can commit
files whole: a job killed at any point leaves each file at its old version, its new one, or
absent, as an in-process ingest does. Rows carry pickled Python objects (the loaded file, its
chunks, its vectors): they never leave this pipeline.
"""

from __future__ import annotations

import json
import os
import pickle
import warnings
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from workbench.core.errors import CollectionError

__all__ = ["FILES_PER_EMBED_BATCH", "embedded_files", "model_max_tokens"]

# Files per call of an embedding actor: 16 files of the bench corpus (5.4 chunks each) are
# ~86 texts, more than the model's own batch of 64, so every call fills its batches; per-call
# overhead (a pickle each way) measured nothing beside the embedding (bench_ray.py: 1.01).
FILES_PER_EMBED_BATCH = 16
FILES_PER_READ_TASK = 8


def model_max_tokens(model_path: Path) -> int | None:
    """The window sentence-transformers gives the model (its max_seq_length), read from the
    model folder so that the driver needs no torch; None when the folder does not say."""
    config = model_path / "sentence_bert_config.json"
    try:
        value = json.loads(config.read_text(encoding="utf-8")).get("max_seq_length")
    except (OSError, ValueError):
        return None
    return int(value) if value else None


_TOKENIZERS: dict[str, Any] = {}


def _read_and_cut(batch: dict[str, np.ndarray], settings: dict[str, Any], model_path: str, max_bytes: int):
    """A Ray task: load and chunk a few files. Out: one row per file, pickled."""
    from indexes.chunking import prepare_chunks
    from indexes.embedder import offsets_tokenizer
    from indexes.loaders import LoadFailure, load_file

    tokenizer = _TOKENIZERS.get(model_path)
    if tokenizer is None:
        tokenizer = _TOKENIZERS[model_path] = offsets_tokenizer(Path(model_path))
    out = []
    for key, path in zip(batch["key"], batch["path"]):
        loaded = load_file(Path(path), max_bytes)
        masked: Counter[str] = Counter()
        if loaded is None or isinstance(loaded, LoadFailure):
            out.append(pickle.dumps((str(key), loaded, [], masked)))
            continue
        loaded.path = Path(str(key))
        chunks = prepare_chunks(loaded, tokenizer, settings, masked)
        out.append(pickle.dumps((str(key), loaded, chunks, masked)))
    return {"file": np.array(out, dtype=object)}


class _Embed:
    """A Ray actor of the pool: loads the model once, then embeds the chunks of a few files
    per call, in one model batch."""

    def __init__(self, model_path: str, use_gpu: bool) -> None:
        from indexes.embedder import Embedder

        if not use_gpu:
            import torch

            # Ray sets a CPU actor's thread count to the CPUs it reserved (1); this actor
            # is the node's embedder and the read tasks are short, so it takes the node's cores.
            torch.set_num_threads(os.cpu_count() or 1)
        self.embedder = Embedder(Path(model_path))
        import ray

        self.node = ray.get_runtime_context().get_node_id()

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        files = [pickle.loads(item) for item in batch["file"]]
        texts = [chunk.embed_text for _, _, chunks, _ in files for chunk in chunks]
        vectors = self.embedder.encode(texts) if texts else np.empty((0, self.embedder.dimensions))
        out, begin = [], 0
        for key, loaded, chunks, masked in files:
            part = vectors[begin : begin + len(chunks)]
            begin += len(chunks)
            out.append(pickle.dumps((key, loaded, chunks, masked, part, self.node)))
        return {"file": np.array(out, dtype=object)}


def embedded_files(
    ray, files: list[tuple[str, str]], settings: dict[str, Any], model_path: Path, max_bytes: int, actors: int
) -> Iterator[tuple[str, Any, list, Counter, np.ndarray, str]]:
    """(key, loaded file or LoadFailure, chunks, masked, vectors, the embedding node's id) for each of ``files``
    ((key, path) pairs), as the pool finishes them (not in order)."""
    resources = ray.cluster_resources()
    gpus = int(resources.get("GPU", 0))
    if actors <= 0:
        actors = gpus or max(1, len([n for n in ray.nodes() if n.get("Alive")]))
    # No more actors (each loads the model) than there are batches for them.
    actors = max(1, min(actors, -(-len(files) // FILES_PER_EMBED_BATCH)))
    dataset = ray.data.from_items(
        [{"key": key, "path": path} for key, path in files],
        override_num_blocks=max(1, min(len(files) // FILES_PER_READ_TASK, 256)),
    )
    dataset = dataset.map_batches(
        _read_and_cut,
        batch_size=FILES_PER_READ_TASK,
        fn_kwargs={"settings": settings, "model_path": str(model_path), "max_bytes": max_bytes},
        num_cpus=0.5,
    )
    with warnings.catch_warnings():
        # Ray 2.60 has no named parameter for an actor pool's placement yet (it deprecates the
        # keyword that carries it, for a replacement in 2.64); we pin 2.60.
        warnings.simplefilter("ignore", DeprecationWarning)
        dataset = dataset.map_batches(
            _Embed,
            batch_size=FILES_PER_EMBED_BATCH,
            fn_constructor_kwargs={"model_path": str(model_path), "use_gpu": bool(gpus)},
            compute=ray.data.ActorPoolStrategy(size=actors),
            num_gpus=1 if gpus else 0,
            # A CPU actor takes its node's cores for torch (see _Embed); half a CPU leaves the
            # scheduler room for the read tasks beside it.
            num_cpus=0.5,
            # One embedder per node: the default placement packs actors onto the driver's node.
            scheduling_strategy="SPREAD",
            # An actor killed mid-batch is started again and its batch retried: Ray Data's
            # default for actor pools (tests/test_ray.py kills them).
        )
    try:
        for row in dataset.iter_rows():
            yield pickle.loads(row["file"])
    except ray.exceptions.RayError as exc:
        text = str(exc).strip()
        raise CollectionError(
            f"the Ray job stopped: {text.splitlines()[-1] if text else type(exc).__name__}",
            "the files committed so far are kept; run the same ingest again to finish",
        ) from None
