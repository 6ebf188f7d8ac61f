"""Find the files of a source and turn each into sections of text with where they came from.

A loader never raises for one bad file: it returns a LoadFailure with the reason, and the
ingest goes on with the rest (binary, undecodable, empty, too large, unreadable, corrupt PDF).
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path

from indexes.structure import Section

__all__ = ["Section", "LoadedFile", "LoadFailure", "walk", "load_file", "file_digest", "FORMATS"]

TEXT = {".txt", ".text", ".log"}
MARKDOWN = {".md", ".markdown"}
RST = {".rst"}
HTML = {".html", ".htm"}
CODE = {
    ".py",
    ".js",
    ".jsx",
    ".ts",
    ".tsx",
    ".go",
    ".rs",
    ".java",
    ".c",
    ".h",
    ".cc",
    ".cpp",
    ".hpp",
    ".cs",
    ".rb",
    ".php",
    ".kt",
    ".swift",
    ".scala",
    ".sh",
    ".sql",
    ".toml",
    ".yaml",
    ".yml",
}
DATA = {".json", ".jsonl", ".csv"}
PDF = {".pdf"}
FORMATS = TEXT | MARKDOWN | RST | HTML | CODE | DATA | PDF


@dataclass
class LoadedFile:
    path: Path
    kind: str  # markdown | rst | html | code | text | data | pdf
    title: str
    sections: list[Section]
    content_hash: str
    size: int


@dataclass
class LoadFailure:
    path: Path
    reason: str
    skipped: bool = False  # left out by a rule (type, size, pattern), not broken


@dataclass
class WalkResult:
    files: list[Path] = field(default_factory=list)
    failures: list[LoadFailure] = field(default_factory=list)
    skipped: list[LoadFailure] = field(default_factory=list)  # a pruned folder is one entry


def walk(root: Path, include: list[str] | None = None, exclude: list[str] | None = None) -> WalkResult:
    """The files under ``root`` (or ``root`` itself) that ingest should read: supported types,
    matching the include globs, not excluded, not ignored by a .gitignore on the way down.
    Symlinked folders are not followed, so a symlink loop cannot trap the walk."""
    import pathspec

    result = WalkResult()
    root = root.expanduser()
    if not root.exists() and not root.is_symlink():
        from workbench.core.errors import CollectionError

        raise CollectionError(f"{root} does not exist", "give a file or a folder to ingest")
    if root.is_file():
        result.files.append(root.resolve())
        return result
    includes = pathspec.PathSpec.from_lines("gitwildmatch", include) if include else None
    excludes = pathspec.PathSpec.from_lines("gitwildmatch", exclude or [])
    ignores: list[tuple[Path, pathspec.PathSpec]] = []
    for folder, dirs, names in os.walk(
        root,
        followlinks=False,
        onerror=lambda e: result.failures.append(
            LoadFailure(Path(e.filename or root), f"cannot list folder: {e.strerror}")
        ),
    ):
        here = Path(folder)
        ignore_file = here / ".gitignore"
        if ignore_file.is_file():
            try:
                ignores.append(
                    (
                        here,
                        pathspec.PathSpec.from_lines(
                            "gitwildmatch",
                            ignore_file.read_text(encoding="utf-8", errors="replace").splitlines(),
                        ),
                    )
                )
            except OSError:
                pass

        def ignored(path: Path, is_dir: bool) -> str | None:
            """Why ``path`` is left out by a rule, or None."""
            if path.name.startswith("."):
                return "hidden (name starts with a dot)"
            if is_dir and path.is_symlink():
                return "symlinked folder (not followed, so a link loop cannot trap the walk)"
            relative = path.relative_to(root).as_posix() + ("/" if is_dir else "")
            if excludes.match_file(relative):
                return "matches an --exclude pattern"
            for base, spec in ignores:
                if base == path or base not in path.parents:
                    continue
                if spec.match_file(path.relative_to(base).as_posix() + ("/" if is_dir else "")):
                    return f"ignored by {base / '.gitignore'}"
            if is_dir:
                return None
            if path.suffix.lower() not in FORMATS:
                return f"unsupported type '{path.suffix or path.name}'"
            if includes is not None and not includes.match_file(relative):
                return "matches no --include pattern"
            return None

        kept = []
        for name in sorted(dirs):
            if reason := ignored(here / name, True):
                result.skipped.append(LoadFailure(here / name, reason, skipped=True))
            else:
                kept.append(name)
        dirs[:] = kept
        for name in sorted(names):
            path = here / name
            if reason := ignored(path, False):
                result.skipped.append(LoadFailure(path, reason, skipped=True))
                continue
            if path.is_symlink() and not path.exists():
                result.failures.append(LoadFailure(path, "broken symlink"))
                continue
            if not path.is_file():  # reading a FIFO would wait forever
                result.failures.append(LoadFailure(path, "not a regular file (a pipe, socket or device)"))
                continue
            result.files.append(path)
    return result


def _read(path: Path, max_bytes: int) -> bytes | LoadFailure:
    try:
        size = path.stat().st_size
        if size > max_bytes:
            return LoadFailure(
                path,
                f"too large: {size / 1e6:.1f} MB is over the {max_bytes / 1e6:.1f} MB cap "
                "([documents] max_file_mb)",
                skipped=True,
            )
        return path.read_bytes()
    except PermissionError:
        return LoadFailure(path, "no permission to read it")
    except OSError as exc:
        return LoadFailure(path, f"cannot read it: {exc.strerror or exc}")


def file_digest(path: Path, max_bytes: int) -> str | LoadFailure:
    """The content hash load_file would give the file (without parsing it), or why it cannot
    be read."""
    data = _read(path, max_bytes)
    return data if isinstance(data, LoadFailure) else hashlib.sha256(data).hexdigest()


def load_file(path: Path, max_bytes: int, skip_hash: str | None = None) -> LoadedFile | LoadFailure | None:
    """Read and split one file; a LoadFailure says why it could not be; None when its content
    hash is ``skip_hash`` (unchanged since the last ingest, so not parsed again)."""
    data = _read(path, max_bytes)
    if isinstance(data, LoadFailure):
        return data
    digest = hashlib.sha256(data).hexdigest()
    if digest == skip_hash:
        return None
    suffix = path.suffix.lower()
    if not data.strip():
        return LoadFailure(path, "empty file")
    if suffix in PDF:
        return _pdf(path, data, digest)
    if b"\x00" in data[:8192]:
        return LoadFailure(path, "binary content (NUL bytes)")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        return LoadFailure(path, f"not UTF-8 text (bad byte at offset {exc.start})")
    from indexes import structure

    if suffix in MARKDOWN:
        kind, sections = "markdown", structure.markdown(text)
    elif suffix in RST:
        kind, sections = "rst", structure.rst(text)
    elif suffix in HTML:
        kind, sections = "html", structure.html(text)
    elif suffix in CODE:
        kind, sections = "code", structure.code(text, suffix)
    elif suffix in DATA:
        kind, sections = "data", [Section(text, 0)]
    else:
        kind, sections = "text", [Section(text, 0)]
    sections = [s for s in sections if s.text.strip()]
    if not sections:
        return LoadFailure(path, "no text in it")
    title = next((s.headings[0] for s in sections if s.headings), path.stem)
    return LoadedFile(path, kind, title, sections, digest, len(data))


def _pdf(path: Path, data: bytes, digest: str) -> LoadedFile | LoadFailure:
    import io
    import logging

    import pypdf

    logging.getLogger("pypdf").setLevel(logging.ERROR)  # its warnings about odd PDFs are ours to report
    try:
        reader = pypdf.PdfReader(io.BytesIO(data))
        pages = [page.extract_text() or "" for page in reader.pages]
    except Exception as exc:  # noqa: BLE001 - pypdf raises many types for a damaged file
        return LoadFailure(path, f"corrupt or unreadable PDF ({type(exc).__name__}: {str(exc)[:80]})")
    sections, offset = [], 0
    for number, text in enumerate(pages, start=1):
        if text.strip():
            sections.append(Section(text, offset, page=number))
        offset += len(text) + 1
    if not sections:
        return LoadFailure(path, "PDF without extractable text (scanned images need OCR)")
    title = (reader.metadata.title if reader.metadata and reader.metadata.title else None) or path.stem
    return LoadedFile(path, "pdf", str(title), sections, digest, len(data))
