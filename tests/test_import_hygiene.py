"""The layers hold for every module: each belongs to one layer of the import-linter contract,
nothing outside tui/ pulls in Textual (even indirectly), and no import circle remains."""

from __future__ import annotations

import importlib
import pkgutil
import subprocess
import sys
import tomllib
from pathlib import Path

import grimp
import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ["workbench", "agents", "local_models", "indexes", "evals", "tui"]


def _modules(package: str) -> list[str]:
    found = [package]
    for info in pkgutil.walk_packages(importlib.import_module(package).__path__, prefix=f"{package}."):
        found.append(info.name)
    return found


ALL_MODULES = sorted(m for package in PACKAGES for m in _modules(package))
HEADLESS = [m for m in ALL_MODULES if not m.startswith("tui")]


def _layers() -> list[str]:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    contracts = config["tool"]["importlinter"]["contracts"]
    layers = next(c["layers"] for c in contracts if c["type"] == "layers")
    return [name.strip() for layer in layers for name in layer.split("|")]


def test_the_walk_finds_the_modules_of_every_layer():
    # A walk that found nothing would make every test below pass.
    assert len(ALL_MODULES) > 80
    for expected in (
        "workbench.core.errors",
        "workbench.services.facade",
        "workbench.cli.models",
        "evals.storage",
        "indexes.ingest",
        "agents.checks",
        "tui.screens.playground",
    ):
        assert expected in ALL_MODULES


def test_every_module_belongs_to_one_layer():
    layers = _layers()
    # The root `workbench` package holds only the version: it belongs to no layer and imports nothing.
    unplaced = [
        m
        for m in ALL_MODULES
        if m != "workbench" and not any(m == layer or m.startswith(layer + ".") for layer in layers)
    ]
    assert unplaced == []
    assert (ROOT / "workbench" / "__init__.py").read_text().count("import") == 0


def test_no_import_circle_among_our_modules():
    # Imports under `if TYPE_CHECKING:` never run (a service area names the facade's type that
    # way); every other import, at the top of a module or inside a function, counts.
    graph = grimp.build_graph(*PACKAGES, exclude_type_checking_imports=True)
    circles = []
    for module in sorted(graph.modules):
        for imported in graph.find_modules_directly_imported_by(module):
            # A direct edge back from what this module imports, or any path back, is a circle.
            if graph.chain_exists(importer=imported, imported=module):
                circles.append(f"{module} -> {imported} -> ... -> {module}")
    assert circles == []


@pytest.mark.parametrize("module", HEADLESS)
def test_headless_module_imports_neither_textual_nor_the_optional_ray(module):
    # Ray is an extra: a module that imported it at the top would break every install without it.
    code = (
        f"import sys, importlib; importlib.import_module({module!r}); "
        "print('textual' in sys.modules, 'ray' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False False"


def test_every_error_a_user_can_see_is_defined_in_the_error_module():
    from workbench.core import errors

    defined_elsewhere = []
    for module in HEADLESS:
        namespace = vars(importlib.import_module(module))
        for value in namespace.values():
            if isinstance(value, type) and issubclass(value, errors.WorkbenchError):
                if value.__module__ != errors.__name__:
                    defined_elsewhere.append(f"{value.__module__}.{value.__qualname__}")
                else:
                    assert value.__name__ in errors.__all__
    assert defined_elsewhere == []
    # Usage mistakes (UnsupportedParameter is one) have an exit code of their own, apart from
    # every other error's.
    codes = [
        cls.exit_code
        for cls in vars(errors).values()
        if isinstance(cls, type)
        and issubclass(cls, errors.WorkbenchError)
        and not issubclass(cls, errors.UsageError)
    ]
    assert errors.UsageError.exit_code not in codes
