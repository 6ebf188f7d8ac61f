"""`workbench init` and `doctor`: the workspace and what this machine can do."""

from __future__ import annotations

import json
import sys

import click

from workbench.cli._context import Context


@click.command()
@click.argument("directory", required=False)
@click.pass_obj
def init(obj: Context, directory: str | None) -> None:
    """Create a workspace in DIRECTORY (default: the current workspace)."""
    from workbench.services import init_workspace

    root, created = init_workspace(directory or obj.workspace)
    click.echo(f"{'created' if created else 'already complete'}: workspace {root}")


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.pass_obj
def doctor(obj: Context, as_json: bool) -> None:
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
