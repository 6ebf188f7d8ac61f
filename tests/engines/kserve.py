"""KServe's InferenceService schema, as its API server would check a manifest, built from what
KServe and Kubernetes publish on PyPI (the CRD YAML itself is on no registry we can reach).

KServe's Python SDK holds a model class per API type, generated from the same Go types as the
CRD's openAPIV3Schema: each class names its fields (``attribute_map``), their types
(``openapi_types``) and, in its setters, the fields that must be set. Kubernetes' own types
(Container, Volume, ObjectMeta, ...) come from kubernetes-validate's strict JSON schemas. The
classes are read with ``ast`` from the wheel, never imported (the SDK pulls in a server stack).
Types outside both (Knative and KEDA ones, used by status and autoscaling only) are not checked.
"""

from __future__ import annotations

import ast
import fcntl
import json
import re
import subprocess
import sys
import zipfile
from functools import cache
from pathlib import Path

import jsonschema

from tests.engines import CACHE

KSERVE = "kserve==0.21.0"
KUBERNETES_SCHEMAS = "kubernetes-validate==1.37.0"
KUBERNETES_VERSION = "v1.37.0-local-strict"
API_VERSION = "serving.kserve.io/v1beta1"

# The CRD's pattern for resource quantities (controller-gen writes it for every
# resource.Quantity field, with x-kubernetes-int-or-string).
QUANTITY = {
    "anyOf": [{"type": "integer"}, {"type": "string"}],
    "pattern": r"^(\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))(([KMGTPE]i)|[numkMGTPE]|([eE](\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))))?$",
}
PRIMITIVES = {
    "str": {"type": "string"},
    "int": {"type": "integer"},
    "bool": {"type": "boolean"},
    "float": {"type": "number"},
    "datetime": {"type": "string"},
    "object": {},
}


def wheel(requirement: str) -> Path:
    """The wheel of ``requirement`` (pinned), downloaded once into the engines cache."""
    folder = CACHE / "wheels"
    folder.mkdir(parents=True, exist_ok=True)
    name, version = requirement.split("==")
    pattern = f"{name.replace('-', '_')}-{version}-*.whl"
    with open(CACHE / ".wheels.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not list(folder.glob(pattern)):
            subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "pip",
                    "download",
                    "--quiet",
                    "--no-deps",
                    "-d",
                    str(folder),
                    requirement,
                ],
                check=True,
                timeout=600,
            )
    return next(folder.glob(pattern))


def _kserve_classes(archive: zipfile.ZipFile) -> dict[str, tuple[dict, dict, set[str]]]:
    """Class name -> (openapi_types, attribute_map, required python names) for every model."""
    classes = {}
    for member in archive.namelist():
        if not (member.startswith("kserve/models/") and member.endswith(".py")):
            continue
        source = archive.read(member).decode()
        for node in ast.parse(source).body:
            if not isinstance(node, ast.ClassDef):
                continue
            found = {}
            for item in node.body:
                if isinstance(item, ast.Assign) and isinstance(item.targets[0], ast.Name):
                    if item.targets[0].id in ("openapi_types", "attribute_map"):
                        found[item.targets[0].id] = ast.literal_eval(item.value)
            if "openapi_types" in found:
                segment = ast.get_source_segment(source, node) or ""
                required = set(re.findall(r"Invalid value for `(\w+)`, must not be `None`", segment))
                classes[node.name] = (found["openapi_types"], found["attribute_map"], required)
    return classes


@cache
def inference_service_schema() -> dict:
    with zipfile.ZipFile(wheel(KUBERNETES_SCHEMAS)) as archive:
        path = f"kubernetes_validate/kubernetes-json-schema/{KUBERNETES_VERSION}/_definitions.json"
        kubernetes = json.loads(archive.read(path))["$defs"]
    with zipfile.ZipFile(wheel(KSERVE)) as archive:
        classes = _kserve_classes(archive)
    by_folded_name = {key.replace(".", "").lower(): key for key in kubernetes}

    def kubernetes_ref(type_name: str) -> dict:
        folded = type_name.lower()
        if folded.startswith("k8sio"):  # K8sIoApiAppsV1DeploymentStrategy
            candidates = ["iok8s" + folded[len("k8sio") :]]
        else:  # V1Container: core or meta
            candidates = [f"iok8sapicore{folded}", f"iok8sapimachinerypkgapismeta{folded}"]
        for candidate in candidates:
            if candidate in by_folded_name:
                return {"$ref": f"#/$defs/{by_folded_name[candidate]}"}
        return {}  # Knative and KEDA types: not checked (see the module's docstring)

    def type_schema(type_name: str) -> dict:
        if type_name.startswith("list["):
            return {"type": "array", "items": type_schema(type_name[5:-1])}
        if type_name.startswith("dict(str, "):
            return {"type": "object", "additionalProperties": type_schema(type_name[10:-1])}
        if type_name in PRIMITIVES:
            return PRIMITIVES[type_name]
        if type_name in classes:
            return {"$ref": f"#/$defs/kserve.{type_name}"}
        if type_name == "ResourceQuantity":
            return QUANTITY
        return kubernetes_ref(type_name)

    definitions = dict(kubernetes)
    for name, (types, names, required) in classes.items():
        definitions[f"kserve.{name}"] = {
            "type": "object",
            "additionalProperties": False,
            "properties": {names[field]: type_schema(kind) for field, kind in types.items()},
            "required": sorted(names[field] for field in required),
        }
    # Quantities inside Kubernetes' own types (container resources) get the CRD's pattern too.
    definitions["io.k8s.apimachinery.pkg.api.resource.Quantity"] = QUANTITY
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$defs": definitions,
        "allOf": [
            {"$ref": "#/$defs/kserve.V1beta1InferenceService"},
            {
                "properties": {
                    "apiVersion": {"const": API_VERSION},
                    "kind": {"const": "InferenceService"},
                    "metadata": {"required": ["name"]},
                },
                "required": ["apiVersion", "kind", "metadata", "spec"],
            },
        ],
    }


def inference_service_problems(manifest: dict) -> list[str]:
    """What KServe's API server would refuse in ``manifest``, one line each: where, and why."""
    validator = jsonschema.Draft202012Validator(inference_service_schema())
    return sorted(
        f"{'.'.join(str(p) for p in error.absolute_path) or '(top)'}: {error.message}"
        for error in validator.iter_errors(manifest)
    )
