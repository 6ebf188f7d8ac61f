"""`workbench mcp`: serve this workspace over MCP (workbench/server/mcp_server.py)."""

from __future__ import annotations

import click

from workbench.cli._context import Context


@click.command("mcp")
@click.option("--http", "http", is_flag=True, help="Streamable HTTP on 127.0.0.1 instead of stdio.")
@click.option("--port", default=8766, show_default=True, help="The port of --http.")
@click.pass_obj
def mcp(obj: Context, http: bool, port: int) -> None:
    """This workspace as an MCP server: search collections, run workflows, query traces, list
    models. For an MCP host's config: command `workbench`, args `["mcp"]` (stdio)."""
    from workbench.server.mcp_server import build_server

    server = build_server(obj.service)
    if http:
        # loopback only: the server has no keys of its own (the gateway's [server] keys are for it)
        click.echo(f"MCP (streamable HTTP) at http://127.0.0.1:{port}/mcp", err=True)
        server.run("streamable-http", host="127.0.0.1", port=port)
    else:
        server.run("stdio")
