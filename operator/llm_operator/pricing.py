"""The GPU price table: dollars per GPU-hour by GPU type, loaded from YAML and validated.

The shipped table (`data/gpu_prices.yaml`) holds placeholders; `llm-operator run
--gpu-prices FILE` loads another one with the same shape. `metrics` prices the
GPU-hours each LLMDeployment holds with it. A GPU type is the value of
`spec.resources.gpuType` as the node label `nvidia.com/gpu.product` holds it (a short
name such as `H100-80GB` is resolved through the GPU catalog); deployments that name
none are `unspecified`, priced at the table's `default` like every type it does not
list.
"""

from __future__ import annotations

import importlib.resources
import pathlib

import pydantic
import yaml

from llm_operator.planning import gpus

UNSPECIFIED = "unspecified"
DEFAULT = "default"


class PriceTable(pydantic.BaseModel):
    """Dollars per GPU-hour, by GPU type."""

    model_config = pydantic.ConfigDict(extra="forbid", frozen=True)

    currency: str = pydantic.Field("USD", description="Currency of every price.")
    default: float = pydantic.Field(
        ..., ge=0, description="Price of one GPU-hour of a type the table does not list."
    )
    prices: dict[str, pydantic.NonNegativeFloat] = pydantic.Field(
        default_factory=dict, description="Price of one GPU-hour, by GPU type."
    )

    def price(self, gpu_type: str) -> float:
        """Dollars per GPU-hour of `gpu_type`."""
        return self.prices.get(gpu_type, self.default)

    def items(self) -> list[tuple[str, float]]:
        """Every listed type and its price, then `default`."""
        return [*sorted(self.prices.items()), (DEFAULT, self.default)]


def gpu_type(spec_gpu_type: str | None) -> str:
    """The GPU type label of a deployment whose spec names `spec_gpu_type` (or none): the
    node label value (nvidia.com/gpu.product) the GPU catalog gives a short name such as
    `H100-80GB`, or the value itself."""
    return gpus.node_label(spec_gpu_type) if spec_gpu_type else UNSPECIFIED


def parse(text: str, source: str) -> PriceTable:
    """A price table from YAML text; ValueError naming `source` and the field when invalid."""
    try:
        data = yaml.safe_load(text)
        return PriceTable.model_validate(data)
    except yaml.YAMLError as exc:
        raise ValueError(f"{source}: not YAML: {exc}") from exc
    except pydantic.ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or '(top)'}: {err['msg']}"
            for err in exc.errors()
        )
        raise ValueError(f"{source}: {problems}") from exc


def load(path: pathlib.Path) -> PriceTable:
    """The price table in the YAML file at `path`."""
    return parse(path.read_text(encoding="utf-8"), str(path))


def default_table() -> PriceTable:
    """The table shipped with the operator."""
    text = importlib.resources.files("llm_operator").joinpath("data/gpu_prices.yaml")
    return parse(text.read_text(encoding="utf-8"), "gpu_prices.yaml")
