"""lancedb, imported without the REST client it never needs here, nor overrides' checks.

lancedb imports lance_namespace, which imports lance_namespace_urllib3_client, a generated REST
client whose package __init__ loads every API module (about 0.7 s of a cold `workbench search`
that took 2.15 s, measured with ``python -X importtime``). Only its ``models`` subpackage is
used on import, so the package is registered lazily: its submodules load as usual, and the
package's own __init__ runs the first time anything asks it for an attribute (a REST
namespace connection, which the workbench never makes). tests/test_lancedb_import.py pins this.
"""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from types import ModuleType

__all__ = ["import_lancedb"]

_REST_CLIENT = "lance_namespace_urllib3_client"


def import_lancedb() -> ModuleType:
    if "lancedb" not in sys.modules and _REST_CLIENT not in sys.modules:
        _register_lazily(_REST_CLIENT)
    with _typing_override():
        import lancedb

    # When indexes/lance_native.py loaded the native module first, the package's import found
    # it in sys.modules and so did not bind it as the package's attribute: bound here, as a
    # fresh import binds it.
    if not hasattr(lancedb, "_lancedb"):
        lancedb._lancedb = sys.modules["lancedb._lancedb"]
    return lancedb


@contextmanager
def _typing_override() -> Iterator[None]:
    """lancedb marks its connection classes' methods with ``overrides.override`` on Python 3.11
    and with ``typing.override`` on 3.12 and later. The former checks each against its base
    class when the class is defined, by disassembling the caller's bytecode: 105 methods, 0.2 s
    of a cold search. While lancedb is imported it gets the latter's behaviour (mark the method,
    ``__override__ = True``, which its EnforceOverrides base checks for), as on 3.12."""
    try:
        import overrides
    except ImportError:  # lancedb on 3.12+ does not need it
        yield
        return

    def override(method=None, **_checks):
        def mark(function):
            with suppress(AttributeError, TypeError):
                function.__override__ = True
            return function

        return mark if method is None else mark(method)

    checking = overrides.override
    overrides.override = override
    try:
        yield
    finally:
        overrides.override = checking


def _register_lazily(name: str) -> None:
    spec = importlib.util.find_spec(name)
    if spec is None or spec.loader is None or spec.submodule_search_locations is None:
        return  # not installed as a package: lancedb's own import says what is missing
    module = importlib.util.module_from_spec(spec)

    def __getattr__(attribute: str):
        del module.__getattr__  # type: ignore[attr-defined]
        spec.loader.exec_module(module)  # type: ignore[union-attr]
        return getattr(module, attribute)

    module.__getattr__ = __getattr__  # type: ignore[attr-defined]
    sys.modules[name] = module
