"""Nothing outside tui/ pulls in Textual, even indirectly (import-linter checks the direct edges)."""

from __future__ import annotations

import subprocess
import sys

import pytest

HEADLESS = [
    "workbench.config", "workbench.workspace", "workbench.errors", "workbench.tracing",
    "workbench.service", "workbench.cli", "workbench.doctor", "local_models.fetch",
    "local_models.catalog", "agents", "evals", "indexes",
]  # fmt: skip


@pytest.mark.parametrize("module", HEADLESS)
def test_headless_module_does_not_import_textual(module):
    code = f"import sys, {module}; print('textual' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
