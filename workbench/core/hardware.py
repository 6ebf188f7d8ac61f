"""`workbench doctor`: what this machine and workspace can do, and what is wrong with them."""

from __future__ import annotations

import os
import platform
import shutil
import subprocess
from dataclasses import dataclass
from importlib import metadata

__all__ = ["Check", "system_checks", "PACKAGES"]

PACKAGES = (
    "textual",
    "duckdb",
    "lancedb",
    "llama-cpp-python",
    "sentence-transformers",
    "torch",
    "langgraph",
    "pydantic",
)


@dataclass(frozen=True)
class Check:
    group: str
    name: str
    status: str  # "ok", "warn" or "fail"
    detail: str


def _version(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def _cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as handle:
            for line in handle:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _memory_gib() -> float | None:
    try:
        with open("/proc/meminfo") as handle:
            for line in handle:
                if line.startswith("MemTotal"):
                    return int(line.split()[1]) / 1024**2
    except OSError:
        pass
    return None


def gpus_raw() -> list[tuple[str, int, int]]:
    """(name, total bytes, free bytes) per GPU, from nvidia-smi; empty where there is none."""
    if not shutil.which("nvidia-smi"):
        return []
    try:
        out = subprocess.run(
            ["nvidia-smi", "--query-gpu=name,memory.total,memory.free", "--format=csv,noheader,nounits"],
            capture_output=True,
            text=True,
            timeout=10,
        )
    except (OSError, subprocess.TimeoutExpired):
        return []
    found = []
    for line in out.stdout.splitlines() if out.returncode == 0 else []:
        parts = [part.strip() for part in line.split(",")]
        if len(parts) == 3 and parts[1].isdigit() and parts[2].isdigit():
            found.append((parts[0], int(parts[1]) * 1024**2, int(parts[2]) * 1024**2))
    return found


def gpus() -> list[str]:
    """GPUs as nvidia-smi names them, with memory; empty where there is none or no driver."""
    return [
        f"{name} ({total // 1024**2} MiB total, {free // 1024**2} MiB free)"
        for name, total, free in gpus_raw()
    ]


def system_checks() -> list[Check]:
    checks = [Check("versions", "python", "ok", platform.python_version())]
    for package in PACKAGES:
        version = _version(package)
        checks.append(
            Check(
                "versions",
                package,
                "ok" if version else "warn",
                version or "not installed (run `make run` or `pip install -e .`)",
            )
        )
    memory = _memory_gib()
    checks.append(
        Check(
            "hardware",
            "cpu",
            "ok",
            f"{_cpu_name()}, {os.cpu_count()} cores" + (f", {memory:.1f} GiB RAM" if memory else ""),
        )
    )
    devices = gpus()
    checks.append(Check("hardware", "gpu", "ok", "; ".join(devices) if devices else "none seen"))
    checks.append(llama_check(devices))
    return checks


def llama_check(devices: list[str]) -> Check:
    from workbench.core.llama_native import library_path, supports_gpu_offload

    path = library_path()
    if path is None:
        return Check("hardware", "llama.cpp", "fail", "llama-cpp-python is not installed (run `make run`)")
    try:
        offload = supports_gpu_offload(path)
    except (OSError, AttributeError) as exc:  # a broken native build must not crash doctor
        return Check("hardware", "llama.cpp", "fail", f"cannot load {path}: {exc} (run `make run` again)")
    version = _version("llama-cpp-python") or "?"
    if offload:
        seen = f"; GPU: {'; '.join(devices)}" if devices else "; but no GPU is visible"
        return Check(
            "hardware", "llama.cpp", "ok" if devices else "warn", f"{version}, built with GPU offload{seen}"
        )
    if devices:
        return Check(
            "hardware",
            "llama.cpp",
            "warn",
            f"{version}, CPU-only build but a GPU is present: rebuild with `make run GPU=1`",
        )
    return Check("hardware", "llama.cpp", "ok", f"{version}, CPU build (no GPU offload)")
