"""`workbench serve`: run the workspace's OpenAI-compatible gateway, in the foreground or the
background, and stop it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import click

from workbench.cli._context import Context
from workbench.core import secrets
from workbench.core.errors import UsageError

LOOPBACK = {"127.0.0.1", "localhost", "::1"}


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=8765, show_default=True)
@click.option(
    "--parallel",
    default=4,
    show_default=True,
    type=click.IntRange(1, 64),
    help="Requests each local model answers at once, decoded together (llama-server's -np).",
)
@click.option(
    "--ctx",
    default=4096,
    show_default=True,
    type=click.IntRange(256),
    help="Tokens of context per request (each slot's KV cache; memory grows with --parallel).",
)
@click.option("--background", is_flag=True, help="Start it detached; its log goes to <workspace>/server.log.")
@click.option("--stop", is_flag=True, help="Stop the workspace's background gateway.")
@click.pass_obj
def serve(obj: Context, host: str, port: int, parallel: int, ctx: int, background: bool, stop: bool) -> None:
    """An OpenAI-compatible API over this workspace's models, router and traces: point any
    OpenAI client at http://HOST:PORT/v1. Off loopback it needs [server] keys."""
    from workbench.server.state import alive, clear_state, read_state

    service = obj.service
    root = service.workspace.root
    state = read_state(root)
    if stop:
        if state is None:
            raise UsageError(
                "no gateway runs for this workspace", "start one with `workbench serve --background`"
            )
        try:
            os.kill(state["pid"], signal.SIGTERM)
        except ProcessLookupError:
            clear_state(root)
            click.echo("the gateway had already stopped")
            return
        # Wait for the process to end, not just to stop answering: its last spans are written
        # on the way out, and whoever reads the traces next expects them.
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and _running(state["pid"]):
            time.sleep(0.1)
        click.echo(f"stopped the gateway at {state['url']} (pid {state['pid']})")
        return
    if state is not None and alive(state):
        raise UsageError(
            f"a gateway already runs for this workspace at {state['url']}", "stop it with --stop"
        )
    tokens = _tokens(service, host)
    if background:
        _start_background(obj, host, port, ["--parallel", str(parallel), "--ctx", str(ctx)])
        return
    import uvicorn

    from workbench.server.app import create_app
    from workbench.server.state import write_state

    service.set_load_defaults(ctx, parallel)
    config = service.config.server
    app = create_app(
        service,
        tokens,
        config.requests_per_minute,
        config.max_tokens,
        config.daily_budget_usd,
        loopback_only=not tokens,  # keyless is loopback only (refused above otherwise)
        public_metrics=config.public_metrics,
        cors_origins=config.cors_origins,
        body_timeout_s=config.body_timeout_s,
    )
    write_state(root, host, port, keyed=bool(tokens))
    click.echo(f"serving {root} at http://{host}:{port}/v1 (ctrl+c stops)", err=True)
    try:
        uvicorn.run(app, host=host, port=port, log_level="warning")
    finally:
        clear_state(root)
        service.close()


def _tokens(service, host: str) -> dict[str, str]:
    """The accepted bearer tokens by key name, read from the environment variables that
    [server] keys names; off loopback there must be some."""
    names = service.config.server.keys
    missing = [name for name in names if not os.environ.get(name)]
    if missing:
        raise UsageError(
            f"[server] keys names {', '.join(missing)}, which {'is' if len(missing) == 1 else 'are'} not set",
            f"export {missing[0]}=<a long random token> before starting the gateway",
        )
    if host not in LOOPBACK and not names:
        raise UsageError(
            f"listening on {host} would let other machines use your models without a key",
            'set [server] keys = ["WORKBENCH_KEY_ME"] in workbench.toml and export WORKBENCH_KEY_ME=<token>',
        )
    return {os.environ[name]: name for name in names}


def _start_background(obj: Context, host: str, port: int, options: list[str]) -> None:
    from workbench.server.state import alive, read_state

    root = obj.service.workspace.root
    argv = [sys.argv[0], "--workspace", str(root)] + (["--offline"] if obj.offline else [])
    argv += ["serve", "--host", host, "--port", str(port), *options]
    # the log quotes requests and errors: the owner's only
    with open(os.open(root / "server.log", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600), "ab") as log:
        secrets.private(root / "server.log")  # one made before this rule
        process = subprocess.Popen(
            argv, stdout=log, stderr=log, stdin=subprocess.DEVNULL, start_new_session=True
        )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        state = read_state(root)
        if state is not None and state["pid"] == process.pid and alive(state):
            click.echo(
                f"serving {root} at {state['url']}/v1 (pid {process.pid}; `workbench serve --stop` stops it)"
            )
            return
        if process.poll() is not None:
            raise UsageError(
                f"the gateway exited at start (code {process.returncode})", f"see {root / 'server.log'}"
            )
        time.sleep(0.1)
    process.terminate()
    raise UsageError("the gateway did not answer within 60 s", f"see {root / 'server.log'}")


def _running(pid: int) -> bool:
    """Whether process ``pid`` still runs (a zombie nobody has reaped yet has ended)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return True
