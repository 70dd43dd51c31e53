"""The GPU memory planner: will the model, its KV cache and one full-length sequence fit?

From the parameter count and architecture (`spec.model.parameters` and
`spec.model.architecture`, or the family catalog), the bits per weight of the
quantization method, the KV-cache type, `maxModelLen`, the tensor- and pipeline-parallel
sizes, the GPU (`resources.gpuType` through the GPU catalog) and `gpuMemoryUtilization`,
it computes what vLLM computes at start: the budget per GPU (total memory x
utilization), the weights per GPU, what vLLM keeps for activations and the CUDA runtime
(`data/memory.yaml`), the KV cache left per GPU, the KV bytes per token
(2 x layers x KV heads x head size x bytes per element, split over the GPUs) and per
full-length sequence, and how many full-length sequences fit. vLLM refuses to start
when not even one does; the reconciler refuses such a spec first (`InsufficientGPUMemory`),
unless the plan rests on an assumption (a width the checkpoint decides, a flag that
changes memory use), in which case the plan is only shown. Pure: no I/O beyond the
packaged tables.
"""

from __future__ import annotations

import dataclasses
import functools
import math

import pydantic

from llm_operator import planning
from llm_operator.api import v1alpha1
from llm_operator.planning import engine_args, families, gpus, quantization
from llm_serving import policy

RESERVE_FILE = "memory.yaml"
GIB = 1024**3


class Reserve(policy.Model):
    """Memory vLLM keeps per GPU besides weights and KV cache, and the TP sizes to try."""

    non_torch_gib: float = pydantic.Field(alias="nonTorchGiB", ge=0, description="One GPU.")
    non_torch_parallel_gib: float = pydantic.Field(
        alias="nonTorchParallelGiB", ge=0, description="Per GPU with more than one."
    )
    activation_gib: float = pydantic.Field(alias="activationGiB", ge=0, description="Peak.")
    tensor_parallel_sizes: list[int] = pydantic.Field(description="Sizes tried, ascending.")


@functools.cache
def reserve() -> Reserve:
    """The checked-in reserve figures."""
    return Reserve.model_validate(planning.load_data(RESERVE_FILE))


@dataclasses.dataclass(frozen=True)
class ModelFigures:
    """What the planner knows about the model."""

    name: str
    source: str
    parameters: float
    layers: int | None = None
    kv_heads: int | None = None
    head_dim: int | None = None
    hidden_size: int | None = None
    vocab_size: int | None = None
    tied_embeddings: bool = False
    context_length: int | None = None

    @property
    def embedding_parameters(self) -> float:
        """Embedding and LM head parameters, which quantization methods leave at 16 bits."""
        if self.hidden_size is None or self.vocab_size is None:
            return 0.0
        return float(self.hidden_size * self.vocab_size * (1 if self.tied_embeddings else 2))


def model_figures(spec: v1alpha1.LLMDeploymentSpec) -> ModelFigures | None:
    """The spec's figures over the family catalog's; None without a parameter count."""
    family = families.find(spec.model.uri)
    arch = spec.model.architecture
    if spec.model.parameters is not None:
        parameters = families.parse_parameters(spec.model.parameters)
        name, source = families.model_name(spec.model.uri), "spec.model.parameters"
    elif family is not None:
        parameters = families.parse_parameters(family.parameters)
        name, source = family.name, "the model family catalog"
    else:
        return None
    # The spec's architecture, else the catalog's; both share the figures' field names.
    figures = arch if arch is not None else family
    if figures is None:
        return ModelFigures(name=name, source=source, parameters=parameters)
    return ModelFigures(
        name=name,
        source=source if arch is None else source + " and spec.model.architecture",
        parameters=parameters,
        layers=figures.layers,
        kv_heads=figures.kv_heads,
        head_dim=figures.head_dim,
        hidden_size=figures.hidden_size,
        vocab_size=figures.vocab_size,
        tied_embeddings=figures.tied_embeddings,
        context_length=figures.context_length,
    )


@dataclasses.dataclass(frozen=True)
class Plan:
    """One model on one GPU type at one parallel layout. Memory figures are GiB per GPU."""

    model: ModelFigures
    gpu: gpus.Gpu
    method: str
    weight_bits: float
    dtype_bits: float
    kv_bits: float
    tensor_parallel: int
    pipeline_parallel: int
    utilization: float
    max_model_len: int | None
    weights_total: float
    weights: float
    budget: float
    reserved: float
    kv_bytes_per_token: float | None
    assumptions: tuple[str, ...]
    notes: tuple[str, ...]

    @property
    def gpus(self) -> int:
        """GPUs per replica."""
        return self.tensor_parallel * self.pipeline_parallel

    @property
    def kv_cache(self) -> float:
        """GiB per GPU left for the KV cache (negative: the weights do not fit)."""
        return self.budget - self.weights - self.reserved

    @property
    def sequence(self) -> float | None:
        """GiB of KV cache per GPU that one full-length sequence needs."""
        if self.kv_bytes_per_token is None or self.max_model_len is None:
            return None
        return self.kv_bytes_per_token * self.max_model_len / GIB

    @property
    def sequences(self) -> float | None:
        """How many full-length sequences the KV cache holds."""
        if self.sequence is None:
            return None
        return max(self.kv_cache, 0.0) / self.sequence

    @property
    def max_tokens(self) -> int | None:
        """Tokens the KV cache holds: the longest maxModelLen that fits."""
        if self.kv_bytes_per_token is None:
            return None
        return max(int(self.kv_cache * GIB / self.kv_bytes_per_token), 0)

    @property
    def fits(self) -> bool:
        """Weights fit and, where it can be computed, one full-length sequence too."""
        if self.kv_cache <= 0:
            return False
        return self.sequences is None or self.sequences >= 1

    @property
    def enforced(self) -> bool:
        """Whether the operator may refuse a spec on this plan (no assumption in it)."""
        return not self.assumptions


def _weight_bits(spec: v1alpha1.LLMDeploymentSpec, dtype_bits: float) -> tuple[float, list[str]]:
    method = spec.quantization.method
    entry = quantization.table().methods[method]
    if spec.quantization.weight_bits is not None:
        return spec.quantization.weight_bits, []
    if entry.bits is None and entry.fixed:
        return dtype_bits, []
    bits = entry.bits if entry.bits is not None else dtype_bits
    if entry.fixed:
        return bits, []
    return bits, [
        f"{method}: the checkpoint decides the width; {bits:g} bits per weight assumed "
        "(set spec.quantization.weightBits)"
    ]


def _kv_per_token(model: ModelFigures, kv_bits: float, tp: int, pp: int) -> float | None:
    if model.layers is None or model.kv_heads is None or model.head_dim is None:
        return None
    # KV heads are split over tensor-parallel ranks (replicated when there are fewer
    # heads than ranks), layers over pipeline stages.
    heads = math.ceil(model.kv_heads / tp)
    layers = math.ceil(model.layers / pp)
    return 2 * layers * heads * model.head_dim * kv_bits / 8


def plan(
    spec: v1alpha1.LLMDeploymentSpec,
    model: ModelFigures,
    gpu: gpus.Gpu,
    tensor_parallel: int,
    pipeline_parallel: int,
) -> Plan:
    """The plan of a spec's model on a GPU at a given layout."""
    dtype_bits = quantization.table().dtypes[spec.engine.dtype].bits or 16.0
    weight_bits, assumptions = _weight_bits(spec, dtype_bits)
    kv_bits = quantization.table().kv_cache_dtypes[spec.quantization.kv_cache_dtype].bits
    kv_bits = kv_bits or dtype_bits
    embeddings = model.embedding_parameters if weight_bits < dtype_bits else 0.0
    weights_total = (
        (model.parameters - embeddings) * weight_bits / 8 + embeddings * dtype_bits / 8
    ) / GIB
    layout = tensor_parallel * pipeline_parallel
    figures = reserve()
    reserved = figures.activation_gib + (
        figures.non_torch_gib if layout == 1 else figures.non_torch_parallel_gib
    )
    unplanned = engine_args.check(spec.engine.extra_args, spec.engine.image).unplanned()
    assumptions += [f"extraArgs {flag}" for flag in unplanned]
    notes = quantization.compatibility(spec.quantization.method, spec.engine.dtype, gpu).notes
    return Plan(
        model=model,
        gpu=gpu,
        method=spec.quantization.method,
        weight_bits=weight_bits,
        dtype_bits=dtype_bits,
        kv_bits=kv_bits,
        tensor_parallel=tensor_parallel,
        pipeline_parallel=pipeline_parallel,
        utilization=spec.engine.gpu_memory_utilization,
        max_model_len=spec.engine.max_model_len or model.context_length,
        weights_total=weights_total,
        weights=weights_total / layout,
        budget=gpu.memory_gib * spec.engine.gpu_memory_utilization,
        reserved=reserved,
        kv_bytes_per_token=_kv_per_token(model, kv_bits, tensor_parallel, pipeline_parallel),
        assumptions=tuple(assumptions),
        notes=notes,
    )


def _candidates(model: ModelFigures, limit: int) -> list[int]:
    sizes = [t for t in reserve().tensor_parallel_sizes if t <= limit]
    if model.kv_heads is not None:
        sizes = [t for t in sizes if model.kv_heads % t == 0 or t % model.kv_heads == 0]
    return sizes or [1]


@dataclasses.dataclass(frozen=True)
class Outcome:
    """The plan the operator acts on, or why there is none."""

    plan: Plan | None
    reason: str
    chosen: bool = False

    @property
    def refused(self) -> bool:
        """Whether the operator refuses the spec: it does not fit and nothing was assumed."""
        return self.plan is not None and self.plan.enforced and not self.plan.fits


def plan_spec(spec: v1alpha1.LLMDeploymentSpec, gpu: gpus.Gpu | None = None) -> Outcome:
    """The plan for a spec on its GPU type (or on `gpu`), choosing TP when it is unset."""
    gpu = gpu or gpus.resolve(spec.resources.gpu_type or "")
    if gpu is None:
        what = spec.resources.gpu_type
        return Outcome(
            None,
            f"{what} is not in the GPU catalog" if what else "resources.gpuType is not set",
        )
    model = model_figures(spec)
    if model is None:
        return Outcome(
            None,
            f"{families.model_name(spec.model.uri)} is not in the model family catalog: set "
            "spec.model.parameters (and spec.model.architecture for the KV cache)",
        )
    pp = spec.engine.pipeline_parallel_size
    if spec.engine.tensor_parallel_size is not None:
        return Outcome(plan(spec, model, gpu, spec.engine.tensor_parallel_size, pp), "")
    limit = spec.resources.gpus // pp
    tried = [plan(spec, model, gpu, tp, pp) for tp in _candidates(model, limit)]
    if not tried[0].enforced:
        # An estimate does not get to shrink the GPUs a replica asked for.
        return Outcome(plan(spec, model, gpu, limit, pp), "")
    fitting = next((p for p in tried if p.fits), tried[-1])
    return Outcome(fitting, "", chosen=True)


def parallelism(spec: v1alpha1.LLMDeploymentSpec) -> tuple[int, int]:
    """The (tensor, pipeline) parallel sizes a replica runs with."""
    pp = spec.engine.pipeline_parallel_size
    if spec.engine.tensor_parallel_size is not None:
        return spec.engine.tensor_parallel_size, pp
    outcome = plan_spec(spec)
    if outcome.plan is not None:
        return outcome.plan.tensor_parallel, pp
    return spec.resources.gpus // pp, pp


def _smallest_fit(spec: v1alpha1.LLMDeploymentSpec, failed: Plan) -> str:
    node = 8
    for tp in _candidates(failed.model, node):
        if tp <= failed.tensor_parallel:
            continue
        candidate = plan(spec, failed.model, failed.gpu, tp, failed.pipeline_parallel)
        if candidate.fits:
            return (
                f"it fits with tensorParallelSize {tp} (resources.gpus "
                f"{tp * failed.pipeline_parallel}): {candidate.sequences or 0:.1f} full-length "
                "sequences"
                if candidate.sequences is not None
                else f"it fits with tensorParallelSize {tp}"
            )
    return f"it does not fit on up to {node} {failed.gpu.name} GPUs per pipeline stage either"


def refusal(spec: v1alpha1.LLMDeploymentSpec, failed: Plan) -> list[str]:
    """Lines saying why a plan does not fit, with its numbers and what would."""
    p = failed
    layout = f"tensorParallelSize {p.tensor_parallel} x pipelineParallelSize {p.pipeline_parallel}"
    budget = (
        f"each {p.gpu} gives vLLM {p.budget:.1f} GiB ({p.gpu.memory_gib:.1f} GiB x "
        f"gpuMemoryUtilization {p.utilization:g}), {p.reserved:.1f} GiB of it for activations "
        "and the CUDA runtime"
    )
    if p.kv_cache <= 0:
        return [
            f"spec.resources.gpus: {p.model.name} at {p.weight_bits:g} bits per weight needs "
            f"{p.weights_total:.1f} GiB of weights, {p.weights:.1f} GiB per GPU at {layout}; "
            f"{budget}: short by {-p.kv_cache:.1f} GiB per GPU; {_smallest_fit(spec, p)}"
        ]
    return [
        f"spec.engine.maxModelLen: one full {p.max_model_len}-token sequence needs "
        f"{p.sequence or 0:.2f} GiB of KV cache per GPU ({(p.kv_bytes_per_token or 0) / 1024:g} "
        f"KiB per token at {layout}) but only {p.kv_cache:.2f} GiB is left after "
        f"{p.weights:.1f} GiB of weights per GPU; {budget}: at most {p.max_tokens} tokens fit; "
        f"lower engine.maxModelLen to {p.max_tokens} or less, use a smaller kvCacheDtype such "
        f"as fp8, or more GPUs ({_smallest_fit(spec, p)})"
    ]
