"""Loaders, chunking, embeddings, LanceDB collections and retrieval (issue #4)."""

import os as _os

# LanceDB's Rust core logs warnings such as "training 1 of the 17 requested IVF partitions" and
# "partition N is empty" at every index build, straight to the user's terminal. They stay off
# it unless asked for (`workbench --verbose`, or LANCEDB_LOG set). Read when lancedb loads, which
# only this package does.
_os.environ.setdefault("LANCEDB_LOG", "error")
