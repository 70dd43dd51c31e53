"""The engine section: the vLLM server's settings."""

from __future__ import annotations

from typing import Annotated

import pydantic

from llm_operator.api.v1alpha1 import common
from llm_operator.planning import engine_args, quantization, vllm_flags
from llm_serving import policy

_VLLM = vllm_flags.catalog().vllm_version

DtypeName = Annotated[
    str, common.OneOf(tuple(quantization.dtype_names()), f"a --dtype of vLLM {_VLLM}")
]


class EnvVar(common.Model):
    """An environment variable for the vLLM container."""

    name: str = pydantic.Field(description="Variable name.", min_length=1)
    value: str | None = pydantic.Field(None, description="Literal value.")
    value_from: common.FreeForm | None = pydantic.Field(
        None, description="A Kubernetes EnvVarSource (secretKeyRef, configMapKeyRef, fieldRef)."
    )


class Engine(common.Model):
    """vLLM engine settings."""

    model_config = pydantic.ConfigDict(
        json_schema_extra={"x-kubernetes-validations": [engine_args.cel_rule()]}
    )

    image: str = pydantic.Field(
        "vllm/vllm-openai:v0.32.0",
        description="vLLM OpenAI server image.",
        min_length=1,
    )
    image_pull_policy: str = pydantic.Field(
        "IfNotPresent",
        description="Always, IfNotPresent or Never.",
        pattern=r"^(Always|IfNotPresent|Never)$",
    )
    max_model_len: int | None = pydantic.Field(
        None, ge=16, description="Context length (--max-model-len); unset uses the model's."
    )
    gpu_memory_utilization: float = pydantic.Field(
        0.9,
        gt=0.0,
        le=1.0,
        description="Fraction of each GPU's memory vLLM may use (--gpu-memory-utilization).",
    )
    max_num_seqs: int | None = pydantic.Field(
        None, ge=1, description="Sequences batched at once (--max-num-seqs)."
    )
    tensor_parallel_size: int | None = pydantic.Field(
        None,
        ge=1,
        le=64,
        description="GPUs each layer is sharded over (--tensor-parallel-size). Set, "
        "resources.gpus must equal tensorParallelSize x pipelineParallelSize. Unset, the "
        "planner picks the smallest size whose plan fits within resources.gpus (see "
        "docs/quantization.md), or uses all of resources.gpus when it cannot plan.",
    )
    pipeline_parallel_size: int = pydantic.Field(
        1,
        ge=1,
        le=64,
        description="Stages the layers are split into (--pipeline-parallel-size), each on "
        "tensorParallelSize GPUs of the same Pod.",
    )
    enable_prefix_caching: bool | None = pydantic.Field(
        None, description="Reuse KV cache across shared prompt prefixes; unset keeps vLLM's."
    )
    dtype: DtypeName = pydantic.Field(
        "auto", description="Model data type (--dtype); auto follows the checkpoint."
    )
    extra_args: list[Annotated[str, pydantic.Field(max_length=1024)]] = pydantic.Field(
        default_factory=list,
        max_length=128,
        description="More vLLM flags, passed as they are after being checked against vLLM's "
        "own parser (every spelling of a flag, its values and choices; see "
        "docs/quantization.md): flags that typed fields own, or that would break the Pod, are "
        "refused.",
    )
    env: list[EnvVar] = pydantic.Field(
        default_factory=list,
        max_length=128,
        description="Environment variables for the vLLM container.",
    )

    @pydantic.model_validator(mode="after")
    def _extra_args(self) -> Engine:
        problems = engine_args.check(self.extra_args, self.image).problems
        if problems:
            raise policy.FieldError("extraArgs", "; ".join(problems))
        return self
