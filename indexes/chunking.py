"""Sections into chunks sized in the embedder's own tokens, with overlap; each chunk keeps its
file's provenance (heading path, page, character offsets) and a content hash.

A chunk never spans two sections: a section that fits is one chunk, a longer one is cut in
windows. Every chunk is at most ``max_tokens`` tokens whatever the input: WordPiece turns a
word longer than 100 characters (base64, a long CSV row without spaces, minified data) into
one [UNK] token, so such words are cut into 100-character pieces first, here for the count and
in ``embedding_text`` for the model, so both see the same tokens.

The model embeds a chunk with a short contextual header in front (the document's title and
the chunk's heading path), so a chunk whose own words never name its subject ("Set it to 0 to
turn it off") is still found by its section's subject; the stored text and offsets stay exact.
"""

from __future__ import annotations

import hashlib
import re
from collections import Counter
from dataclasses import dataclass
from typing import Any

from indexes.loaders import LoadedFile

__all__ = [
    "Chunk",
    "chunk_file",
    "chunk_settings",
    "context_header",
    "embedding_text",
    "prepare_chunks",
    "HEADER_TOKENS",
]

# WordPiece's max_input_chars_per_word: a longer word is one [UNK].
_WORD_CHARS = 100
_LONG_WORD = re.compile(rf"[^\W_]{{{_WORD_CHARS + 1},}}")
# The header's share of the model's window; the chunk gets the rest.
HEADER_TOKENS = 32


@dataclass
class Chunk:
    text: str
    start: int  # character offsets in the file's text (PDF: in its pages joined by newlines)
    end: int
    headings: tuple[str, ...]
    page: int | None
    hash: str
    embed_text: str = ""  # what the model reads: the header, then the text (see embedding_text)


def context_header(title: str, headings: tuple[str, ...] | list[str]) -> str:
    """ "Title > Heading > Subheading", without repeating a title that is also the first heading."""
    path = list(headings)
    if title and (not path or path[0] != title):
        path.insert(0, title)
    return " > ".join(path)


def embedding_text(header: str, text: str) -> str:
    """What the model embeds for a chunk: its header, then the text with over-long words cut
    as the chunker counted them."""
    text = _LONG_WORD.sub(lambda m: _cut(m.group(0)), text)
    return f"{header}\n\n{text}" if header else text


def _cut(word: str) -> str:
    return " ".join(word[i : i + _WORD_CHARS] for i in range(0, len(word), _WORD_CHARS))


def _token_offsets(tokenizer, texts: list[str]) -> list[list[tuple[int, int]]]:
    """Each text's token spans, with words WordPiece would swallow whole counted as the pieces
    the model will see (see the module's docstring)."""
    encoded = tokenizer(texts, add_special_tokens=False, return_offsets_mapping=True)["offset_mapping"]
    out = []
    for text, offsets in zip(texts, encoded):
        if not any(end - start > _WORD_CHARS for start, end in offsets):
            out.append(list(offsets))
            continue
        pieces = [
            text[begin : min(begin + _WORD_CHARS, end)]
            for start, end in offsets
            if end - start > _WORD_CHARS
            for begin in range(start, end, _WORD_CHARS)
        ]
        sub = iter(tokenizer(pieces, add_special_tokens=False, return_offsets_mapping=True)["offset_mapping"])
        spans: list[tuple[int, int]] = []
        for start, end in offsets:
            if end - start <= _WORD_CHARS:
                spans.append((start, end))
                continue
            for begin in range(start, end, _WORD_CHARS):
                piece = next(sub) or [(0, min(_WORD_CHARS, end - begin))]
                spans += [(begin + s, begin + e) for s, e in piece]
        out.append(spans)
    return out


def _headers(loaded: LoadedFile, tokenizer) -> list[str]:
    """Each section's contextual header, cut to HEADER_TOKENS tokens."""
    headers = [context_header(loaded.title, section.headings) for section in loaded.sections]
    offsets = tokenizer(headers, add_special_tokens=False, return_offsets_mapping=True)["offset_mapping"]
    return [
        h[: spans[HEADER_TOKENS - 1][1]] if len(spans) > HEADER_TOKENS else h
        for h, spans in zip(headers, offsets)
    ]


def chunk_file(
    loaded: LoadedFile, tokenizer, max_tokens: int, overlap: int, headers: bool = True
) -> list[Chunk]:
    """One chunk per section that fits; longer sections in windows of ``max_tokens`` tokens that
    overlap by ``overlap``, cut at token boundaries mapped back to characters. ``headers``: the
    model reads each chunk after its contextual header (which has HEADER_TOKENS of its own)."""
    chunks: list[Chunk] = []
    # One batched call to the (Rust) fast tokenizer for the whole file.
    encoded = _token_offsets(tokenizer, [section.text for section in loaded.sections])
    cut_headers = _headers(loaded, tokenizer) if headers else [""] * len(loaded.sections)
    step = max(1, max_tokens - overlap)
    for section, offsets, header in zip(loaded.sections, encoded, cut_headers):
        if len(offsets) <= max_tokens:
            windows = [(0, len(section.text))]
        else:
            windows = []
            for first in range(0, len(offsets), step):
                last = min(first + max_tokens, len(offsets)) - 1
                # The window ends where its last token ends: what follows belongs to the next.
                end = offsets[last][1] if last + 1 < len(offsets) else len(section.text)
                windows.append((offsets[first][0] if first else 0, end))
                if last == len(offsets) - 1:
                    break
        for begin, end in windows:
            raw = section.text[begin:end]
            text = raw.strip()
            if not text:
                continue
            if _LONG_WORD.search(text):
                text = _fit(tokenizer, text, max_tokens)
            lead = len(raw) - len(raw.lstrip())
            chunks.append(
                Chunk(
                    text,
                    section.start + begin + lead,
                    section.start + begin + lead + len(text),
                    section.headings,
                    section.page,
                    # the vector depends on the header too: a chunk moved under another
                    # heading is embedded again; without one, the hash is the text's as it
                    # always was, so collections made before keep reusing their vectors
                    hashlib.sha256((f"{header}\0{text}" if header else text).encode()).hexdigest(),
                    embedding_text(header, text),
                )
            )
    return chunks


def _fit(tokenizer, text: str, max_tokens: int) -> str:
    """``text`` cut so that the model reads at most ``max_tokens`` tokens of it: a window that
    starts inside a long word cuts it at other places than the section did, which can cost a
    few tokens more (the overlap with the next window covers what is cut)."""
    while True:
        spans = tokenizer([embedding_text("", text)], add_special_tokens=False, return_offsets_mapping=True)[
            "offset_mapping"
        ][0]
        if len(spans) <= max_tokens:
            return text
        # Cut the overflow off the end, measured in the original text's characters.
        keep = len(text) - (len(spans) - max_tokens) * 4 - 1
        text = text[: max(1, keep)].rstrip()


def chunk_settings(meta: dict[str, Any], model_max_tokens: int) -> dict[str, Any]:
    """How the files of a collection are cut, given its embedding model's window."""
    # The contextual header and [CLS]/[SEP] share the model's window with the chunk.
    room = model_max_tokens - (HEADER_TOKENS + 2 if meta.get("context_header") else 2)
    max_tokens = min(meta["chunk_tokens"], room)
    return {
        "max_tokens": max_tokens,
        "overlap": min(meta["chunk_overlap"], max_tokens // 2),
        "headers": bool(meta.get("context_header")),
        "redact": bool(meta["redact"]),
    }


def prepare_chunks(loaded: LoadedFile, tokenizer, settings: dict[str, Any], masked: Counter[str]) -> list:
    """A loaded file's chunks as they are stored: cut, and masked when the collection redacts
    (``masked`` counts what was masked, by kind)."""
    chunks = chunk_file(
        loaded, tokenizer, settings["max_tokens"], settings["overlap"], headers=settings["headers"]
    )
    if settings["redact"]:
        from workbench.core.redaction import redact as mask

        for chunk in chunks:
            chunk.text = mask(chunk.text, masked)
            chunk.embed_text = mask(chunk.embed_text, Counter())
    return chunks
