"""Quantization methods, KV-cache and model dtypes: their vLLM flags, widths and GPU needs.

`data/quantization.yaml` gives, for every method vLLM's `--quantization` accepts (plus
`none` and `auto`, which pass no flag), the bits per weight the memory planner uses, and
the bits per element of every `--kv-cache-dtype` and `--dtype` value. The lowest
compute capability a method runs on is vLLM's own figure, from the flags catalog. The
compatibility check refuses what vLLM refuses at start (a method below its minimum
capability, bfloat16 below 8.0) and notes what runs on a slower fallback kernel (FP8
below 8.9 runs weight-only through FP8 Marlin).
"""

from __future__ import annotations

import dataclasses
import functools

import pydantic

from llm_operator import planning
from llm_operator.planning import gpus, vllm_flags
from llm_serving import policy

TABLE_FILE = "quantization.yaml"
NONE = "none"
AUTO = "auto"
NO_FLAG_METHODS = (NONE, AUTO)


class Method(policy.Model):
    """How the planner sees one weight format."""

    bits: float | None = pydantic.Field(
        gt=0, le=32, description="Bits per quantized weight; null: the model dtype's."
    )
    fixed: bool = pydantic.Field(description="Whether the method name fixes the width.")
    fast_from: int | None = pydantic.Field(
        None, description="Compute capability (x10) of the fast kernel path."
    )
    summary: str = pydantic.Field(description="One line for the docs and the plan.")


class Width(policy.Model):
    """Bits per element of a KV-cache or model dtype."""

    bits: float | None = pydantic.Field(gt=0, le=32, description="Bits; null: the model's.")
    min_capability: int | None = pydantic.Field(
        None, description="Lowest compute capability (x10) vLLM accepts it on."
    )
    summary: str = pydantic.Field(description="One line for the docs.")


class Table(policy.Model):
    """The whole table."""

    methods: dict[str, Method] = pydantic.Field(description="Weight formats by name.")
    kv_cache_dtypes: dict[str, Width] = pydantic.Field(description="KV-cache types by name.")
    dtypes: dict[str, Width] = pydantic.Field(description="Model dtypes by name.")

    @pydantic.model_validator(mode="after")
    def _matches_vllm(self) -> Table:
        data = vllm_flags.catalog()
        expected: dict[str, list[str]] = {
            "methods": method_names(),
            "kvCacheDtypes": kv_cache_dtype_names(),
            "dtypes": dtype_names(),
        }
        for key, names in (
            ("methods", list(self.methods)),
            ("kvCacheDtypes", list(self.kv_cache_dtypes)),
            ("dtypes", list(self.dtypes)),
        ):
            missing = sorted(set(expected[key]) - set(names))
            extra = sorted(set(names) - set(expected[key]))
            if missing or extra:
                raise ValueError(
                    f"{key} differ from vLLM {data.vllm_version}: missing {missing}, extra {extra}"
                )
        return self


@functools.cache
def table() -> Table:
    """The checked-in table, validated against the flags catalog once."""
    return Table.model_validate(planning.load_data(TABLE_FILE))


def method_names() -> list[str]:
    """`none`, `auto`, then vLLM's methods in vLLM's order (the API's enum)."""
    return [*NO_FLAG_METHODS, *(m.name for m in vllm_flags.catalog().quantization_methods)]


def kv_cache_dtype_names() -> list[str]:
    """The values of --kv-cache-dtype (the API's enum)."""
    return [str(c) for c in vllm_flags.catalog().argument("kv_cache_dtype").choices or []]


def dtype_names() -> list[str]:
    """The values of --dtype (the API's enum)."""
    return [str(c) for c in vllm_flags.catalog().argument("dtype").choices or []]


def engine_flags(method: str, kv_cache_dtype: str) -> list[str]:
    """The vLLM flags a method and a KV-cache type turn into."""
    args: list[str] = []
    if method not in NO_FLAG_METHODS:
        args += ["--quantization", method]
        known = vllm_flags.catalog().method(method)
        if known is not None and known.deprecated:
            # vLLM refuses a deprecated method unless told it is wanted; the spec says so.
            args.append("--allow-deprecated-quantization")
    if kv_cache_dtype != AUTO:
        args += ["--kv-cache-dtype", kv_cache_dtype]
    return args


def _version(capability: int) -> str:
    return f"{capability // 10}.{capability % 10}"


@dataclasses.dataclass(frozen=True)
class Compatibility:
    """What a GPU cannot run (field path, message) and what it runs slowly."""

    refusals: tuple[tuple[str, str], ...]
    notes: tuple[str, ...]


def compatibility(method: str, dtype: str, gpu: gpus.Gpu) -> Compatibility:
    """Refusals (what vLLM refuses at start on this GPU) and notes (slower fallbacks)."""
    version = vllm_flags.catalog().vllm_version
    refusals: list[tuple[str, str]] = []
    notes: list[str] = []
    have = f"{gpu} has {gpu.compute_capability}"
    known = vllm_flags.catalog().method(method)
    if known is not None and gpu.capability < known.min_capability:
        refusals.append(
            (
                "quantization.method",
                f"{method} needs compute capability {_version(known.min_capability)} or newer "
                f"in vLLM {version}; {have}",
            )
        )
    fast = table().methods[method].fast_from
    if not refusals and fast is not None and gpu.capability < fast:
        notes.append(
            f"{method} on compute capability {gpu.compute_capability} runs weight-only through "
            f"vLLM's FP8 Marlin kernels (native FP8 needs {_version(fast)})"
        )
    needed = table().dtypes[dtype].min_capability
    if needed is not None and gpu.capability < needed:
        refusals.append(
            (
                "engine.dtype",
                f"{dtype} needs compute capability {_version(needed)} or newer in vLLM {version}; "
                f"{have}: use float16",
            )
        )
    return Compatibility(tuple(refusals), tuple(notes))
