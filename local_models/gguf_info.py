"""GGUF metadata read from the file header, without loading the model.

The `gguf` package's GGUFReader decodes every vocabulary entry into Python objects: 12 s for
Gemma 3's 262k-token vocabulary here. This reader walks the same header (GGUF v2/v3, as
specified by ggml) with struct, skipping arrays it does not need: ~0.1 s. Every length is
checked against the file, so a truncated or lying header is a clear error, not a crash.
"""

from __future__ import annotations

import mmap
import re
import struct
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from local_models.native_tools import tool_format
from workbench.core.errors import ModelError

__all__ = ["read_gguf_prefix", "GGUFInfo", "read_gguf_info", "FILE_TYPES"]

# llama_ftype as written in general.file_type
FILE_TYPES = {
    0: "F32",
    1: "F16",
    2: "Q4_0",
    3: "Q4_1",
    7: "Q8_0",
    8: "Q5_0",
    9: "Q5_1",
    10: "Q2_K",
    11: "Q3_K_S",
    12: "Q3_K_M",
    13: "Q3_K_L",
    14: "Q4_K_S",
    15: "Q4_K_M",
    16: "Q5_K_S",
    17: "Q5_K_M",
    18: "Q6_K",
    19: "IQ2_XXS",
    20: "IQ2_XS",
    21: "Q2_K_S",
    22: "IQ3_XS",
    23: "IQ3_XXS",
    24: "IQ1_S",
    25: "IQ4_NL",
    26: "IQ3_S",
    27: "IQ3_M",
    28: "IQ2_S",
    29: "IQ2_M",
    30: "IQ4_XS",
    31: "IQ1_M",
    32: "BF16",
    36: "TQ1_0",
    37: "TQ2_0",
}
_SCALARS = {
    0: "<B",
    1: "<b",
    2: "<H",
    3: "<h",
    4: "<I",
    5: "<i",
    6: "<f",
    7: "<?",
    10: "<Q",
    11: "<q",
    12: "<d",
}
_STRING, _ARRAY = 8, 9
_MAX_COUNT = 1 << 24  # more keys, tensors or dims than this is a lying header
# Arrays worth keeping (small); others (vocabularies) are skipped.
_KEEP_ARRAYS = {"general.tags", "general.languages"}


@dataclass(frozen=True)
class GGUFInfo:
    path: Path
    size_bytes: int
    version: int
    architecture: str
    name: str
    file_type: str
    parameters: int
    context_length: int | None
    block_count: int | None
    embedding_length: int | None
    head_count: int | None
    head_count_kv: int | None
    key_length: int | None
    value_length: int | None
    vocab_size: int | None
    has_chat_template: bool
    tool_format: str
    """How the model calls tools: its template's own format (hermes, llama3, mistral, json), or
    "grammar" when the template knows no tools (local_models.native_tools)."""
    metadata: dict[str, Any] = field(repr=False)

    @property
    def parameters_label(self) -> str:
        n = self.parameters
        return f"{n / 1e9:.1f}B" if n >= 1e9 else f"{n / 1e6:.0f}M"


class _NeedMore(Exception):
    """A read past the end of a file's first bytes, within the file: fetch more of it."""


class _Cursor:
    def __init__(self, data: mmap.mmap | bytes, path: Path, total: int | None = None) -> None:
        self.data, self.pos, self.path = data, 0, path
        self.total = len(data) if total is None else total  # the whole file's size

    def need(self, end: int, what: str) -> None:
        if end > len(self.data):
            if end <= self.total:
                raise _NeedMore
            raise self.fail(what)

    def fail(self, what: str) -> ModelError:
        return ModelError(
            f"{self.path} is not a valid GGUF file: {what} at byte {self.pos}",
            "download it again; the file is truncated or damaged",
        )

    def take(self, fmt: str) -> Any:
        size = struct.calcsize(fmt)
        self.need(self.pos + size, "unexpected end of file")
        (value,) = struct.unpack_from(fmt, self.data, self.pos)
        self.pos += size
        return value

    def count(self, limit: int = _MAX_COUNT) -> int:
        value = self.take("<Q")
        if value > limit:
            raise self.fail(f"implausible count {value}")
        return value

    def string(self) -> str:
        length = self.count(self.total)
        self.need(self.pos + length, "string runs past the end of the file")
        raw = bytes(self.data[self.pos : self.pos + length])
        self.pos += length
        return raw.decode("utf-8", errors="replace")

    def skip(self, size: int) -> None:
        self.need(self.pos + size, "array runs past the end of the file")
        self.pos += size

    def value(self, kind: int, keep: bool) -> Any:
        if kind in _SCALARS:
            return self.take(_SCALARS[kind])
        if kind == _STRING:
            return self.string()
        if kind != _ARRAY:
            raise self.fail(f"unknown value type {kind}")
        item = self.take("<I")
        length = self.count(self.total)
        if item in _SCALARS and not keep:
            self.skip(length * struct.calcsize(_SCALARS[item]))
            return length
        if item == _STRING and not keep:
            for _ in range(length):
                self.skip(self.count(self.total))
            return length
        if item == _ARRAY:
            raise self.fail("nested arrays are not supported")
        return [self.value(item, True) for _ in range(length)]


def read_gguf_info(path: Path) -> GGUFInfo:
    try:
        with path.open("rb") as handle:
            size = path.stat().st_size
            if size < 24:
                raise ModelError(f"{path} is not a valid GGUF file: only {size} bytes", "download it again")
            with mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as data:
                info = _parse(_Cursor(data, path), path, size)
    except OSError as exc:
        raise ModelError(f"cannot read {path}: {exc.strerror}", "check the path and permissions") from None
    return _with_split_parts(info)


def _with_split_parts(info: GGUFInfo) -> GGUFInfo:
    """A split GGUF's first part (-00001-of-0000N, as llama.cpp loads it) counted with the other
    parts beside it: the weights are all of them."""
    count = info.metadata.get("split.count")
    match = re.search(r"-00001-of-(\d{5})\.gguf$", info.path.name)
    if not isinstance(count, int) or count < 2 or match is None:
        return info
    parts = [
        info.path.with_name(info.path.name.replace("-00001-of-", f"-{n:05d}-of-"))
        for n in range(1, count + 1)
    ]
    missing = [p.name for p in parts if not p.exists()]
    if missing:
        raise ModelError(
            f"{info.path} is part 1 of {count} of a split model; missing: {', '.join(missing)}",
            "put every part in the same folder (`workbench models pull` fetches them all)",
        )
    return replace(info, size_bytes=sum(p.stat().st_size for p in parts))


def read_gguf_prefix(data: bytes, name: str, total: int) -> GGUFInfo | None:
    """A GGUF's header from its first bytes (a ranged download of a file of ``total`` bytes);
    None when the header goes on past them."""
    try:
        return _parse(_Cursor(data, Path(name), total), Path(name), total)
    except _NeedMore:
        return None


def _parse(cur: _Cursor, path: Path, size: int) -> GGUFInfo:
    if cur.take("<4s") != b"GGUF":
        raise cur.fail("no GGUF magic")
    version = cur.take("<I")
    if version not in (2, 3):
        raise cur.fail(f"unsupported GGUF version {version}")
    tensors, keys = cur.count(), cur.count()
    meta: dict[str, Any] = {}
    for _ in range(keys):
        key = cur.string()
        meta[key] = cur.value(cur.take("<I"), keep=key in _KEEP_ARRAYS)
    parameters = 0
    for _ in range(tensors):
        cur.string()
        dims = cur.take("<I")
        if dims > 8:
            raise cur.fail(f"tensor with {dims} dimensions")
        elements = 1
        for _ in range(dims):
            elements *= cur.count(1 << 40)
        cur.take("<I")
        cur.take("<Q")
        parameters += elements
    arch = str(meta.get("general.architecture", "unknown"))

    def num(key: str) -> int | None:
        value = meta.get(f"{arch}.{key}")
        return int(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None

    tokens = meta.get("tokenizer.ggml.tokens")
    file_type = meta.get("general.file_type")
    return GGUFInfo(
        path=path,
        size_bytes=size,
        version=version,
        architecture=arch,
        name=str(meta.get("general.name", path.stem)),
        file_type=FILE_TYPES.get(file_type, f"type {file_type}") if file_type is not None else "unknown",
        parameters=parameters,
        context_length=num("context_length"),
        block_count=num("block_count"),
        embedding_length=num("embedding_length"),
        head_count=num("attention.head_count"),
        head_count_kv=num("attention.head_count_kv"),
        key_length=num("attention.key_length"),
        value_length=num("attention.value_length"),
        vocab_size=num("vocab_size") or (tokens if isinstance(tokens, int) else None),
        has_chat_template=bool(meta.get("tokenizer.chat_template")),
        tool_format=tool_format(meta.get("tokenizer.chat_template")) or "grammar",
        metadata=meta,
    )
