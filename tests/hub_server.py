"""A Hugging Face Hub on loopback, for huggingface_hub's real client: the routes `models search`
and `models pull` use, answered as huggingface.co answers them (model list, info with siblings
and LFS sha256, the file tree; resolve with X-Repo-Commit and ETag, an LFS file redirected to a
CDN route with X-Linked-Etag and X-Linked-Size; byte ranges; X-Error-Code on errors), serving
files from disk."""

from __future__ import annotations

import hashlib
import json
import re
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlparse

TOKEN = "hf_loopbacktoken0123456789"


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


@dataclass
class Repo:
    id: str
    files: dict[str, Path]
    gated: bool = False
    license: str = "apache-2.0"
    downloads: int = 100
    wrong_sha: set[str] = field(default_factory=set)  # advertised with another file's sha256
    cut_once: set[str] = field(default_factory=set)  # the first GET of these stops half-way
    sha: str = ""

    def __post_init__(self) -> None:
        self.sha = hashlib.sha1(self.id.encode()).hexdigest()
        self.sums = {name: sha256(path) for name, path in self.files.items()}


class Hub:
    def __init__(self, repos: list[Repo]) -> None:
        self.repos = {r.id: r for r in repos}
        self.ranges: list[str] = []  # Range headers of file GETs, in order
        self.gets: list[str] = []  # files whose bytes were sent (whole or ranged)
        self.redirects = 0  # resolves sent on to /cdn
        hub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:  # quiet
                pass

            def do_GET(self) -> None:
                hub.handle(self, body=True)

            def do_HEAD(self) -> None:
                hub.handle(self, body=False)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> Hub:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()

    # -- routes ---------------------------------------------------------------------------------

    def handle(self, request: BaseHTTPRequestHandler, body: bool) -> None:
        url = urlparse(request.path)
        query = parse_qs(url.query)
        path = unquote(url.path)
        if path == "/api/models":
            return self.list_models(request, query)
        match = re.fullmatch(r"/api/models/([^/]+/[^/]+)/tree/[^/]+", path)
        if match:
            return self.tree(request, match.group(1))
        match = re.fullmatch(r"/api/models/([^/]+/[^/]+)(?:/revision/[^/]+)?", path)
        if match:
            return self.model_info(request, match.group(1))
        match = re.fullmatch(r"/([^/]+/[^/]+)/resolve/([^/]+)/(.+)", path)
        if match:
            return self.resolve(request, match.group(1), match.group(3), body)
        match = re.fullmatch(r"/cdn/([^/]+/[^/]+)/(.+)", path)
        if match:  # where the Hub's LFS files live: a redirect away from /resolve
            return self.serve(request, match.group(1), match.group(2), body)
        self.error(request, 404, "NotFound", "no such route")

    def error(self, request, status: int, code: str, message: str) -> None:
        data = json.dumps({"error": message}).encode()
        request.send_response(status)
        request.send_header("X-Error-Code", code)
        request.send_header("X-Error-Message", message)
        request.send_header("Content-Type", "application/json")
        request.send_header("Content-Length", str(len(data)))
        request.end_headers()
        request.wfile.write(data)

    def json(self, request, value) -> None:
        data = json.dumps(value).encode()
        request.send_response(200)
        request.send_header("Content-Type", "application/json")
        request.send_header("Content-Length", str(len(data)))
        request.end_headers()
        request.wfile.write(data)

    def summary(self, repo: Repo) -> dict:
        return {
            "_id": repo.sha[:24],
            "id": repo.id,
            "modelId": repo.id,
            "downloads": repo.downloads,
            "likes": 3,
            "private": False,
            "gated": "manual" if repo.gated else False,
            "tags": ["gguf", f"license:{repo.license}"],
            "lastModified": "2026-11-01T10:00:00.000Z",
            "createdAt": "2026-10-01T10:00:00.000Z",
            "library_name": "gguf",
        }

    def list_models(self, request, query) -> None:
        text = query.get("search", [""])[0].lower()
        wanted = query.get("filter", [])
        found = [
            self.summary(r)
            for r in self.repos.values()
            if text in r.id.lower() and all(tag in self.summary(r)["tags"] for tag in wanted)
        ]
        found.sort(key=lambda r: -r["downloads"])
        self.json(request, found[: int(query.get("limit", ["1000"])[0])])

    def model_info(self, request, repo_id: str) -> None:
        repo = self.repos.get(repo_id)
        if repo is None:
            return self.error(request, 404, "RepoNotFound", f"Repository Not Found for url: {repo_id}")
        siblings = []
        for name, path in repo.files.items():
            size = path.stat().st_size
            digest = (
                hashlib.sha256(b"another file").hexdigest() if name in repo.wrong_sha else repo.sums[name]
            )
            siblings.append(
                {
                    "rfilename": name,
                    "size": size,
                    "blobId": repo.sha[:40],
                    "lfs": {"sha256": digest, "size": size, "pointerSize": 134},
                }
            )
        self.json(
            request,
            {
                **self.summary(repo),
                "sha": repo.sha,
                "siblings": siblings,
                "cardData": {"license": repo.license},
            },
        )

    def tree(self, request, repo_id: str) -> None:
        """The repo's files, recursively (what snapshot_download lists)."""
        repo = self.repos.get(repo_id)
        if repo is None:
            return self.error(request, 404, "RepoNotFound", f"Repository Not Found for url: {repo_id}")
        entries = []
        for folder in sorted({str(Path(n).parent) for n in repo.files if "/" in n}):
            entries.append({"type": "directory", "oid": repo.sha, "size": 0, "path": folder})
        for name, path in repo.files.items():
            size = path.stat().st_size
            entries.append(
                {
                    "type": "file",
                    "oid": repo.sha,
                    "size": size,
                    "path": name,
                    "lfs": {"oid": repo.sums[name], "size": size, "pointerSize": 134},
                }
            )
        self.json(request, entries)

    def resolve(self, request, repo_id: str, name: str, body: bool) -> None:
        repo = self.repos.get(repo_id)
        if repo is None:
            return self.error(request, 404, "RepoNotFound", f"Repository Not Found for url: {repo_id}")
        if repo.gated and request.headers.get("Authorization") != f"Bearer {TOKEN}":
            return self.error(request, 401, "GatedRepo", f"Access to model {repo_id} is restricted.")
        path = repo.files.get(name)
        if path is None:
            return self.error(request, 404, "EntryNotFound", f"{name} does not exist in {repo_id}")
        if name.endswith((".gguf", ".safetensors")):
            # As huggingface.co does for LFS files: 302 to the CDN, the file's sha256 and size
            # in X-Linked-Etag / X-Linked-Size (the client reads them off the redirect).
            self.redirects += 1
            request.send_response(302)
            request.send_header("Location", f"{self.url}/cdn/{repo_id}/{name}")
            request.send_header("X-Repo-Commit", repo.sha)
            request.send_header("ETag", f'"{repo.sha[:20]}"')
            request.send_header("X-Linked-Etag", f'"{repo.sums[name]}"')
            request.send_header("X-Linked-Size", str(path.stat().st_size))
            request.send_header("Content-Length", "0")
            request.end_headers()
            return
        self.serve(request, repo_id, name, body)

    def serve(self, request, repo_id: str, name: str, body: bool) -> None:
        repo = self.repos[repo_id]
        path = repo.files[name]
        size = path.stat().st_size
        start, end = 0, size - 1
        wanted = request.headers.get("Range")
        match = re.fullmatch(r"bytes=(\d+)-(\d*)", wanted or "")
        if match:
            start = int(match.group(1))
            end = min(int(match.group(2)), size - 1) if match.group(2) else size - 1
        request.send_response(206 if match else 200)
        request.send_header("X-Repo-Commit", repo.sha)
        request.send_header("ETag", f'"{repo.sums[name]}"')
        request.send_header("X-Linked-Etag", f'"{repo.sums[name]}"')
        request.send_header("X-Linked-Size", str(size))
        request.send_header("Accept-Ranges", "bytes")
        request.send_header("Content-Length", str(end - start + 1))
        if match:
            request.send_header("Content-Range", f"bytes {start}-{end}/{size}")
        request.end_headers()
        if not body:
            return
        self.ranges.append(wanted or "")
        self.gets.append(name)
        cut = name in repo.cut_once and start == 0 and end == size - 1
        if cut:
            repo.cut_once.discard(name)
        with path.open("rb") as handle:
            handle.seek(start)
            left = (end - start + 1) // 2 if cut else end - start + 1
            while left > 0:
                block = handle.read(min(left, 1 << 20))
                if not block:
                    break
                request.wfile.write(block)
                left -= len(block)
        if cut:
            request.close_connection = True
            request.wfile.flush()
            request.connection.shutdown(2)
