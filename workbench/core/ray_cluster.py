"""Joining a Ray cluster for `--ray` runs (ingest, eval): the optional extra, the address, and
what the workers need from this process (the secrets the config names, by variable).

Ray is an extra (`pip install -e '.[ray]'`): nothing imports it until a `--ray` run starts. The
driver is this process; it alone writes the workspace (LanceDB commits, traces.duckdb, eval
results). Workers read the workspace (models, collections) and the corpus at the same paths as
the driver, so on a real cluster these live on a filesystem every node mounts.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from workbench.core.config import WorkbenchConfig
from workbench.core.errors import UsageError, WorkbenchError

__all__ = ["check_ray_target", "ray_session", "require_ray", "secret_env"]

INSTALL_HINT = "pip install -e '.[ray]' in the workbench's virtualenv (or `make test`, which installs it)"


def require_ray(data: bool = False):
    """The ray module, or an error that says how to install it. ``data``: Ray Data too (ingest
    uses it; an eval does not, and spares its import, half a second)."""
    try:
        import ray

        if data:
            import ray.data  # noqa: F401 - comes with the extra; check it is there
    except ImportError:
        raise UsageError("--ray needs Ray, which is not installed", INSTALL_HINT) from None
    return ray


def _prepare(target: str | None) -> None:
    """Ray's settings from the environment, set before Ray is imported (it reads them then)."""
    # Ray reports usage statistics to its makers unless told not to; an offline tool does not.
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    # Its C++ core logs warnings about its own internals on stderr; failures reach us as errors.
    os.environ.setdefault("RAY_BACKEND_LOG_LEVEL", "fatal")
    if target is None or target.rsplit(":", 1)[0] in ("127.0.0.1", "localhost"):
        # A Ray of the run's own listens on loopback only, as every server the workbench
        # starts. Unless told to keep to loopback (its switch for single-machine clusters),
        # Ray binds its GCS, raylet and workers to every interface and its runtime-env agent to
        # the machine's own address.
        os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
        if "ray" in sys.modules:  # imported already (a test, a library): set what it read
            from ray._private import ray_constants

            ray_constants.ENABLE_RAY_CLUSTER = False


def check_ray_target(config: WorkbenchConfig, address: str | None, data: bool = False) -> None:
    """Fail now, before any work starts, when --ray cannot run: Ray missing, or an address
    where nothing answers."""
    target = address or config.ray.address or None
    _prepare(target)
    require_ray(data)
    if target is not None:
        _check_reachable(target)


def secret_env(config: WorkbenchConfig) -> dict[str, str]:
    """The environment variables the config names for secrets (cloud API keys, object-storage
    secrets) that are set here: workers get them, since they call the same endpoints."""
    names = [endpoint.api_key_env for endpoint in config.cloud.values() if endpoint.api_key_env]
    names += list(config.documents.storage_secrets.values())
    return {name: os.environ[name] for name in names if os.environ.get(name)}


SECRETS_FILE_VAR = "WORKBENCH_RAY_SECRETS_FILE"


def load_secrets() -> None:
    """Ray's worker setup hook: the secrets of the driver's file into this worker's environment.
    Named by its module path in the runtime env, so Ray logs a name, never a value."""
    path = os.environ.get(SECRETS_FILE_VAR)
    if path:
        import json

        with open(path, encoding="utf-8") as file:
            for name, value in json.load(file).items():
                os.environ.setdefault(name, value)


@contextmanager
def _secrets_for_workers(config: WorkbenchConfig, own_ray: bool, folder: Path) -> Iterator[dict | None]:
    """The runtime env that gives workers the config's secrets without Ray seeing them.

    Ray writes a job's runtime env, env_vars included, in plain text to its agent's log, so
    secrets never go there. A Ray of the run's own is started by this process and its workers
    inherit its environment: nothing to pass. A cluster's workers get the path of a file only
    this user can read (in the workspace, which every node mounts) and a setup hook that reads
    it; the file is removed when the run ends."""
    secrets = secret_env(config)
    if own_ray or not secrets:
        yield None
        return
    import json
    import tempfile

    folder.mkdir(parents=True, exist_ok=True)
    handle, name = tempfile.mkstemp(prefix="ray-secrets-", suffix=".json", dir=folder)  # mode 0600
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as file:
            json.dump(secrets, file)
        yield {
            "env_vars": {SECRETS_FILE_VAR: name},
            "worker_process_setup_hook": f"{__name__}.load_secrets",
        }
    finally:
        Path(name).unlink(missing_ok=True)


@contextmanager
def ray_session(
    config: WorkbenchConfig, address: str | None, workspace: Path, data: bool = False
) -> Iterator[Any]:
    """Ray, connected: to ``address`` (or ``[ray] address``), or, with neither, to a Ray of its
    own on this machine that stops when the block ends. A connection this process already had
    (a test's cluster) is used as it is. ``data``: the run uses Ray Data. ``workspace``: where
    the workers' secrets file is written for a cluster's run."""
    target = address or config.ray.address or None
    _prepare(target)
    ray = require_ray(data)
    if ray.is_initialized():
        yield ray
        return
    if target is not None:
        _check_reachable(target)
    with _secrets_for_workers(config, target is None, workspace / ".secrets") as runtime_env:
        try:
            ray.init(
                # "local", not None: with None, Ray joins whatever cluster `ray start` last
                # started on this machine, which is not the Ray of its own this run promised
                address=target or "local",
                # none at all when there are no secrets: workers then start without a runtime env
                runtime_env=runtime_env,
                include_dashboard=False,
                logging_level="ERROR",
                log_to_driver=False,
                configure_logging=True,
            )
        except (ConnectionError, TimeoutError, ValueError, RuntimeError) as exc:
            raise WorkbenchError(
                f"cannot join the Ray cluster at {target}: {str(exc).splitlines()[0] if str(exc) else exc}",
                "start it (`ray start --head`) or fix --ray ADDRESS / [ray] address; without an "
                "address the run starts a Ray of its own",
            ) from None
        if data:
            _quiet_ray_data()
        _ray_messages_to_stderr()
        try:
            yield ray
        finally:
            ray.shutdown()


def _check_reachable(target: str) -> None:
    """Ray retries a head that does not answer for minutes, logging as it goes: say at once
    that nothing listens there."""
    import socket

    if target == "auto":
        return  # Ray finds the local cluster itself, and says at once when there is none
    host, _, port = target.removeprefix("ray://").rpartition(":")
    if not host or not port.isdigit():
        raise UsageError(
            f"{target!r} is not a Ray address",
            "give host:port (the head's GCS port, 6379), auto or ray://host:10001",
        )
    try:
        socket.create_connection((host, int(port)), timeout=5).close()
    except OSError as exc:
        raise WorkbenchError(
            f"nothing answers at {target} ({exc.strerror or exc})",
            "start the cluster's head there (`ray start --head`), or fix --ray ADDRESS / [ray] address",
        ) from None


def _ray_messages_to_stderr() -> None:
    """Ray's driver prints the cluster's error messages ("A worker died...") on stdout, where
    they would corrupt `--json` output; they are diagnostics, so they go to stderr. (Ray has no
    setting for it: its listener thread calls this module function by name.)"""
    from ray._private import worker

    original = worker.print_to_stdstream
    if getattr(original, "workbench_stderr", False):
        return

    def to_stderr(data, ignore_prefix: bool) -> None:
        original({**data, "is_err": True}, ignore_prefix)

    to_stderr.workbench_stderr = True  # type: ignore[attr-defined]
    worker.print_to_stdstream = to_stderr


def _quiet_ray_data() -> None:
    """Ray Data draws progress bars and logs each plan on stderr; the CLI has its own progress."""
    from ray.data import DataContext

    logging.getLogger("ray.data").setLevel(logging.ERROR)  # "execution finished in ..." and the like
    context = DataContext.get_current()
    context.enable_progress_bars = False
    context.print_on_execution_start = False
