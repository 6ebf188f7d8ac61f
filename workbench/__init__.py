"""Workbench: a local-first AI stack workbench (kernel, service layer and CLI)."""

import os as _os

__version__ = "0.1.0"

# The libraries' own diagnostics stay off the user's terminal unless asked for (`--verbose`, or
# the variable set): LanceDB's Rust core logs warnings such as "training 1 of the 17 requested
# IVF partitions" and "partition N is empty" at every index build. Read when lancedb loads.
_os.environ.setdefault("LANCEDB_LOG", "error")
