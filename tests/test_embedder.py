"""The app's embedder runs its model in a child process: same vectors, same token offsets as the
in-process one, and a clear error for a folder that is not a model."""

from __future__ import annotations

import numpy as np
import pytest

from indexes.embedder import Embedder, IsolatedEmbedder
from workbench.core.errors import CollectionError

TEXTS = [
    "hello world",
    "The Compare screen sends one prompt to two to four models at once.",
    "naïve café " * 80,
]


def test_isolated_embedder_matches_the_in_process_one(fetched_models, tmp_path):
    path = fetched_models / "all-MiniLM-L6-v2"
    isolated, local = IsolatedEmbedder(path), Embedder(path)
    try:
        assert (isolated.dimensions, isolated.max_tokens) == (local.dimensions, local.max_tokens)
        seen: list[int] = []
        vectors = isolated.encode(TEXTS * 10, batch_size=8, progress=seen.append)
        assert sum(seen) == 30 and vectors.shape == (30, 384)
        assert np.allclose(vectors, local.encode(TEXTS * 10, batch_size=8), atol=1e-6)
        ours = isolated.tokenizer(TEXTS, add_special_tokens=False, return_offsets_mapping=True)[
            "offset_mapping"
        ]
        theirs = local.tokenizer(TEXTS, add_special_tokens=False, return_offsets_mapping=True)[
            "offset_mapping"
        ]
        assert [list(map(tuple, o)) for o in ours] == [list(map(tuple, o)) for o in theirs]
        assert len(ours[2]) > 128, "no truncation at tokenizer.json's 128"
    finally:
        isolated.close()
    assert isolated.process.returncode == 0
    with pytest.raises(CollectionError, match="is not a sentence-transformers model folder"):
        IsolatedEmbedder(tmp_path)


def test_a_killed_embedding_process_is_a_clear_error_and_the_next_call_starts_afresh(fetched_models):
    from indexes import embedder as module

    path = fetched_models / "all-MiniLM-L6-v2"
    module.get_embedder(path)  # an in-process one cached already is not what isolate() hands out
    module.isolate()
    try:
        first = module.get_embedder(path)
        first.process.kill()
        first.process.wait()
        with pytest.raises(CollectionError, match="embedding process .* ended"):
            first.encode(["hello"])
        second = module.get_embedder(path)
        assert second is not first and second.encode(["hello"]).shape == (1, 384)
        second.close()
    finally:
        module.isolate(False)
        module._CACHE.pop((str(path.resolve()), True), None)
