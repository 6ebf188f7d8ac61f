"""llama.cpp's native library, loaded without llama-cpp-python's Python API.

``import llama_cpp`` runs the package's __init__, which loads all of its Python API (Llama, the
chat formats, numpy): 0.2 s of a cold ``workbench doctor`` whose goal is 0.5 s. doctor only asks
whether the library loads and whether it was built with GPU offload, so this loads libllama from
where llama-cpp-python installs it (``llama_cpp/lib``, or ``LLAMA_CPP_LIB_PATH``, as its own
``_ctypes_extensions.load_shared_library`` looks) and asks it. Everything that runs a model
imports llama_cpp as usual. tests/test_cli.py pins this against llama_cpp's own answer.
"""

from __future__ import annotations

import ctypes
import importlib.util
import os
import sys
from pathlib import Path

__all__ = ["library_path", "supports_gpu_offload"]


def library_path() -> Path | None:
    """libllama's path; None when llama-cpp-python is not installed or holds no library."""
    override = os.environ.get("LLAMA_CPP_LIB_PATH")
    if override:
        folder = Path(override)
    else:
        spec = importlib.util.find_spec("llama_cpp")  # finds the package without importing it
        if spec is None or not spec.submodule_search_locations:
            return None
        folder = Path(list(spec.submodule_search_locations)[0]) / "lib"
    if sys.platform == "win32":
        names = ["llama.dll", "libllama.dll"]
    elif sys.platform == "darwin":
        names = ["libllama.so", "libllama.dylib"]
    else:
        names = ["libllama.so"]
    return next((folder / name for name in names if (folder / name).exists()), None)


def supports_gpu_offload(path: Path) -> bool:
    """Whether the library at ``path`` was built with GPU offload; OSError when it does not load."""
    if sys.platform == "win32":
        os.add_dll_directory(str(path.parent))
    library = ctypes.CDLL(str(path))
    library.llama_supports_gpu_offload.restype = ctypes.c_bool
    library.llama_supports_gpu_offload.argtypes = []
    return bool(library.llama_supports_gpu_offload())
