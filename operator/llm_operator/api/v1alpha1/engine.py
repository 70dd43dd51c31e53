"""The engine section: the vLLM server's settings."""

from __future__ import annotations

import enum
from typing import Annotated

import pydantic

from llm_operator.api.v1alpha1 import common

# vLLM flags the operator sets itself; `engine.extraArgs` may not repeat them.
RESERVED_ENGINE_FLAGS = (
    "--host",
    "--port",
    "--model",
    "--served-model-name",
    "--tensor-parallel-size",
    "--quantization",
    "--kv-cache-dtype",
    "--trust-remote-code",
)


class Dtype(enum.StrEnum):
    """Activation and weight data type (`--dtype`)."""

    AUTO = "auto"
    HALF = "half"
    FLOAT16 = "float16"
    BFLOAT16 = "bfloat16"
    FLOAT32 = "float32"


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
        json_schema_extra={
            "x-kubernetes-validations": [
                {
                    "rule": "!has(self.extraArgs) || self.extraArgs.all(a, "
                    + " && ".join(
                        f"a != '{flag}' && !a.startsWith('{flag}=')"
                        for flag in RESERVED_ENGINE_FLAGS
                    )
                    + ")",
                    "message": "extraArgs must not set flags the operator owns: "
                    + ", ".join(RESERVED_ENGINE_FLAGS),
                    "fieldPath": ".extraArgs",
                }
            ]
        }
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
    tensor_parallel_size: int = pydantic.Field(
        1,
        ge=1,
        le=64,
        description="GPUs one model copy is sharded over (--tensor-parallel-size); must "
        "divide resources.gpus.",
    )
    enable_prefix_caching: bool | None = pydantic.Field(
        None, description="Reuse KV cache across shared prompt prefixes; unset keeps vLLM's."
    )
    dtype: Dtype = pydantic.Field(Dtype.AUTO, description="Model data type (--dtype).")
    extra_args: list[Annotated[str, pydantic.Field(max_length=1024)]] = pydantic.Field(
        default_factory=list, max_length=128, description="More vLLM flags, passed as they are."
    )
    env: list[EnvVar] = pydantic.Field(
        default_factory=list,
        max_length=128,
        description="Environment variables for the vLLM container.",
    )

    @pydantic.field_validator("extra_args")
    @classmethod
    def _no_reserved_flags(cls, args: list[str]) -> list[str]:
        for arg in args:
            for flag in RESERVED_ENGINE_FLAGS:
                if arg == flag or arg.startswith(flag + "="):
                    raise ValueError(
                        "extraArgs must not set flags the operator owns: "
                        + ", ".join(RESERVED_ENGINE_FLAGS)
                    )
        return args
