"""Names and field types every section of the v1alpha1 API shares.

The group, version and kind; the patterns of model URIs and DNS labels; and the
annotated field types (Kubernetes quantities, int-or-percent values, free-form
objects) with the JSON Schema the CRD generator turns into their OpenAPI form.
"""

from __future__ import annotations

import dataclasses
import re
from typing import Annotated, Any

import pydantic
from pydantic_core import core_schema

from llm_serving import policy

API_GROUP = "llmoperator.io"
API_VERSION = "v1alpha1"
KIND = "LLMDeployment"
PLURAL = "llmdeployments"
SINGULAR = "llmdeployment"
SHORT_NAMES = ("llmd",)

Model = policy.Model

QUANTITY_PATTERN = r"^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$"
_QUANTITY_RE = re.compile(QUANTITY_PATTERN)
_INT_OR_PERCENT_RE = re.compile(r"^[0-9]+%?$")
MODEL_URI_PATTERN = r"^(hf://[A-Za-z0-9._-]+/[A-Za-z0-9._-]+(@[A-Za-z0-9._/-]+)?|(s3|gs)://[a-z0-9.-]+(/.*)?|pvc://[a-z0-9]([-a-z0-9]*[a-z0-9])?(/.*)?)$"
DNS_LABEL_PATTERN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"


def _quantity(value: Any) -> str:
    text = str(value)
    if isinstance(value, bool) or not _QUANTITY_RE.match(text):
        raise ValueError(f"{value!r} is not a Kubernetes quantity such as 4, 500m, 16Gi")
    return text


def _int_or_percent(value: Any) -> int | str:
    if isinstance(value, bool):
        raise ValueError("expected an integer or a percentage such as 25%")
    if isinstance(value, int):
        if value < 0:
            raise ValueError("must not be negative")
        return value
    if isinstance(value, str) and _INT_OR_PERCENT_RE.match(value):
        return value
    raise ValueError(f"{value!r} is not an integer or a percentage such as 25%")


Quantity = Annotated[
    str,
    pydantic.BeforeValidator(_quantity),
    pydantic.WithJsonSchema(
        {
            "x-kubernetes-int-or-string": True,
            "anyOf": [{"type": "integer"}, {"type": "string"}],
            "pattern": QUANTITY_PATTERN,
        }
    ),
]

IntOrPercent = Annotated[
    int | str,
    pydantic.BeforeValidator(_int_or_percent),
    pydantic.WithJsonSchema(
        {"x-kubernetes-int-or-string": True, "anyOf": [{"type": "integer"}, {"type": "string"}]}
    ),
]

# Free-form Kubernetes objects (affinity, env valueFrom) are passed through as they are;
# the API server validates them when the Deployment is applied.
FreeForm = Annotated[
    dict[str, Any],
    pydantic.WithJsonSchema({"type": "object", "x-kubernetes-preserve-unknown-fields": True}),
]


@dataclasses.dataclass(frozen=True)
class OneOf:
    """Annotation of a string field limited to `names`: the check and the CRD's enum.

    The names come from data (vLLM's catalog), so they are not a Python enum.
    """

    names: tuple[str, ...]
    what: str

    def _check(self, value: str) -> str:
        if value not in self.names:
            raise ValueError(f"{value!r} is not {self.what}; one of: {', '.join(self.names)}")
        return value

    def __get_pydantic_core_schema__(
        self, source: Any, handler: pydantic.GetCoreSchemaHandler
    ) -> core_schema.CoreSchema:
        return core_schema.no_info_after_validator_function(self._check, handler(source))

    def __get_pydantic_json_schema__(
        self, schema: core_schema.CoreSchema, handler: pydantic.GetJsonSchemaHandler
    ) -> dict[str, Any]:
        return {"type": "string", "enum": list(self.names)}
