"""Writes `gateway.defaultPolicy` of charts/llm-operator/values.schema.json from the CRD.

`make crds` runs it after generating the CRD. The chart's default guardrail policy takes
the keys of an LLMDeployment's `spec.guardrails` but `enabled`, so its schema is the
CRD's, made strict for `helm install`: every object refuses unknown keys (a mistyped
key fails with a message naming it), and the CRD-only annotations (defaults, CEL rules)
are dropped. The rest of values.schema.json is maintained by hand.
tests/unit/operator/test_chart_values.py fails when the committed file differs.
"""

from __future__ import annotations

import json
import pathlib
import sys
from typing import Any

from llm_operator.api import crd

SCHEMA = pathlib.Path(__file__).resolve().parents[1] / "charts/llm-operator/values.schema.json"
DROP = ("default", "x-kubernetes-validations")


def strict(node: Any) -> Any:
    """A copy of a structural (OpenAPI 3.0) schema in JSON Schema 2020-12, objects strict.

    OpenAPI's boolean `exclusiveMinimum`/`exclusiveMaximum` beside `minimum`/`maximum`
    become the numeric bounds of JSON Schema, `nullable` a type that admits null.
    """
    if isinstance(node, list):
        return [strict(item) for item in node]
    if not isinstance(node, dict):
        return node
    out = {key: strict(value) for key, value in node.items() if key not in DROP}
    for bound, exclusive in (("minimum", "exclusiveMinimum"), ("maximum", "exclusiveMaximum")):
        if out.get(exclusive) is True:
            out[exclusive] = out.pop(bound)
        elif out.get(exclusive) is False:
            del out[exclusive]
    if out.pop("nullable", False) and "type" in out:
        out["type"] = [out["type"], "null"]
    if "properties" in out and not out.get("x-kubernetes-preserve-unknown-fields"):
        out["additionalProperties"] = False
    return out


def default_policy() -> dict[str, Any]:
    """The schema of `gateway.defaultPolicy`: spec.guardrails of the CRD but `enabled`."""
    version = crd.definition()["spec"]["versions"][0]
    guardrails = version["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"][
        "guardrails"
    ]
    schema: dict[str, Any] = strict(guardrails)
    del schema["properties"]["enabled"]
    schema["description"] = (
        "The installation's default guardrail policy: the keys of an LLMDeployment's "
        "spec.guardrails but enabled."
    )
    return schema


def render() -> str:
    """values.schema.json with the generated defaultPolicy."""
    values = json.loads(SCHEMA.read_text(encoding="utf-8"))
    values["properties"]["gateway"]["properties"]["defaultPolicy"] = default_policy()
    return json.dumps(values, indent=2) + "\n"


def main() -> int:
    SCHEMA.write_text(render(), encoding="utf-8")
    print(f"wrote {SCHEMA}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
