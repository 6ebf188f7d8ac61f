"""GGUFs already on this machine: the Hugging Face cache, LM Studio's models folder and Ollama's
store, found where each keeps them, named as each names them, registered in place (no copy).

- Hugging Face cache (HF_HUB_CACHE, HF_HOME/hub, ~/.cache/huggingface/hub): read with
  huggingface_hub's own scan_cache_dir; a file's blob is named by its sha256.
- LM Studio (~/.lmstudio/models, the older ~/.cache/lm-studio/models, LMSTUDIO_MODELS):
  PUBLISHER/REPO/FILE.gguf.
- Ollama (OLLAMA_MODELS, ~/.ollama/models): manifests/REGISTRY/NAMESPACE/MODEL/TAG, whose layer
  of media type application/vnd.ollama.image.model names the GGUF blob by its sha256.

The same file reached twice (a copy in LM Studio of a file in the HF cache) is listed once:
files are compared by sha256, known from the blob's name where the store names it so, read
only for files whose size matches another's.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path

from local_models.fetch import _sha256_file as _sha256

__all__ = ["Found", "discover", "default_roots"]

_GGUF_MAGIC = b"GGUF"
_OLLAMA_MODEL = "application/vnd.ollama.image.model"


@dataclass(frozen=True)
class Found:
    name: str  # an alias in our catalog's alphabet, from the store's own name
    path: Path
    store: str  # "huggingface", "lmstudio" or "ollama"
    label: str  # the name in that store: OWNER/REPO/FILE, MODEL:TAG
    size: int
    sha256: str | None = None  # where the store names the file by it


def default_roots() -> dict[str, list[Path]]:
    home = Path.home()
    hf = os.environ.get("HF_HUB_CACHE") or (
        str(Path(os.environ["HF_HOME"]) / "hub")
        if os.environ.get("HF_HOME")
        else str(home / ".cache/huggingface/hub")
    )
    lmstudio = [Path(os.environ["LMSTUDIO_MODELS"])] if os.environ.get("LMSTUDIO_MODELS") else []
    ollama = os.environ.get("OLLAMA_MODELS") or str(home / ".ollama/models")
    return {
        "huggingface": [Path(hf)],
        "lmstudio": lmstudio + [home / ".lmstudio/models", home / ".cache/lm-studio/models"],
        "ollama": [Path(ollama)],
    }


def _alias(text: str) -> str:
    return re.sub(r"[^a-z0-9._-]+", "-", text.lower().removesuffix(".gguf")).strip("-")


def _is_gguf(path: Path) -> bool:
    try:
        with path.open("rb") as handle:
            return handle.read(4) == _GGUF_MAGIC
    except OSError:
        return False


def _huggingface(root: Path) -> list[Found]:
    if not root.is_dir():
        return []
    from huggingface_hub import scan_cache_dir

    found = []
    for repo in scan_cache_dir(root).repos:
        if repo.repo_type != "model":
            continue
        for revision in repo.revisions:
            for file in revision.files:
                if file.file_name.lower().endswith(".gguf") and not file.file_name.lower().startswith(
                    "mmproj"
                ):
                    found.append(
                        Found(
                            _alias(file.file_name),
                            file.file_path,
                            "huggingface",
                            f"{repo.repo_id}/{file.file_name}",
                            file.size_on_disk,
                            file.blob_path.name
                            if re.fullmatch(r"[0-9a-f]{64}", file.blob_path.name)
                            else None,
                        )
                    )
    return found


def _lmstudio(root: Path) -> list[Found]:
    if not root.is_dir():
        return []
    found = []
    for path in sorted(root.glob("*/*/*.gguf")):
        if path.name.lower().startswith("mmproj") or not _is_gguf(path):
            continue
        found.append(
            Found(_alias(path.stem), path, "lmstudio", str(path.relative_to(root)), path.stat().st_size)
        )
    return found


def _ollama(root: Path) -> list[Found]:
    manifests = root / "manifests"
    if not manifests.is_dir():
        return []
    found = []
    for manifest in sorted(p for p in manifests.rglob("*") if p.is_file()):
        try:
            layers = json.loads(manifest.read_text()).get("layers", [])
        except (OSError, ValueError, AttributeError):
            continue  # not a manifest
        model = next((layer for layer in layers if layer.get("mediaType") == _OLLAMA_MODEL), None)
        if model is None or not str(model.get("digest", "")).startswith("sha256:"):
            continue
        digest = model["digest"].removeprefix("sha256:")
        blob = root / "blobs" / f"sha256-{digest}"
        if not _is_gguf(blob):
            continue
        name, tag = manifest.parent.name, manifest.name
        label = (
            f"{name}:{tag}"
            if manifest.parent.parent.name == "library"
            else f"{manifest.parent.parent.name}/{name}:{tag}"
        )
        found.append(Found(_alias(f"{name}-{tag}"), blob, "ollama", label, blob.stat().st_size, digest))
    return found


def discover(roots: dict[str, list[Path]] | None = None) -> list[Found]:
    """Every GGUF the stores hold, each file once (the first store that has it names it)."""
    roots = roots or default_roots()
    readers = {"huggingface": _huggingface, "lmstudio": _lmstudio, "ollama": _ollama}
    found = [
        item for store, reader in readers.items() for root in roots.get(store, []) for item in reader(root)
    ]
    sizes: dict[int, int] = {}
    for item in found:
        sizes[item.size] = sizes.get(item.size, 0) + 1
    unique, seen = [], set()
    for item in found:
        key: tuple = (item.path.resolve(),)
        if sizes[item.size] > 1:  # only then is a file's content worth reading
            key = ("sha256", item.sha256 or _sha256(item.path))
        if key not in seen:
            seen.add(key)
            unique.append(item)
    return unique
