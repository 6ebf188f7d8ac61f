"""`workbench doctor` and the Home screen: what this machine and workspace can do, and what is
wrong with them. The probes of the machine live in workbench.core.hardware."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from workbench.core.errors import WorkbenchError
from workbench.core.hardware import Check, system_checks

if TYPE_CHECKING:
    from workbench.services.facade import Service

__all__ = ["doctor", "status"]


def status(service: Service) -> dict[str, Any]:
    models = service.list_models()
    return {
        "workspace": str(service.workspace.root),
        "config": str(service.workspace.config_path),
        "offline": service.offline,
        "models_present": sum(m.present for m in models),
        "models_known": len(models),
        "traces": service.store.stats(),
        "collections": _collection_count(service),
    }


def _collection_count(service: Service) -> int | None:
    """How many collections there are (None where they live in an object store: connecting
    to count them is the doctor's job, not the Home screen's)."""
    try:
        if not Path(service.collections.storage()[0]).is_dir():
            return None
        return len(service.collections.names())
    except Exception:  # noqa: BLE001 - the doctor reports what is wrong with the store
        return None


def next_steps(status: dict[str, Any]) -> list[str]:
    """What to do next in this workspace, first things first: the Home screen's Next."""
    steps = []
    if not status["models_present"]:
        steps.append("8  models: `workbench models fetch`, or search the Hub and pull one")
    if status.get("collections") == 0:
        steps.append("2  documents: ingest a folder into a collection")
    if not status["traces"]["traces"]:
        steps.append("3  playground: ask a model something")
    else:
        steps += ["7  traces: what every run did", "6  evals: score models on a dataset"]
    return steps


def doctor(service: Service) -> list[Check]:
    checks = system_checks()
    checks.append(Check("workspace", "path", "ok", str(service.workspace.root)))
    checks.append(Check("workspace", "config", "ok", f"{service.workspace.config_path} is valid"))
    checks.append(Check("workspace", "offline mode", "ok", "on" if service.offline else "off"))
    checks.append(_trace_check(service))
    checks.append(_lancedb_check(service))
    checks.append(_ray_check(service))
    checks.extend(_model_checks(service))
    return checks


def _ray_check(service: Service) -> Check:
    """Whether `--ray` can run, and where: read from the installed metadata (importing Ray
    takes seconds)."""
    from importlib.metadata import PackageNotFoundError, version

    from workbench.core.ray_cluster import INSTALL_HINT

    try:
        installed = version("ray")
    except PackageNotFoundError:
        return Check("workspace", "ray", "ok", f"not installed (optional, for --ray: {INSTALL_HINT})")
    where = service.config.ray.address or "a Ray started for each run on this machine"
    return Check("workspace", "ray", "ok", f"ray {installed}; --ray runs on {where}")


def _model_checks(service: Service) -> list[Check]:
    checks = []
    for model in service.list_models():
        if model.present:
            detail = f"{model.kind}, {model.size_bytes / 1e6:.0f} MB, {model.path}"
            checks.append(Check("models", model.alias, "ok", detail))
        else:
            hint = "run `workbench models fetch`" if model.source == "default" else "fix its path"
            checks.append(Check("models", model.alias, "warn", f"missing: {model.path} ({hint})"))
    return checks


def _trace_check(service: Service) -> Check:
    try:
        stats = service.store.stats()
    except Exception as exc:  # noqa: BLE001 - doctor reports, it does not crash
        return Check("workspace", "trace store", "fail", getattr(exc, "message", str(exc)))
    detail = (
        f"schema v{stats['schema_version']}, {stats['traces']} traces, "
        f"{stats['spans']} spans, {stats['size_bytes'] / 1e6:.1f} MB"
    )
    if stats["warnings"]:
        return Check("workspace", "trace store", "warn", detail + "; " + "; ".join(stats["warnings"]))
    return Check("workspace", "trace store", "ok", detail)


def _lancedb_check(service: Service) -> Check:
    try:
        where = service.collections.storage()[0]
        if Path(where).is_dir():
            # the collections' own files say what is there; importing lancedb to list its
            # tables took most of `doctor`'s second
            tables = service.collections.names()
        else:  # an object store: connecting is the check
            tables = list(service.collections.db.table_names())
    except WorkbenchError as exc:
        return Check("workspace", "lancedb", "fail", exc.one_line())
    except Exception as exc:  # noqa: BLE001
        return Check("workspace", "lancedb", "fail", f"{type(exc).__name__}: {exc}")
    return Check("workspace", "lancedb", "ok", f"{len(tables)} collections in {where}")
