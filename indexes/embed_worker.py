"""The embedding model in a child process, for the app.

Importing torch and loading a model hold the GIL for 200-300 ms at a time (measured: `import
torch` in a thread left the main thread without the GIL for 256 ms), which froze the app's
event loop on the first ingest or search. In a child process they cannot: the app keeps only
the Rust tokenizer and a pipe (indexes/embed_protocol.py).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from indexes.embed_protocol import receive, send

__all__ = ["main"]


def main(path: str) -> None:
    # The protocol owns the real stdout; anything a library prints goes to stderr instead.
    channel = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)
    requests = sys.stdin.buffer
    from indexes.embedder import Embedder
    from workbench.core.errors import WorkbenchError

    try:
        embedder = Embedder(Path(path))
    except WorkbenchError as exc:
        send(channel, {"error": exc.message, "hint": exc.hint})
        return
    send(
        channel,
        {"dimensions": embedder.dimensions, "max_tokens": embedder.max_tokens, "device": embedder.device},
    )
    while True:
        try:
            texts, batch_size = receive(requests)
        except EOFError:
            return
        for begin in range(0, len(texts), batch_size):
            send(channel, embedder.encode(texts[begin : begin + batch_size], batch_size))


if __name__ == "__main__":
    main(sys.argv[1])
