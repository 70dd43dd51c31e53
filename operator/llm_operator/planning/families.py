"""Architecture figures of popular model families, found from a model's URI.

`data/model-families.yaml` gives, per model size, what its published config.json says
(layers, KV heads, head size, hidden size, vocabulary, tied embeddings, context length)
and its parameter count. `find` matches the last path segment of `spec.model.uri`
against each entry's pattern; `parse_parameters` reads counts such as `8B`, `7.6B`,
`500M`, the form `spec.model.parameters` and the table share.
"""

from __future__ import annotations

import functools
import re

import pydantic

from llm_operator import planning
from llm_serving import policy

CATALOG_FILE = "model-families.yaml"
PARAMETERS_PATTERN = r"^[0-9]+(\.[0-9]+)?[MBT]$"
_SCALE = {"M": 1e6, "B": 1e9, "T": 1e12}


def parse_parameters(text: str) -> float:
    """`8B` -> 8e9, `500M` -> 5e8, `1.5T` -> 1.5e12."""
    if not re.match(PARAMETERS_PATTERN, text):
        raise ValueError(f"{text!r} is not a parameter count such as 8B, 7.6B or 500M")
    return float(text[:-1]) * _SCALE[text[-1]]


class Family(policy.Model):
    """One model size of a family, as its config.json describes it."""

    name: str = pydantic.Field(description="Model name, for the plan's table.")
    match: str = pydantic.Field(description="Regular expression for the URI's last segment.")
    parameters: str = pydantic.Field(pattern=PARAMETERS_PATTERN, description="Parameter count.")
    layers: int = pydantic.Field(gt=0, description="num_hidden_layers.")
    kv_heads: int = pydantic.Field(gt=0, description="num_key_value_heads.")
    head_dim: int = pydantic.Field(gt=0, description="Size of one attention head.")
    hidden_size: int = pydantic.Field(gt=0, description="hidden_size.")
    vocab_size: int = pydantic.Field(gt=0, description="vocab_size.")
    tied_embeddings: bool = pydantic.Field(description="tie_word_embeddings.")
    context_length: int = pydantic.Field(gt=0, description="max_position_embeddings.")

    @pydantic.field_validator("match")
    @classmethod
    def _compiles(cls, value: str) -> str:
        re.compile(value)
        return value


class FamilyCatalog(policy.Model):
    """Every known model size."""

    models: list[Family] = pydantic.Field(description="The entries, smallest first per family.")


@functools.cache
def catalog() -> FamilyCatalog:
    """The checked-in catalog, validated once."""
    return FamilyCatalog.model_validate(planning.load_data(CATALOG_FILE))


def model_name(uri: str) -> str:
    """The last path segment of a model URI, without an @revision."""
    rest = uri.partition("://")[2].partition("@")[0]
    return rest.rstrip("/").rsplit("/", 1)[-1]


def matches(uri: str) -> list[Family]:
    """Every entry whose pattern matches the URI (a test keeps this at most one)."""
    name = model_name(uri)
    return [family for family in catalog().models if re.search(family.match, name, re.I)]


def find(uri: str) -> Family | None:
    """The entry for a model URI, if exactly one matches."""
    found = matches(uri)
    return found[0] if len(found) == 1 else None
