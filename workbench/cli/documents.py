"""`workbench ingest`, `search` and `collections`: documents into LanceDB and back out."""

from __future__ import annotations

import json
import sys

import click

from workbench.cli._context import Context, ray_option
from workbench.cli._output import render_table

__all__ = ["ingest", "search", "collections"]


@click.command()
@click.argument("paths", nargs=-1, required=True, metavar="PATH...")
@click.option("--collection", "-c", required=True, help="Collection name (created on first ingest).")
@click.option("--include", multiple=True, help="Only files matching this glob (repeatable), e.g. '*.md'.")
@click.option("--exclude", multiple=True, help="Skip files or folders matching this glob (repeatable).")
@click.option(
    "--redact/--no-redact",
    default=None,
    help="Mask e-mails, phones, cards, IBANs, national ids and API keys before embedding.",
)
@click.option("--model", help="Embedding model of a new collection (default: [documents] embedding_model).")
@ray_option("Read, cut and embed")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@click.pass_obj
def ingest(
    obj: Context,
    paths: tuple[str, ...],
    collection: str,
    include: tuple[str, ...],
    exclude: tuple[str, ...],
    redact: bool | None,
    model: str | None,
    ray: str | None,
    as_json: bool,
) -> None:
    """Ingest files or folders into a collection; re-running skips unchanged files. Several
    paths are ingested one after the other in one run (a report each)."""
    reports = []
    for path in paths:
        bar = _Progress(enabled=not as_json and sys.stderr.isatty())
        report = obj.service.ingest(
            collection, path, list(include) or None, list(exclude) or None, redact, model, bar.update, ray
        )
        bar.close()
        reports.append(report)
        if not as_json:
            for what, path_, reason in report.details():
                click.echo(f"{what:<8} {path_}: {reason}", err=True)
            click.echo(report.summary() if len(paths) == 1 else f"{path}: {report.summary()}")
    if as_json:  # one path: its report, as always; several: a list of them
        dumped = [r.__dict__ for r in reports]
        click.echo(json.dumps(dumped[0] if len(paths) == 1 else dumped, indent=2, default=str))


class _Progress:
    """A progress bar per phase on stderr (click's), only on a terminal."""

    def __init__(self, enabled: bool) -> None:
        self.enabled, self.phase, self.bar, self.done = enabled, None, None, 0

    def update(self, event: dict) -> None:
        if not self.enabled or "total" not in event:
            return
        if event["phase"] != self.phase:
            self.close()
            label = {"read": "reading  ", "embed": "embedding", "write": "writing  "}.get(
                event["phase"], event["phase"]
            )
            self.phase, self.done = event["phase"], 0
            self.bar = click.progressbar(length=max(1, event["total"]), label=label, file=sys.stderr)
            self.bar.__enter__()
        self.bar.update(event["done"] - self.done)
        self.done = event["done"]

    def close(self) -> None:
        if self.bar is not None:
            self.bar.__exit__(None, None, None)
            self.bar = None


@click.command()
@click.argument("query")
@click.option("--collection", "-c", required=True)
@click.option("--mode", type=click.Choice(["vector", "fts", "hybrid"]), default="hybrid", show_default=True)
@click.option("-k", default=5, show_default=True, help="How many chunks.")
@click.option(
    "--min-score",
    type=float,
    help="Drop hits scoring under this (the last stage's score: cosine, BM25, fused or reranked).",
)
@click.option(
    "--rerank",
    "rerank",
    is_flag=False,
    flag_value="auto",
    default=None,
    metavar="[NAME]",
    help="Rerank the candidates: a registered reranker's alias, 'sections' (built in), 'none'; "
    "alone: a registered reranker if any, else 'sections'. Default: the collection's setting.",
)
@click.option("--path", "path_glob", help="Only files whose path matches this glob, e.g. 'docs/*'.")
@click.option("--type", "file_type", help="Only this file type, e.g. md, py, pdf.")
@click.option(
    "--version", type=int, help="Search this older version, read-only (see `collections versions`)."
)
@click.option("--json", "as_json", is_flag=True)
@click.pass_obj
def search(
    obj: Context,
    query: str,
    collection: str,
    mode: str,
    k: int,
    min_score: float | None,
    path_glob: str | None,
    file_type: str | None,
    version: int | None,
    rerank: str | None,
    as_json: bool,
) -> None:
    """Search a collection; each hit with its score and where it came from (through the
    workspace's running gateway when there is one: its embedding model is loaded already)."""
    from workbench.server.client import client_for
    from workbench.server.protocol.workbench import SearchRequest

    request = SearchRequest(
        collection=collection,
        query=query,
        mode=mode,
        k=k,
        min_score=min_score,
        path_glob=path_glob,
        file_type=file_type,
        version=version,
        rerank=rerank,
    )
    hits = client_for(obj.workspace, lambda: obj.service).search(request)
    if as_json:
        click.echo(json.dumps(hits, indent=2, default=str))
        return
    if not hits:
        click.echo("no hits", err=True)
    for rank, hit in enumerate(hits, start=1):
        where = hit["path"] + (f" p.{hit['page']}" if hit["page"] else "") + f" [{hit['start']}:{hit['end']}]"
        click.echo(click.style(f"{rank}. {hit['score']:.4f}  {where}", bold=True))
        if hit["headings"]:
            click.echo(f"   {hit['headings']}")
        if len(hit.get("ranks", {})) > 1:
            click.echo("   ranks: " + ", ".join(f"{stage} {rank}" for stage, rank in hit["ranks"].items()))
        preview = " ".join(hit["text"].split())
        click.echo(f"   {preview[:240]}{'...' if len(preview) > 240 else ''}")
    if hits:
        click.echo(obj.trace_note(hits[0]["trace_id"]), err=True)


@click.group()
def collections() -> None:
    """Collections: list, show, versions, restore."""


@collections.command("list")
@click.option("--json", "as_json", is_flag=True)
@click.pass_obj
def collections_list(obj: Context, as_json: bool) -> None:
    rows = obj.service.list_collections()
    if as_json:
        click.echo(json.dumps(rows, indent=2, default=str))
    elif not rows:
        click.echo("no collections yet: `workbench ingest PATH -c NAME`")
    else:
        click.echo(render_table(rows, ["name", "rows", "files", "version", "model", "redact"]))


@collections.command("show")
@click.argument("name")
@click.pass_obj
def collections_show(obj: Context, name: str) -> None:
    for key, value in obj.service.collection(name).items():
        click.echo(f"{key:<14} {value}")


@collections.command("set")
@click.argument("name")
@click.option(
    "--rerank",
    required=True,
    help="Rerank this collection's searches by default: none, sections, auto or a reranker's alias.",
)
@click.pass_obj
def collections_set(obj: Context, name: str, rerank: str) -> None:
    """Change a collection's search defaults."""
    meta = obj.service.set_collection_defaults(name, rerank=rerank)
    click.echo(f"{name}: rerank = {meta['rerank']}")


@collections.command("versions")
@click.argument("name")
@click.pass_obj
def collections_versions(obj: Context, name: str) -> None:
    """Every LanceDB version of a collection (each ingest commits one or more)."""
    click.echo(render_table(obj.service.collection_versions(name), ["version", "timestamp"]))


@collections.command("restore")
@click.argument("name")
@click.argument("version", type=int)
@click.pass_obj
def collections_restore(obj: Context, name: str, version: int) -> None:
    """Make VERSION the newest again (later versions stay listed)."""
    new = obj.service.restore_collection(name, version)
    click.echo(f"{name} restored to version {version} (now version {new})")
