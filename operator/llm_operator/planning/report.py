"""The text `llm-operator plan` prints: the memory plan of a spec as a table.

A header says what is planned (the model's figures and where they come from, the
weight and KV-cache widths), then one row per GPU: the spec's GPU type, or every GPU
of the catalog when `resources.gpuType` is unset. Each row gives the parallel layout,
the weights per GPU, vLLM's budget per GPU (memory x gpuMemoryUtilization), what it
reserves for activations and the CUDA runtime, the KV cache left, what one full-length
sequence needs and how many fit. All memory figures are GiB per GPU. Pure: it returns
text.
"""

from __future__ import annotations

from llm_operator.api import v1alpha1
from llm_operator.planning import gpus, memory

_COLUMNS = (
    ("GPU", "<", 38),
    ("TPxPP", ">", 5),
    ("weights", ">", 8),
    ("budget", ">", 7),
    ("reserved", ">", 8),
    ("KV cache", ">", 8),
    ("per seq", ">", 7),
    ("seqs", ">", 7),
    ("fits", "<", 0),
)


def _row(cells: list[str]) -> str:
    parts = [
        f"{cell:{align}{width}}" for cell, (_, align, width) in zip(cells, _COLUMNS, strict=True)
    ]
    return "  " + "  ".join(parts).rstrip()


def _verdict(plan: memory.Plan) -> str:
    if plan.fits:
        verdict = "yes"
    elif plan.kv_cache <= 0:
        verdict = "no: weights"
    else:
        verdict = f"no: {plan.max_tokens} tokens max"
    return verdict if plan.enforced else verdict + " (estimate)"


def _cells(plan: memory.Plan) -> list[str]:
    def gib(value: float | None) -> str:
        return "-" if value is None else f"{value:.2f}"

    sequences = plan.sequences
    return [
        str(plan.gpu),
        f"{plan.tensor_parallel}x{plan.pipeline_parallel}",
        gib(plan.weights),
        gib(plan.budget),
        gib(plan.reserved),
        gib(plan.kv_cache),
        gib(plan.sequence),
        "-" if sequences is None else f"{sequences:.1f}",
        _verdict(plan),
    ]


def _header(spec: v1alpha1.LLMDeploymentSpec, plan: memory.Plan) -> list[str]:
    model = plan.model
    arch = (
        f"{model.layers} layers, {model.kv_heads} KV heads x {model.head_dim}"
        if model.layers is not None
        else "no architecture figures (set spec.model.architecture for the KV cache)"
    )
    context = (
        f"context {plan.max_model_len}"
        + (" (engine.maxModelLen)" if spec.engine.max_model_len else " (the model's)")
        if plan.max_model_len
        else "no context length (set engine.maxModelLen)"
    )
    per_token = (
        f"{plan.kv_bytes_per_token * plan.tensor_parallel * plan.pipeline_parallel / 1024:g} "
        "KiB per token in all"
        if plan.kv_bytes_per_token is not None
        else "per token unknown"
    )
    lines = [
        f"  model     {model.name} from {model.source}: {model.parameters / 1e9:.2f}B parameters; "
        f"{arch}; {context}",
        f"  weights   quantization {plan.method}, dtype {spec.engine.dtype}: "
        f"{plan.weight_bits:g} bits per weight, {plan.weights_total:.2f} GiB in all",
        f"  KV cache  {spec.quantization.kv_cache_dtype}: {plan.kv_bits:g} bits per element, "
        f"{per_token}",
        f"  budget    gpuMemoryUtilization {plan.utilization:g}; reserved per GPU: activations "
        "and the CUDA runtime (docs/quantization.md); figures below are GiB per GPU",
    ]
    lines += [f"  assumed   {text}" for text in plan.assumptions]
    return lines


def render(name: str, spec: v1alpha1.LLMDeploymentSpec) -> tuple[str, bool]:
    """The plan text of one LLMDeployment, and whether the operator would refuse it."""
    out = [f"{name}:"]
    if spec.resources.gpu_type:
        outcomes = [memory.plan_spec(spec)]
    else:
        outcomes = [memory.plan_spec(spec, gpu) for gpu in gpus.catalog().gpus]
    plans = [o.plan for o in outcomes if o.plan is not None]
    if not plans:
        out.append(f"  no plan: {outcomes[0].reason}")
        return "\n".join(out) + "\n", False
    out += _header(spec, plans[0])
    if not spec.resources.gpu_type:
        out.append("  resources.gpuType is not set: every GPU of the catalog")
    if spec.engine.tensor_parallel_size is None:
        out.append(
            f"  tensorParallelSize is not set: the smallest that fits within resources.gpus "
            f"({spec.resources.gpus})"
        )
    out.append("")
    out.append(_row([title for title, _, _ in _COLUMNS]))
    out += [_row(_cells(plan)) for plan in plans]
    notes = sorted({note for plan in plans for note in plan.notes})
    out += [f"  note: {note}" for note in notes]
    refused = bool(spec.resources.gpu_type) and outcomes[0].refused
    if refused and outcomes[0].plan is not None:
        out.append("  the operator refuses this spec (InsufficientGPUMemory):")
        out += [f"    {line}" for line in memory.refusal(spec, outcomes[0].plan)]
    return "\n".join(out) + "\n", refused
