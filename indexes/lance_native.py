"""Read-only search through lancedb's native module (``lancedb._lancedb``), without its Python
package. The one module that touches lancedb's private internals; tests/test_lance_native.py
pins them.

Why: on this machine importing lancedb's Python package took 1.5 s of a 2.2-2.8 s cold
`workbench search` (pyarrow.dataset, whose module init imports pandas; lance_namespace; the
embedding registry), while the native module that does the searching loads in milliseconds
after pyarrow. A search here builds the same native query that lancedb's
``table.search(...).to_list()`` builds for a local table (``LanceTable._execute_query`` ->
``AsyncTable._sync_query_to_async`` in lancedb 0.40), so the rows are the same, distances and
scores to the bit; the tests compare them with lancedb's own. Writing (ingest, indices,
restore) stays with lancedb's package (indexes/lancedb_import.py).

The native module is registered under its own name, ``lancedb._lancedb``: a later
``import lancedb`` in the same process finds it there and uses it (an extension module is
initialized once per process).
"""

from __future__ import annotations

import asyncio
import importlib
import importlib.machinery
import importlib.util
import os
import sys
import threading
from pathlib import Path
from types import ModuleType
from typing import Any

__all__ = ["NativeTable", "connect", "native_module"]

_NAME = "lancedb._lancedb"
_LOCK = threading.Lock()
_LOOP: asyncio.AbstractEventLoop | None = None


def native_module() -> ModuleType:
    """lancedb's native module, loaded without running lancedb/__init__.py when that has not
    run yet."""
    with _LOCK:
        if _NAME in sys.modules:
            return sys.modules[_NAME]
        if "lancedb" in sys.modules:  # the package is imported: its own import is the one to use
            return importlib.import_module(_NAME)
        package = importlib.util.find_spec("lancedb")
        if package is None or not package.submodule_search_locations:
            raise ImportError("lancedb is not installed: run `make install`")
        folder = Path(next(iter(package.submodule_search_locations)))
        path = next(
            (
                folder / f"_lancedb{suffix}"
                for suffix in importlib.machinery.EXTENSION_SUFFIXES
                if (folder / f"_lancedb{suffix}").exists()
            ),
            None,
        )
        if path is None:
            raise ImportError(f"lancedb's native module is missing from {folder}: reinstall lancedb")
        import pyarrow  # noqa: F401 - the native module hands out pyarrow objects

        loader = importlib.machinery.ExtensionFileLoader(_NAME, str(path))
        spec = importlib.util.spec_from_file_location(_NAME, path, loader=loader)
        assert spec is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[_NAME] = module
        try:
            loader.exec_module(module)
        except BaseException:
            del sys.modules[_NAME]
            raise
        return module


def _forget_loop() -> None:
    # A forked child has the loop but not its thread, and maybe a lock some other thread held.
    global _LOOP, _LOCK
    _LOOP, _LOCK = None, threading.Lock()


os.register_at_fork(after_in_child=_forget_loop)


def _run(coroutine):
    """Run a coroutine on this module's own event loop thread, as lancedb's sync API does on
    its background loop: the native futures need a running loop, and a caller may be inside
    one already (a server's handler)."""
    global _LOOP
    with _LOCK:
        if _LOOP is None:
            _LOOP = asyncio.new_event_loop()
            threading.Thread(target=_LOOP.run_forever, name="lancedb-native", daemon=True).start()
    return asyncio.run_coroutine_threadsafe(coroutine, _LOOP).result()


class Connection:
    def __init__(self, inner) -> None:
        self._inner = inner

    def open_table(self, name: str) -> NativeTable:
        """The table; ValueError when there is none of that name (as lancedb's open_table)."""

        async def open_():
            return await self._inner.open_table(name)

        return NativeTable(_run(open_()))


def connect(uri: str, storage_options: dict[str, str] | None = None) -> Connection:
    """A connection as ``lancedb.connect(uri, storage_options=...)`` makes for a local path or
    an object store (no read-consistency interval, no session of its own)."""
    native = native_module()
    # lancedb's own handling of a local path (LanceDBConnection.__init__), less its mkdir:
    # reading creates nothing.
    if uri.startswith("file://"):
        uri = uri[len("file://") :]
    elif uri.startswith("file:/"):
        uri = uri[len("file:") :]
    if "://" not in uri:
        uri = str(Path(uri).expanduser().absolute())

    async def connect_():
        return await native.connect(uri, None, None, None, None, None, None, storage_options, None)

    return Connection(_run(connect_()))


class NativeTable:
    """A table's read side: its versions, a checkout, vector and full-text queries."""

    def __init__(self, inner) -> None:
        self._inner = inner

    @property
    def version(self) -> int:
        async def version():
            return await self._inner.version()

        return _run(version())

    def versions(self) -> list[int]:
        async def versions():
            return await self._inner.list_versions()

        return [v["version"] for v in _run(versions())]

    def checkout(self, version: int) -> None:
        async def checkout():
            await self._inner.checkout(version)

        _run(checkout())

    def vector_search(
        self, vector, column: str, distance: str, columns: list[str], limit: int, where: str | None
    ) -> list[dict[str, Any]]:
        """Rows nearest to ``vector``, with ``_distance``; ``where`` filters before the search
        (lancedb's prefilter, its default)."""
        import numpy as np
        import pyarrow as pa

        query = self._query(columns, limit, where)
        # lancedb passes the vector as a Python list, which pyarrow makes float64: so do we,
        # from the buffer (pa.array asks pyarrow's pandas shim about its input: 0.25 s of
        # importing pandas).
        values = np.ascontiguousarray(vector, dtype=np.float64)
        query = query.nearest_to(
            pa.Array.from_buffers(pa.float64(), len(values), [None, pa.py_buffer(values)])
        )
        query.distance_type(distance)
        query.column(column)
        return self._rows(query)

    def text_search(
        self, text: str, column: str, columns: list[str], limit: int, where: str | None
    ) -> list[dict[str, Any]]:
        """Rows matching ``text`` in the full-text index of ``column`` (BM25), with ``_score``."""
        query = self._query(columns, limit, where).nearest_to_text({"query": text, "columns": [column]})
        return self._rows(query)

    def _query(self, columns: list[str], limit: int, where: str | None):
        # In the order lancedb's AsyncTable._sync_query_to_async sets them.
        query = self._inner.query()
        query.limit(limit)
        query.select_columns(columns)
        if where is not None:
            query.where(where)
        return query

    @staticmethod
    def _rows(query) -> list[dict[str, Any]]:
        async def execute():
            stream = await query.execute(None, None)
            return [batch async for batch in stream]

        return [row for batch in _run(execute()) for row in batch.to_pylist()]
