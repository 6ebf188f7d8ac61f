"""The messages between the app and its embedding process (indexes/embed_worker.py):
length-prefixed pickles over the child's stdin and stdout."""

from __future__ import annotations

import pickle
import struct
from typing import Any, BinaryIO

__all__ = ["send", "receive"]


def send(stream: BinaryIO, value: Any) -> None:
    data = pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)
    stream.write(struct.pack("<Q", len(data)) + data)
    stream.flush()


def receive(stream: BinaryIO) -> Any:
    header = stream.read(8)
    if len(header) < 8:
        raise EOFError("the embedding process ended")
    (size,) = struct.unpack("<Q", header)
    return pickle.loads(stream.read(size))
