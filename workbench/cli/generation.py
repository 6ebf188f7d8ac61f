"""`workbench ask`, `chat` and `compare`: prompts to local, cloud and routed models."""

from __future__ import annotations

import json
import sys

import click

from workbench.cli._context import Context
from workbench.cli._output import render_table, report, write
from workbench.core.errors import UsageError, WorkbenchError

_MODEL_HELP = (
    "Alias or unique prefix (see `models list`), ENDPOINT/MODEL for a cloud model, "
    "or auto for the [router] policy (local first, escalate when needed)."
)


def _generation_options(command):
    """The sampling, grammar and load options that ask and chat share."""
    options = [
        click.option("--model", "-m", required=True, help=_MODEL_HELP),
        click.option("--system", help="System prompt."),
        click.option("--max-tokens", default=256, show_default=True),
        click.option("--temperature", "-t", default=0.7, show_default=True),
        click.option("--top-p", default=0.95, show_default=True),
        click.option("--seed", type=int, help="Fix the sampling seed for a reproducible answer."),
        click.option("--stop", multiple=True, help="Stop sequence (repeatable)."),
        click.option(
            "--schema",
            type=click.Path(exists=True, dir_okay=False),
            help="JSON schema file: the answer is JSON valid against it.",
        ),
        click.option("--ctx", default=4096, show_default=True, help="Context size in tokens."),
        click.option("--threads", type=int, help="CPU threads (default: all cores)."),
        click.option(
            "--gpu-layers", type=int, help="Layers to offload; -1 for all (default: as many as fit)."
        ),
    ]
    for option in reversed(options):
        command = option(command)
    return command


def _generation(max_tokens, temperature, top_p, seed, stop, schema, ctx, threads, gpu_layers, **_):
    json_schema = None
    if schema:
        try:
            with open(schema, encoding="utf-8") as handle:
                json_schema = json.load(handle)
        except (ValueError, UnicodeDecodeError) as exc:
            raise UsageError(f"{schema} is not valid JSON: {exc}", "fix the schema file") from None
    from workbench.server.protocol.workbench import Sampling

    sampling = Sampling(
        temperature=temperature,
        top_p=top_p,
        max_tokens=max_tokens,
        seed=seed,
        stop=stop,
        json_schema=json_schema,
    )
    return sampling, {"n_ctx": ctx, "n_threads": threads, "n_gpu_layers": gpu_layers}


@click.command()
@_generation_options
@click.argument("prompt")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON result with usage and cost.")
@click.pass_obj
def ask(obj: Context, model: str, prompt: str, system: str | None, as_json: bool, **generation) -> None:
    """Ask MODEL one PROMPT; the answer streams to stdout (through the workspace's running
    gateway when there is one: its models are loaded already)."""
    from workbench.server.client import client_for

    sampling, options = _generation(**generation)
    client = client_for(obj.workspace, lambda: obj.service, _loads_its_own(options), options)
    messages = ([{"role": "system", "content": system}] if system else []) + [
        {"role": "user", "content": prompt}
    ]
    result = client.chat(model, messages, sampling, None if as_json else write)
    if as_json:
        click.echo(result.model_dump_json(indent=2))
        return
    click.echo()
    sys.stdout.flush()
    report(result, obj.trace_note(result.trace_id))


def _loads_its_own(options: dict) -> bool:
    """Whether the command asks for load options of its own (a gateway's model is loaded as it is)."""
    return options["n_ctx"] != 4096 or options["n_threads"] is not None or options["n_gpu_layers"] is not None


CHAT_HELP = "/reset starts over, /system TEXT sets the system prompt, /exit or ctrl+d leaves"


@click.command()
@_generation_options
@click.option("--collection", "-c", help="Answer from this collection, citing its passages as [1], [2].")
@click.option("--k", "k", default=4, show_default=True, help="Passages retrieved per question (with -c).")
@click.option("--mode", type=click.Choice(["hybrid", "vector", "text"]), default="hybrid", show_default=True)
@click.pass_obj
def chat(
    obj: Context, model: str, system: str | None, collection: str | None, k: int, mode: str, **generation
) -> None:
    """A conversation with MODEL in the terminal; the model stays loaded between turns. With
    --collection, each question retrieves passages and the answer cites them."""
    from workbench.server.client import client_for

    sampling, options = _generation(**generation)
    interactive = sys.stdin.isatty()
    history: list[dict[str, str]] = []
    if collection is not None:
        obj.service.collections.describe(collection)  # a wrong name fails before the first prompt
    # Chat with a collection runs here: its retrieval and citations are the service's.
    client = client_for(
        obj.workspace, lambda: obj.service, collection is not None or _loads_its_own(options), options
    )
    url = getattr(client, "url", None)
    if url is not None:
        click.echo(f"[through the gateway at {url}]", err=True)
    loaded = client.prepare(model)  # before the first prompt: a bad name fails at once
    if loaded is not None:
        click.echo(
            f"[{loaded['model']} loaded in {loaded['load_s']:.2f} s on {loaded['hardware']}]", err=True
        )
    if interactive:
        click.echo(f"chat with {model}: {CHAT_HELP}", err=True)
    while True:
        if interactive:
            click.echo("you> ", nl=False, err=True)
        line = sys.stdin.readline()
        if not line:  # end of input (ctrl+d)
            break
        text = line.strip()
        if not text:
            continue
        if text in ("/exit", "/quit"):
            break
        if text == "/reset":
            history.clear()
            click.echo("[new conversation]", err=True)
            continue
        if text.startswith("/system"):
            system = text.removeprefix("/system").strip() or None
            click.echo(f"[system prompt {'set' if system else 'cleared'}]", err=True)
            continue
        if text.startswith("/"):
            click.echo(f"[unknown command {text.split()[0]}: {CHAT_HELP}]", err=True)
            continue
        history.append({"role": "user", "content": text})
        messages = ([{"role": "system", "content": system}] if system else []) + history
        try:
            if collection is None:
                result = client.chat(model, messages, sampling, write)
            else:
                result = obj.service.chat_with_collection(
                    model, messages, collection, k, mode, sampling.model_dump(), write, options
                )
        except WorkbenchError as exc:
            history.pop()  # the conversation goes on without the turn that failed
            click.echo(f"\n[{exc.one_line()}]", err=True)
            continue
        history.append({"role": "assistant", "content": result.text})
        click.echo()
        sys.stdout.flush()
        if collection is not None:
            _sources(result.extra)
        report(result, obj.trace_note(result.trace_id))


def _sources(extra: dict) -> None:
    """The passages the answer cited, with path and heading (all retrieved, when it cited none)."""
    sources = extra.get("sources", [])
    cited = [s for s in sources if s["cited"]]
    if not sources:
        click.echo(f"[no passage of {extra.get('collection')} matched]", err=True)
    else:
        click.echo("sources cited:" if cited else "sources given (none cited):")
    for source in cited or sources:
        heading = f" > {source['heading']}" if source["heading"] else ""
        click.echo(f"  [{source['number']}] {source['path']}{heading}")
    for dropped in extra.get("dropped", []):
        click.echo(
            f"[dropped {dropped['path']}: reads as a prompt injection ({dropped['phrase']})]", err=True
        )


@click.command()
@click.option("--model", "-m", "models", multiple=True, required=True, help="2 to 4 models.")
@click.argument("prompt")
@click.option("--system", help="System prompt.")
@click.option("--max-tokens", default=256, show_default=True)
@click.option("--temperature", "-t", default=0.7, show_default=True)
@click.option("--seed", type=int)
@click.option("--json", "as_json", is_flag=True)
@click.pass_obj
def compare(
    obj: Context,
    models: tuple[str, ...],
    prompt: str,
    system: str | None,
    max_tokens: int,
    temperature: float,
    seed: int | None,
    as_json: bool,
) -> None:
    """One PROMPT to several models at once, side by side with their figures (through the
    workspace's running gateway when there is one)."""
    params = {"temperature": temperature, "max_tokens": max_tokens, "seed": seed}
    if not 2 <= len(models) <= 4:
        raise UsageError(f"compare takes 2 to 4 models, not {len(models)}", "pass -m 2 to 4 times")
    if not as_json:
        click.echo(f"asking {len(models)} models at once...", err=True)
    from workbench.server.client import client_for
    from workbench.server.protocol.workbench import CompareRequest

    request = CompareRequest(models=list(models), prompt=prompt, system=system, params=params)
    outcomes = client_for(obj.workspace, lambda: obj.service).compare(request)
    rows = []
    for name, outcome in zip(models, outcomes):
        if isinstance(outcome, Exception):
            rows.append({"model": name, "error": outcome.one_line()})
        else:
            rows.append(
                {
                    "model": name,
                    "text": outcome.text,
                    "ttft_ms": round((outcome.ttft_s or 0) * 1000),
                    "tok_s": round(outcome.tokens_per_s, 1),
                    "tokens_in": outcome.input_tokens,
                    "tokens_out": outcome.output_tokens,
                    "cost_usd": outcome.cost_usd,
                    "finish": outcome.finish_reason,
                    "hardware": outcome.hardware,
                    "trace_id": outcome.trace_id,
                }
            )
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    for row in rows:
        click.echo(click.style(f"== {row['model']}", bold=True))
        click.echo(row.get("text") or f"error: {row['error']}")
        click.echo()
    figures = [r for r in rows if "error" not in r]
    if figures:
        click.echo(
            render_table(
                figures,
                ["model", "ttft_ms", "tok_s", "tokens_in", "tokens_out", "cost_usd", "finish", "hardware"],
            )
        )
        click.echo(obj.trace_note(figures[0]["trace_id"]))
