"""Sections into chunks sized in the embedder's own tokens, with overlap; each chunk keeps its
file's provenance (heading path, page, character offsets) and a content hash."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from indexes.loaders import LoadedFile

__all__ = ["Chunk", "chunk_file"]


@dataclass
class Chunk:
    text: str
    start: int  # character offsets in the file's text (PDF: in its pages joined by newlines)
    end: int
    headings: tuple[str, ...]
    page: int | None
    hash: str


def chunk_file(loaded: LoadedFile, tokenizer, max_tokens: int, overlap: int) -> list[Chunk]:
    """One chunk per section that fits; longer sections in windows of ``max_tokens`` tokens that
    overlap by ``overlap``, cut at token boundaries mapped back to characters."""
    chunks: list[Chunk] = []
    texts = [section.text for section in loaded.sections]
    # One batched call to the (Rust) fast tokenizer for the whole file.
    encoded = tokenizer(texts, add_special_tokens=False, return_offsets_mapping=True)["offset_mapping"]
    step = max(1, max_tokens - overlap)
    for section, offsets in zip(loaded.sections, encoded):
        if len(offsets) <= max_tokens:
            windows = [(0, len(section.text))]
        else:
            windows = []
            for first in range(0, len(offsets), step):
                last = min(first + max_tokens, len(offsets)) - 1
                end = offsets[last + 1][0] if last + 1 < len(offsets) else len(section.text)
                windows.append((offsets[first][0] if first else 0, end))
                if last == len(offsets) - 1:
                    break
        for begin, end in windows:
            text = section.text[begin:end]
            if text.strip():
                chunks.append(
                    Chunk(
                        text.strip(),
                        section.start + begin,
                        section.start + end,
                        section.headings,
                        section.page,
                        hashlib.sha256(text.strip().encode()).hexdigest(),
                    )
                )
    return chunks
