"""The installation's default guardrail policy (`llm-operator run --guardrail-defaults FILE`).

A file (JSON or YAML) with the keys of an LLMDeployment's `spec.guardrails` but
`enabled` (`input`, `output`, `apiKeys`, `cache`, ...: `ALLOWED`). For an
LLMDeployment with guardrails on, every key its stored `spec.guardrails` leaves out is
taken from the file, recursively; what the spec sets wins. (The API server fills the
CRD's defaults into the objects the user wrote, so inside an object the user wrote
those defaults count as set.) The Helm chart writes the file from
`gateway.defaultPolicy`. `load` reads and validates it at start, so a bad file stops
the operator with a message naming the field; `apply` is the pure merge.
"""

from __future__ import annotations

import copy
import json
import pathlib
from collections.abc import Mapping
from typing import Any

import pydantic
import yaml

from llm_serving import policy

#: The keys a defaults file may hold: every field of the policy but `enabled`.
ALLOWED = tuple(
    field.alias or name
    for name, field in policy.GuardrailPolicy.model_fields.items()
    if name != "enabled"
)


def _merge(defaults: Mapping[str, Any], given: Mapping[str, Any]) -> dict[str, Any]:
    merged = copy.deepcopy(dict(defaults))
    for key, value in given.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def apply(spec: Mapping[str, Any], defaults: Mapping[str, Any]) -> dict[str, Any]:
    """`spec` (an LLMDeployment spec, camelCase) with the defaults under its guardrails."""
    result = dict(spec)
    guardrails = spec.get("guardrails")
    if defaults and isinstance(guardrails, Mapping) and guardrails.get("enabled"):
        result["guardrails"] = _merge(defaults, guardrails)
    return result


def validate(defaults: Any, source: str) -> dict[str, Any]:
    """The defaults as a dict, or ValueError naming what is wrong."""
    if not isinstance(defaults, dict):
        raise ValueError(f"{source}: must be a mapping of spec.guardrails keys")
    unknown = sorted(set(defaults) - set(ALLOWED))
    if unknown:
        raise ValueError(
            f"{source}: unknown keys {', '.join(unknown)} (allowed: {', '.join(ALLOWED)})"
        )
    try:
        policy.GuardrailPolicy.model_validate({**defaults, "enabled": True})
    except pydantic.ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in error['loc'])}: {error['msg']}" for error in exc.errors()
        )
        raise ValueError(f"{source}: {problems}") from exc
    return defaults


def load(path: pathlib.Path) -> dict[str, Any]:
    """Read and validate a defaults file (JSON or YAML)."""
    text = path.read_text(encoding="utf-8")
    try:
        data = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    except (ValueError, yaml.YAMLError) as exc:
        raise ValueError(f"{path}: not valid {path.suffix or 'YAML'}: {exc}") from exc
    return validate(data or {}, str(path))
