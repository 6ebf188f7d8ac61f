"""indexes/lancedb_import.py leans on how lancedb imports lance_namespace's REST client: pinned
here, in a fresh interpreter each time (the import is process-wide)."""

from __future__ import annotations

import subprocess
import sys


def _run(code: str) -> str:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout


def test_lancedb_imports_without_the_rest_client_apis_and_works(tmp_path):
    out = _run(
        "import sys\n"
        "from indexes.lancedb_import import import_lancedb\n"
        "lancedb = import_lancedb()\n"
        "print('api' if 'lance_namespace_urllib3_client.api' in sys.modules else 'no api')\n"
        f"db = lancedb.connect({str(tmp_path)!r})\n"
        "table = db.create_table('t', data=[{'vector': [1.0, 0.0], 'text': 'a'}, {'vector': [0.0, 1.0], 'text': 'b'}])\n"
        "print(table.search([0.9, 0.1]).limit(1).to_list()[0]['text'])\n"
    )
    assert out.split() == ["no", "api", "a"]


def test_the_rest_client_still_loads_whole_when_asked_for():
    out = _run(
        "from indexes.lancedb_import import import_lancedb\n"
        "import_lancedb()\n"
        "import lance_namespace_urllib3_client as client\n"
        "print(client.ApiClient.__name__, client.TableApi.__name__)\n"
    )
    assert out.split() == ["ApiClient", "TableApi"]


def test_lancedb_gets_typing_overrides_behaviour_while_it_imports():
    """As on Python 3.12+, where lancedb uses typing.override: its methods are marked, the
    checking decorator is back for anyone else afterwards, and lancedb's own EnforceOverrides
    base still refuses an unmarked override."""
    out = _run(
        "import overrides\n"
        "checking = overrides.override\n"
        "from indexes.lancedb_import import import_lancedb\n"
        "lancedb = import_lancedb()\n"
        "from lancedb.db import DBConnection, LanceDBConnection\n"
        "print(overrides.override is checking, LanceDBConnection.table_names.__override__)\n"
        "try:\n"
        "    class Broken(DBConnection):\n"
        "        def table_names(self): return []\n"
        "except TypeError:\n"
        "    print('refused')\n"
    )
    assert out.split() == ["True", "True", "refused"]
