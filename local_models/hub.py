"""Models from the Hugging Face Hub: search, and pull a GGUF by the quant that fits this machine.

Everything goes through ``huggingface_hub`` (its client honours HF_ENDPOINT for mirrors, and
HF_TOKEN for gated repos: read from the environment, never stored). Before a byte of weights
is downloaded, the header of one quant is read by a ranged request (the architecture is the
same in every quant: layers, heads, context) and the fit planner weighs each quant's size with
its KV cache against this machine's free VRAM and RAM. A download goes through a partial file
that outlives a cut or a stop (the next pull asks for the rest only), and the file is
registered only once its sha256 equals the one the Hub publishes.
"""

from __future__ import annotations

import os
import re
import shutil
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from local_models.fetch import _sha256_file as _sha256
from local_models.plan import FitPlan, plan_fit
from workbench.core.errors import ModelFetchError

__all__ = [
    "Quant",
    "search",
    "repo_quants",
    "choose_quant",
    "quant_table",
    "pull",
    "pull_folder",
    "Cancelled",
]


class Cancelled(Exception):
    """The user stopped a pull; the bytes downloaded so far are kept for the next one."""


_QUANT = re.compile(r"(?:^|[-_.])(I?Q\d(?:_[A-Z0-9]+)*|BF16|F16|F32)(?=[-_.])", re.IGNORECASE)
_SPLIT = re.compile(r"-(\d{5})-of-(\d{5})\.gguf$")
_FULL = {"F32", "F16", "BF16"}  # not quantized: chosen only when named, or when nothing else
_HEADER_BYTES = 8 * 1024**2


@dataclass(frozen=True)
class HubFile:
    name: str
    size: int
    sha256: str | None


@dataclass(frozen=True)
class Quant:
    label: str  # Q4_K_M, Q8_0, ...; the file's name where it names none
    files: tuple[HubFile, ...]  # one, or the parts of a split GGUF in order

    @property
    def size(self) -> int:
        return sum(f.size for f in self.files)


def _endpoint(endpoint: str | None) -> str | None:
    # Read when called: huggingface_hub reads HF_ENDPOINT once, when it is first imported.
    return endpoint or os.environ.get("HF_ENDPOINT") or None


def _api(endpoint: str | None = None):
    from huggingface_hub import HfApi

    return HfApi(endpoint=_endpoint(endpoint))


def _hub_error(exc: Exception, repo: str) -> ModelFetchError:
    """What huggingface_hub raised, as the user's next step."""
    from huggingface_hub.errors import (
        EntryNotFoundError,
        GatedRepoError,
        HfHubHTTPError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    if isinstance(exc, GatedRepoError):
        return ModelFetchError(
            f"{repo} is gated: its files need an access token",
            "accept its licence on the Hub, then set HF_TOKEN to a token of yours and pull again",
        )
    if isinstance(exc, RepositoryNotFoundError):
        return ModelFetchError(
            f"no repo {repo} on the Hub (or it is private)",
            "check the name with `workbench models search`; for a private repo set HF_TOKEN",
        )
    if isinstance(exc, (RevisionNotFoundError, EntryNotFoundError)):
        return ModelFetchError(
            f"{repo}: {exc}", f"check the name against the quants `workbench models pull {repo}` lists"
        )
    if isinstance(exc, HfHubHTTPError):
        return ModelFetchError(f"the Hub answered: {exc}", "try again; set HF_ENDPOINT for a mirror")
    return ModelFetchError(
        f"cannot reach the Hub: {type(exc).__name__}: {exc}", "check the network, or set HF_ENDPOINT"
    )


def search(
    text: str, kind: str = "gguf", limit: int = 20, endpoint: str | None = None
) -> list[dict[str, Any]]:
    """Repos on the Hub matching ``text``: GGUF models, or sentence-transformers embedding
    models and cross-encoder rerankers, most downloaded first."""
    filters = {"gguf": "gguf", "embedding": "sentence-transformers", "reranker": "text-ranking"}
    try:
        found = _api(endpoint).list_models(search=text, filter=filters[kind], sort="downloads", limit=limit)
        return [
            {
                "repo": m.id,
                "downloads": m.downloads or 0,
                "likes": m.likes or 0,
                "updated": m.last_modified.date().isoformat() if m.last_modified else "",
                "gated": bool(m.gated),
            }
            for m in found
        ]
    except Exception as exc:  # noqa: BLE001 - every Hub failure becomes the user's next step
        raise _hub_error(exc, text) from None


def _info(repo: str, endpoint: str | None):
    try:
        return _api(endpoint).model_info(repo, files_metadata=True)
    except Exception as exc:  # noqa: BLE001
        raise _hub_error(exc, repo) from None


def repo_quants(info) -> list[Quant]:
    """The GGUF files of a repo grouped by quant, split files joined in part order, largest first
    (a vision projector, mmproj, is not a model)."""
    groups: dict[str, list[HubFile]] = {}
    for sibling in info.siblings or []:
        name = sibling.rfilename
        base = name.rsplit("/", 1)[-1]
        if not base.lower().endswith(".gguf") or base.lower().startswith("mmproj"):
            continue
        if name.startswith("/") or ".." in name.split("/"):
            continue  # a name that would land outside the model's folder: not a file of ours
        lfs = sibling.lfs
        file = HubFile(name, sibling.size or (lfs.size if lfs else 0), lfs.sha256 if lfs else None)
        split = _SPLIT.search(name)
        stem = name[: split.start()] + ".gguf" if split else name
        groups.setdefault(stem, []).append(file)
    quants, labels = [], set()
    for stem, files in groups.items():
        match = _QUANT.search(stem.rsplit("/", 1)[-1])
        label = match.group(1).upper() if match else stem
        if label in labels:  # two models of one quant in a repo: each by its file's name
            label = stem
        labels.add(label)
        quants.append(Quant(label, tuple(sorted(files, key=lambda f: f.name))))
    return sorted(quants, key=lambda q: -q.size)


def _header(repo: str, info, quant: Quant, endpoint: str | None, token: str | None):
    """The GGUF header of ``quant``'s first file, from its first bytes (ranged requests)."""
    from huggingface_hub import get_session, hf_hub_url
    from huggingface_hub.utils import build_hf_headers, hf_raise_for_status

    from local_models.gguf_info import read_gguf_prefix

    first = quant.files[0]
    url = hf_hub_url(repo, first.name, revision=info.sha, endpoint=_endpoint(endpoint))
    wanted = _HEADER_BYTES
    while True:
        headers = {**build_hf_headers(token=token), "Range": f"bytes=0-{min(wanted, first.size) - 1}"}
        data = bytearray()
        try:
            with get_session().stream(
                "GET", url, headers=headers, follow_redirects=True, timeout=60
            ) as response:
                hf_raise_for_status(response)
                for chunk in response.iter_bytes(1 << 20):  # a server that ignores Range: stop anyway
                    data += chunk
                    if len(data) >= wanted:
                        break
        except Exception as exc:  # noqa: BLE001
            raise _hub_error(exc, repo) from None
        header = read_gguf_prefix(bytes(data[:wanted]), first.name, first.size)
        if header is not None:
            return header
        if wanted >= first.size:
            raise ModelFetchError(f"{repo}/{first.name} is not a valid GGUF file", "pick another quant")
        wanted *= 4


def _machine() -> tuple[bool, int | None, int | None]:
    from local_models.manager import available_memory_bytes
    from local_models.plan import gpu_memory
    from workbench.core.llama_native import library_path, supports_gpu_offload

    library = library_path()
    offload = library is not None and supports_gpu_offload(library)
    return offload, gpu_memory() if offload else None, available_memory_bytes()


def _plan(header, quant: Quant, n_ctx: int, machine) -> FitPlan:
    from dataclasses import replace

    return plan_fit(replace(header, size_bytes=quant.size), n_ctx, *machine)


def _fits(plan: FitPlan) -> bool:
    return plan.fits_in_ram or (plan.gpu_offload and plan.gpu_layers > plan.layers)


def choose_quant(quants: list[Quant], plans: dict[str, FitPlan]) -> tuple[Quant | None, str]:
    """The largest quantized file that fits with its KV cache (all on the GPU where one can
    take it, else in RAM); why, in words."""
    quantized = [q for q in quants if q.label not in _FULL] or quants
    on_gpu = [
        q
        for q in quantized
        if plans[q.label].gpu_offload and plans[q.label].gpu_layers > plans[q.label].layers
    ]
    if on_gpu:
        return on_gpu[0], f"{on_gpu[0].label}: the largest quant whose weights and KV cache fit on the GPU"
    in_ram = [q for q in quantized if plans[q.label].fits_in_ram]
    if in_ram:
        return in_ram[
            0
        ], f"{in_ram[0].label}: the largest quant whose weights and KV cache fit in the available RAM"
    return None, "no quant fits this machine with that context"


def quant_table(repo: str, n_ctx: int = 4096, endpoint: str | None = None) -> list[dict[str, Any]]:
    """Each GGUF quant of ``repo`` with its size, whether it fits this machine with an
    ``n_ctx``-token KV cache, and which one a pull would choose (the Models screen's badges)."""
    info = _info(repo, endpoint)
    quants = repo_quants(info)
    if not quants:
        raise ModelFetchError(f"{repo} holds no GGUF file", "pick a repo whose name ends in -GGUF")
    header = _header(repo, info, quants[-1], endpoint, os.environ.get("HF_TOKEN") or None)
    machine = _machine()
    plans = {q.label: _plan(header, q, n_ctx, machine) for q in quants}
    chosen, _ = choose_quant(quants, plans)
    rows = []
    for quant in quants:
        plan = plans[quant.label]
        if plan.gpu_offload and plan.gpu_layers > plan.layers:
            fit = "fits on the GPU"
        elif plan.fits_in_ram:
            fit = "fits in RAM"
        else:
            fit = "too big"
        rows.append(
            {
                "quant": quant.label,
                "files": len(quant.files),
                "size": quant.size,
                "needs": plan.total_bytes,
                "fit": fit,
                "chosen": chosen is not None and quant.label == chosen.label,
            }
        )
    return rows


def _mib(n: int | None) -> str:
    return "?" if n is None else f"{n / 1024**2:,.0f} MiB"


@dataclass
class Pulled:
    alias: str
    path: Path
    quant: str
    reason: str
    plan: FitPlan | None
    downloaded: int  # bytes


def pull(
    models_dir: Path,
    spec: str,
    register: Callable[[Path, str, dict[str, Any]], str],
    n_ctx: int = 4096,
    force: bool = False,
    alias: str | None = None,
    endpoint: str | None = None,
    progress: Callable[[str], None] = lambda line: None,
    on_bytes: Callable[[int, int], None] | None = None,
    cancel: threading.Event | None = None,
) -> Pulled:
    """Pull ``REPO[:QUANT|FILE]`` into ``models_dir``/REPO and register it (``register`` takes
    the path, the alias and what to record, and returns the alias it used)."""
    repo, _, wanted = spec.partition(":")
    if repo.count("/") != 1:
        raise ModelFetchError(
            f"'{spec}' is not a repo name",
            "write it as OWNER/NAME[:QUANT], e.g. bartowski/Qwen2.5-0.5B-Instruct-GGUF:Q4_K_M",
        )
    token = os.environ.get("HF_TOKEN") or None
    info = _info(repo, endpoint)
    quants = repo_quants(info)
    if not quants:
        raise ModelFetchError(
            f"{repo} holds no GGUF file", "pick a repo whose name ends in -GGUF (`workbench models search`)"
        )
    machine = _machine()
    if wanted:
        picked = [
            q for q in quants if q.label.upper() == wanted.upper() or any(f.name == wanted for f in q.files)
        ]
        if not picked:
            labels = ", ".join(q.label for q in quants)
            raise ModelFetchError(f"{repo} has no quant or file '{wanted}'", f"choose one of: {labels}")
        quant = picked[0]
        header = _header(repo, info, quant, endpoint, token)
        plan = _plan(header, quant, n_ctx, machine)
        reason = f"{quant.label}: as asked"
        if not _fits(plan) and not force:
            raise ModelFetchError(
                f"{repo}:{quant.label} does not fit: {_mib(plan.total_bytes)} with a {n_ctx}-token KV cache "
                f"against {_mib(plan.ram_free_bytes)} of free RAM"
                + (f" and {_mib(plan.gpu_free_bytes)} of GPU" if plan.gpu_offload else ""),
                "pick a smaller quant, a smaller --ctx, or pull anyway with --force",
            )
    else:
        header = _header(repo, info, quants[-1], endpoint, token)
        plans = {q.label: _plan(header, q, n_ctx, machine) for q in quants}
        chosen, reason = choose_quant(quants, plans)
        if chosen is None:
            smallest = quants[-1]
            raise ModelFetchError(
                f"no quant of {repo} fits: the smallest, {smallest.label}, needs {_mib(plans[smallest.label].total_bytes)} "
                f"with a {n_ctx}-token KV cache against {_mib(plans[smallest.label].ram_free_bytes)} of free RAM",
                "try a smaller --ctx, a smaller model, or name a quant with --force",
            )
        quant, plan = chosen, plans[chosen.label]
    progress(
        f"{repo}:{quant.label}, {_mib(quant.size)} in {len(quant.files)} file(s); {reason}; {plan.summary}"
    )

    target = models_dir / repo.replace("/", "--")
    target.mkdir(parents=True, exist_ok=True)
    missing = sum(f.size for f in quant.files if not (target / f.name).exists())
    free = shutil.disk_usage(target).free
    if missing > free:
        raise ModelFetchError(
            f"not enough disk for {repo}:{quant.label}: {_mib(missing)} to download, {_mib(free)} free in {target}",
            "free some disk space, or pick a smaller quant",
        )
    paths = [
        _download(repo, info.sha, f, target, endpoint, token, progress, on_bytes, cancel) for f in quant.files
    ]
    license_ = (
        (getattr(info, "card_data", None) or {}).get("license") if getattr(info, "card_data", None) else None
    )
    record = {
        "source": f"hf://{repo}/{quant.files[0].name}",
        "revision": info.sha,
        "quant": quant.label,
        "sha256": quant.files[0].sha256,
        "context_length": header.context_length,
        "license": str(license_ or ""),
        "chat_template": header.has_chat_template,
    }
    name = alias or f"{repo.split('/')[1].lower().removesuffix('-gguf')}-{quant.label.lower()}"
    used = register(paths[0], re.sub(r"[^a-z0-9._-]+", "-", name.lower()).strip("-"), record)
    return Pulled(used, paths[0], quant.label, reason, plan, missing)


# What sentence-transformers loads from a model folder (weights as safetensors only: a pickled
# pytorch_model.bin runs code when loaded, and is not taken).
_FOLDER_FILES = ["*.json", "*.txt", "*.model", "*.safetensors", "*/config.json", "*/*.json"]


def pull_folder(
    models_dir: Path,
    repo: str,
    kind: str,
    register: Callable[[Path, str, str, dict[str, Any]], str],
    alias: str | None = None,
    endpoint: str | None = None,
    progress: Callable[[str], None] = lambda line: None,
) -> Pulled:
    """Pull a sentence-transformers embedding model or CrossEncoder reranker repo (its config,
    tokenizer and safetensors weights) into ``models_dir``/REPO, each weight file checked
    against the Hub's sha256, and register it as ``kind``."""
    from fnmatch import fnmatch

    from huggingface_hub import snapshot_download

    if repo.count("/") != 1 or ":" in repo:
        raise ModelFetchError(
            f"'{repo}' is not a repo name", "write it as OWNER/NAME, e.g. cross-encoder/ms-marco-MiniLM-L6-v2"
        )
    info = _info(repo, endpoint)
    siblings = [s for s in info.siblings or [] if any(fnmatch(s.rfilename, p) for p in _FOLDER_FILES)]
    names = {s.rfilename for s in siblings}
    if not any(name.endswith(".safetensors") for name in names):
        raise ModelFetchError(
            f"{repo} has no safetensors weights",
            "pick a repo that ships model.safetensors (a pickled .bin is not loaded)",
        )
    if kind == "embedding" and "modules.json" not in names:
        raise ModelFetchError(
            f"{repo} is not a sentence-transformers model (no modules.json)", "pick an embedding model repo"
        )
    size = sum(s.size or 0 for s in siblings)
    target = models_dir / repo.replace("/", "--")
    target.mkdir(parents=True, exist_ok=True)
    free = shutil.disk_usage(target).free
    if size > free:
        raise ModelFetchError(
            f"not enough disk for {repo}: {_mib(size)}, {_mib(free)} free", "free some disk space"
        )
    progress(f"{repo}: {len(siblings)} files, {_mib(size)}")
    try:
        snapshot_download(
            repo,
            revision=info.sha,
            local_dir=target,
            allow_patterns=_FOLDER_FILES,
            endpoint=_endpoint(endpoint),
            token=os.environ.get("HF_TOKEN") or None,
        )
    except Exception as exc:  # noqa: BLE001
        raise _hub_error(exc, repo) from None
    for sibling in siblings:
        if sibling.lfs is not None and _sha256(target / sibling.rfilename) != sibling.lfs.sha256:
            (target / sibling.rfilename).unlink()
            raise ModelFetchError(
                f"{sibling.rfilename} from {repo} does not match the Hub's sha256: deleted, not registered",
                "pull again; if it persists the mirror (HF_ENDPOINT) serves another file",
            )
    license_ = (info.card_data or {}).get("license") if info.card_data else None
    record = {"source": f"hf://{repo}", "revision": info.sha, "license": str(license_ or "")}
    name = alias or repo.split("/")[1].lower()
    used = register(target, re.sub(r"[^a-z0-9._-]+", "-", name.lower()).strip("-"), kind, record)
    progress(f"downloaded {len(siblings)} files, sha256 checked")
    return Pulled(used, target, kind, "as asked", None, size)


_ATTEMPTS = 4  # a transfer cut mid-way is taken up where it stopped, this many times


def _download(
    repo, revision, file: HubFile, target: Path, endpoint, token, progress, on_bytes=None, cancel=None
) -> Path:
    """Download one file into ``target`` through ``<target>/.NAME.partial``, which outlives a
    stop or a cut: the next pull asks the Hub (HTTP Range) for the rest only. huggingface_hub
    builds the URL and the auth headers and makes the requests; its own hf_hub_download is not
    used because since 2.x it deletes a partial file when a download fails."""
    import httpx2  # huggingface_hub's HTTP client (get_session), whose errors these are
    from huggingface_hub import get_session, hf_hub_url
    from huggingface_hub.utils import build_hf_headers, hf_raise_for_status

    path = target / file.name
    if path.exists() and file.sha256 and path.stat().st_size == file.size:
        return path  # pulled before: checked when it was
    partial = target / f".{file.name.replace('/', '--')}.partial"
    url = hf_hub_url(repo, file.name, revision=revision, endpoint=_endpoint(endpoint))
    shown = -1
    for attempt in range(_ATTEMPTS):
        have = partial.stat().st_size if partial.exists() else 0
        if have > file.size:
            partial.unlink()
            have = 0
        if have == file.size:
            break
        headers = build_hf_headers(token=token)
        if have:
            headers["Range"] = f"bytes={have}-"
        try:
            with get_session().stream(
                "GET", url, headers=headers, follow_redirects=True, timeout=60
            ) as response:
                hf_raise_for_status(response)
                if have and response.status_code != 206:
                    have = 0  # the server sent the whole file again: start over
                with partial.open("ab" if have else "wb") as out:
                    for chunk in response.iter_bytes(1 << 20):
                        if cancel is not None and cancel.is_set():
                            raise Cancelled
                        out.write(chunk)
                        have += len(chunk)
                        if on_bytes is not None:
                            on_bytes(have, file.size)
                        step = have * 10 // max(file.size, 1)
                        if on_bytes is None and step != shown:
                            shown = step
                            progress(f"  {file.name}: {have / max(file.size, 1):.0%} of {_mib(file.size)}")
        except Cancelled:
            raise ModelFetchError(
                f"pull of {repo}/{file.name} stopped at {_mib(have)} of {_mib(file.size)}",
                "the bytes so far are kept: pull again to resume",
            ) from None
        except (httpx2.TransportError, httpx2.StreamError) as exc:
            if attempt + 1 < _ATTEMPTS:
                progress(
                    f"  {file.name}: the transfer was cut at {_mib(have)} ({type(exc).__name__}); resuming"
                )
                continue
            raise ModelFetchError(
                f"the download of {repo}/{file.name} was cut at {_mib(have)} of {_mib(file.size)}",
                "the bytes so far are kept: pull again to resume",
            ) from None
        except Exception as exc:  # noqa: BLE001 - the Hub's refusals (gated, missing) as next steps
            raise _hub_error(exc, repo) from None
    if file.sha256 is not None:
        got = _sha256(partial)
        if got != file.sha256:
            partial.unlink()
            raise ModelFetchError(
                f"{file.name} from {repo} does not match the Hub's sha256 ({got[:12]}... against "
                f"{file.sha256[:12]}...): deleted, not registered",
                "pull again; if it persists the mirror (HF_ENDPOINT) serves another file",
            )
    path.parent.mkdir(parents=True, exist_ok=True)
    partial.replace(path)
    progress(f"downloaded {file.name} ({_mib(file.size)}), sha256 checked")
    return path
