"""The `workbench` command: the root group, which adds one command group per module.

The modules below import only `_context` and `_output`, never this package, so no import
depends on the order things are imported in. Heavy modules are imported inside commands so
that `workbench --help` stays fast (goal: 0.3 s)."""

from __future__ import annotations

import os
import signal
import sys

import click

from workbench import __version__
from workbench.cli import (
    documents,
    evals,
    generation,
    mcp,
    models,
    serve,
    traces,
    usage,
    workflows,
    workspace,
)
from workbench.cli._context import Context
from workbench.core.errors import WorkbenchError, WorkspaceError

__all__ = ["main", "cli"]


@click.group(invoke_without_command=True, context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--workspace",
    "-w",
    envvar="WORKBENCH_HOME",
    metavar="DIR",
    help="Workspace folder (default: $WORKBENCH_HOME, else a per-user folder).",
)
@click.option("--offline", is_flag=True, help="Open no connection to any non-loopback address.")
@click.option("--verbose", is_flag=True, help="Show the libraries' own warnings (LanceDB, Ray) on stderr.")
@click.version_option(__version__, prog_name="workbench")
@click.pass_context
def cli(ctx: click.Context, workspace: str | None, offline: bool, verbose: bool) -> None:
    """Local-first AI stack workbench. With no command, opens the app."""
    if verbose:  # before any command imports lancedb or ray, which read these then
        os.environ.update(LANCEDB_LOG="warn", RAY_BACKEND_LOG_LEVEL="warning")
    ctx.obj = Context(workspace, offline)
    if ctx.invoked_subcommand is None:
        _open_app(ctx.obj.service)


def _open_app(service: object) -> None:
    # The app registers itself under an entry point, as a third-party front end would, so
    # that the CLI does not import the layer above it.
    from importlib.metadata import entry_points

    found = entry_points(group="workbench.apps", name="tui")
    if not found:
        raise WorkspaceError("the terminal app is not installed", "run `make run` or `pip install -e .`")
    next(iter(found)).load()(service)


for _command in (
    workspace.init,
    workspace.doctor,
    models.models,
    generation.ask,
    generation.chat,
    generation.compare,
    documents.ingest,
    documents.search,
    documents.collections,
    workflows.workflows,
    workflows.run,
    workflows.export,
    workflows.tools,
    evals.eval_group,
    traces.traces,
    traces.sql,
    usage.usage,
    serve.serve,
    mcp.mcp,
):
    cli.add_command(_command)


def _install_signal_handlers() -> None:
    """SIGTERM becomes a normal exit, so atexit flushes buffered spans (SIGINT already raises
    KeyboardInterrupt, which unwinds the same way)."""

    def _exit(signum: int, frame: object) -> None:
        sys.exit(128 + signum)

    signal.signal(signal.SIGTERM, _exit)


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
        from workbench.core.secrets import scrub

        click.echo(
            f"internal error: {type(exc).__name__}: {scrub(str(exc))} (this is a bug; run with "
            f"WORKBENCH_DEBUG=1 for details and report it)",
            err=True,
        )
        sys.exit(70)
