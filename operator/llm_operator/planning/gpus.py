"""The GPU catalog: short names, node labels, memory and compute capability of known GPUs.

`data/gpus.yaml` lists each product once, with the short name users write in
`resources.gpuType` (`L4`, `H100-80GB`) and the `nvidia.com/gpu.product` value NVIDIA's
GPU feature discovery sets on nodes (`NVIDIA-L4`, `NVIDIA-H100-80GB-HBM3`). `resolve`
accepts either, in any letter case, and the builders write the product label value
into the node selector. A value the catalog does not know is still accepted when it
has the shape of a product label (a GPU newer than the catalog); the planner then has
no memory figure for it and says so.
"""

from __future__ import annotations

import functools
import re

import pydantic

from llm_operator import planning
from llm_serving import policy

CATALOG_FILE = "gpus.yaml"
GIB_PER_MIB = 1 / 1024
# The shape of nvidia.com/gpu.product values: the device name, spaces as dashes.
PRODUCT_LABEL_PATTERN = r"^(NVIDIA|Tesla|Quadro)-[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$"
_PRODUCT_LABEL = re.compile(PRODUCT_LABEL_PATTERN)


class Gpu(policy.Model):
    """One GPU product."""

    name: str = pydantic.Field(description="Short name accepted in resources.gpuType.")
    product_label: str = pydantic.Field(
        description="nvidia.com/gpu.product value set by GPU feature discovery.",
        pattern=PRODUCT_LABEL_PATTERN,
    )
    memory_mib: int = pydantic.Field(
        alias="memoryMiB", gt=0, description="Total memory in MiB, as nvidia-smi reports it."
    )
    compute_capability: str = pydantic.Field(
        pattern=r"^[0-9]+\.[0-9]$", description="CUDA compute capability, major.minor."
    )
    architecture: str = pydantic.Field(description="NVIDIA architecture name.")
    aliases: list[str] = pydantic.Field(default_factory=list, description="Other short names.")

    @property
    def memory_gib(self) -> float:
        """Total memory in GiB."""
        return self.memory_mib * GIB_PER_MIB

    @property
    def capability(self) -> int:
        """Compute capability times ten, as vLLM compares it (8.9 -> 89)."""
        major, minor = self.compute_capability.split(".")
        return int(major) * 10 + int(minor)

    def __str__(self) -> str:
        return f"{self.name} ({self.product_label})"


class GpuCatalog(policy.Model):
    """Every known GPU."""

    gpus: list[Gpu] = pydantic.Field(description="The products, oldest architecture first.")

    @pydantic.model_validator(mode="after")
    def _unique(self) -> GpuCatalog:
        seen: set[str] = set()
        for gpu in self.gpus:
            for key in (gpu.name, gpu.product_label, *gpu.aliases):
                if key.lower() in seen:
                    raise ValueError(f"{key} names two GPUs")
                seen.add(key.lower())
        return self


@functools.cache
def catalog() -> GpuCatalog:
    """The checked-in catalog, validated once."""
    return GpuCatalog.model_validate(planning.load_data(CATALOG_FILE))


@functools.cache
def _index() -> dict[str, Gpu]:
    index = {}
    for gpu in catalog().gpus:
        for key in (gpu.name, gpu.product_label, *gpu.aliases):
            index[key.lower()] = gpu
    return index


def resolve(value: str) -> Gpu | None:
    """The GPU a short name or product label names, if the catalog knows it."""
    return _index().get(value.lower())


def looks_like_product_label(value: str) -> bool:
    """Whether a value has the shape of an nvidia.com/gpu.product label value."""
    return bool(_PRODUCT_LABEL.match(value))


def node_label(value: str) -> str:
    """The nvidia.com/gpu.product value to select nodes with, for a gpuType value."""
    gpu = resolve(value)
    return gpu.product_label if gpu is not None else value


def short_names() -> list[str]:
    """Every short name, for messages."""
    return [gpu.name for gpu in catalog().gpus]
