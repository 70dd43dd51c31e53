"""Generates the LLMDeployment CustomResourceDefinition from the pydantic models.

Pydantic's JSON Schema is turned into a Kubernetes structural schema: references
are inlined, `Optional` becomes `nullable`, titles and `additionalProperties: false`
are dropped (the API server prunes and, with strict field validation, rejects
unknown fields), JSON Schema 2020 exclusive bounds become OpenAPI v3 ones, and the
CEL rules the models carry in `x-kubernetes-validations` stay where they are. The
result is written by `make crds` to `crds/` and to the chart, and a unit test fails
when the committed copy differs from what this module generates.
"""

from __future__ import annotations

import copy
from typing import Any

import pydantic

from llm_operator import yamlio
from llm_operator.api import v1alpha1

_DROP_KEYS = frozenset({"title", "additionalProperties", "$defs"})
_KEY_ORDER = ("description", "type", "default", "nullable")


def _resolve(node: Any, defs: dict[str, Any]) -> Any:
    """Inline `$ref`s, collapse `Optional`, and rewrite keys into OpenAPI v3 form."""
    if isinstance(node, list):
        return [_resolve(item, defs) for item in node]
    if not isinstance(node, dict):
        return node
    node = dict(node)
    if "$ref" in node:
        target = copy.deepcopy(defs[node.pop("$ref").rsplit("/", 1)[-1]])
        # Keys next to the reference (description, default) win over the target's.
        target.pop("description", None) if "description" in node else None
        target.update(node)
        node = target
    if "anyOf" in node and not node.get("x-kubernetes-int-or-string"):
        branches = [b for b in node["anyOf"] if b != {"type": "null"}]
        if len(branches) != len(node["anyOf"]):
            del node["anyOf"]
            if len(branches) == 1:
                branch = branches[0]
                if "$ref" in branch:
                    branch = copy.deepcopy(defs[branch["$ref"].rsplit("/", 1)[-1]])
                for key, value in branch.items():
                    if key == "description" and "description" in node:
                        continue
                    node.setdefault(key, value)
            else:
                node["anyOf"] = branches
            node["nullable"] = True
            if node.get("default", 0) is None:
                del node["default"]
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key in _DROP_KEYS:
            if key == "additionalProperties" and isinstance(value, dict):
                out[key] = _resolve(value, defs)
            continue
        if key in ("exclusiveMinimum", "exclusiveMaximum") and not isinstance(value, bool):
            bound = "minimum" if key == "exclusiveMinimum" else "maximum"
            out[bound] = value
            out[key] = True
            continue
        if key == "properties":
            out[key] = {name: _resolve(sub, defs) for name, sub in value.items()}
            continue
        out[key] = _resolve(value, defs)
    if "enum" in out and "type" not in out:
        out["type"] = "string"
    if out.get("default") is None:
        out.pop("default", None)
    first = [key for key in _KEY_ORDER if key in out]
    return {key: out[key] for key in [*first, *(k for k in out if k not in _KEY_ORDER)]}


def _add_factory_defaults(schema: dict[str, Any], model: type[pydantic.BaseModel]) -> None:
    """Put defaults produced by `default_factory` into the schema where useful.

    Lists and maps get their computed default. Object fields get `default: {}` only
    when named in `CRD_DEFAULTED_OBJECTS` (so CEL can rely on their members); other
    objects are left absent to keep stored objects short.
    """
    properties = schema.get("properties", {})
    for name, field in model.model_fields.items():
        alias = field.alias or name
        prop = properties.get(alias)
        if prop is None:
            continue
        annotation = field.annotation
        if isinstance(annotation, type) and issubclass(annotation, pydantic.BaseModel):
            _add_factory_defaults(prop, annotation)
            if field.default_factory is not None and (
                model is v1alpha1.LLMDeploymentSpec and alias in v1alpha1.CRD_DEFAULTED_OBJECTS
            ):
                prop["default"] = {}
            continue
        if field.default_factory is not None and "default" not in prop and annotation:
            value = field.default_factory()  # type: ignore[call-arg]
            adapter: pydantic.TypeAdapter[Any] = pydantic.TypeAdapter(annotation)
            prop["default"] = adapter.dump_python(
                value, mode="json", by_alias=True, exclude_none=True
            )


def openapi_schema(model: type[pydantic.BaseModel]) -> dict[str, Any]:
    """The structural OpenAPI v3 schema of one model."""
    raw = model.model_json_schema(by_alias=True, mode="validation")
    schema: dict[str, Any] = _resolve(raw, raw.get("$defs", {}))
    _add_factory_defaults(schema, model)
    return schema


PRINTER_COLUMNS: list[dict[str, Any]] = [
    {"name": "Model", "type": "string", "jsonPath": ".spec.model.uri"},
    {"name": "Quantization", "type": "string", "jsonPath": ".spec.quantization.method"},
    {"name": "Ready", "type": "string", "jsonPath": ".status.ready"},
    {"name": "Queue", "type": "number", "jsonPath": ".status.queueDepth"},
    {"name": "Phase", "type": "string", "jsonPath": ".status.phase"},
    {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
    {
        "name": "Endpoint",
        "type": "string",
        "jsonPath": ".status.endpoint",
        "priority": 1,
    },
]


def definition() -> dict[str, Any]:
    """The whole CustomResourceDefinition object."""
    spec_schema = openapi_schema(v1alpha1.LLMDeploymentSpec)
    status_schema = openapi_schema(v1alpha1.LLMDeploymentStatus)
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {
            "name": f"{v1alpha1.PLURAL}.{v1alpha1.API_GROUP}",
            "labels": {"app.kubernetes.io/part-of": "llm-operator"},
        },
        "spec": {
            "group": v1alpha1.API_GROUP,
            "names": {
                "kind": v1alpha1.KIND,
                "listKind": f"{v1alpha1.KIND}List",
                "plural": v1alpha1.PLURAL,
                "singular": v1alpha1.SINGULAR,
                "shortNames": list(v1alpha1.SHORT_NAMES),
                "categories": ["all", "llm"],
            },
            "scope": "Namespaced",
            "versions": [
                {
                    "name": v1alpha1.API_VERSION,
                    "served": True,
                    "storage": True,
                    "additionalPrinterColumns": PRINTER_COLUMNS,
                    "subresources": {
                        "status": {},
                        "scale": {
                            "specReplicasPath": ".spec.replicas",
                            "statusReplicasPath": ".status.replicas",
                            "labelSelectorPath": ".status.selector",
                        },
                    },
                    "schema": {
                        "openAPIV3Schema": {
                            "type": "object",
                            "description": "LLMDeployment serves a large language model with "
                            "vLLM on GPUs, behind a guardrail gateway, with queue-depth "
                            "autoscaling.",
                            "required": ["spec"],
                            "properties": {
                                "apiVersion": {"type": "string"},
                                "kind": {"type": "string"},
                                "metadata": {"type": "object"},
                                "spec": spec_schema,
                                "status": status_schema,
                            },
                        }
                    },
                }
            ],
        },
    }


def render_yaml() -> str:
    """The CRD as the YAML committed under crds/."""
    header = "# Generated by `make crds` from operator/llm_operator/api/v1alpha1/. Do not edit.\n"
    return header + "---\n" + yamlio.dumps([definition()])
