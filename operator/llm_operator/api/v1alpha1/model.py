"""The model section: where the weights come from and how they are quantized."""

from __future__ import annotations

from typing import Annotated

import pydantic

from llm_operator.api.v1alpha1 import common
from llm_operator.planning import families, quantization, vllm_flags

_VLLM = vllm_flags.catalog().vllm_version

QuantizationMethodName = Annotated[
    str,
    common.OneOf(tuple(quantization.method_names()), f"a quantization method of vLLM {_VLLM}"),
]
KVCacheDtypeName = Annotated[
    str,
    common.OneOf(tuple(quantization.kv_cache_dtype_names()), f"a KV-cache type of vLLM {_VLLM}"),
]


class SecretKeyRef(common.Model):
    """A key in a Secret in the LLMDeployment's namespace."""

    name: str = pydantic.Field(description="Name of the Secret.", min_length=1, max_length=253)
    key: str = pydantic.Field(
        "token", description="Key in the Secret holding the value.", min_length=1
    )


class Architecture(common.Model):
    """Figures of the model's config.json that size its KV cache and weights."""

    layers: int = pydantic.Field(
        ge=1, le=1024, description="Transformer layers (num_hidden_layers)."
    )
    kv_heads: int = pydantic.Field(
        ge=1, le=1024, description="Key/value heads per layer (num_key_value_heads)."
    )
    head_dim: int = pydantic.Field(ge=1, le=4096, description="Size of one attention head.")
    hidden_size: int | None = pydantic.Field(
        None,
        ge=1,
        description="hidden_size; with vocabSize, lets the planner keep the embeddings and the "
        "LM head at 16 bits as quantization methods do.",
    )
    vocab_size: int | None = pydantic.Field(None, ge=1, description="vocab_size.")
    tied_embeddings: bool = pydantic.Field(
        False, description="tie_word_embeddings: the LM head shares the embedding matrix."
    )
    context_length: int | None = pydantic.Field(
        None,
        ge=16,
        description="max_position_embeddings: the context vLLM uses when engine.maxModelLen is "
        "unset.",
    )


class ModelSource(common.Model):
    """Which weights to serve and how to fetch them."""

    uri: str = pydantic.Field(
        description="Where the weights live: hf://org/name[@revision], s3://bucket/path, "
        "gs://bucket/path or pvc://claim/path.",
        pattern=common.MODEL_URI_PATTERN,
        max_length=512,
    )
    served_name: str | None = pydantic.Field(
        None,
        description="Model name clients send in requests (--served-model-name). Defaults to "
        "the LLMDeployment's name.",
        min_length=1,
        max_length=128,
    )
    trust_remote_code: bool = pydantic.Field(
        False, description="Allow the model repository to run its own Python code."
    )
    token_secret_ref: SecretKeyRef | None = pydantic.Field(
        None,
        description="Secret with the access token for the model hub or bucket; exposed to "
        "vLLM as HF_TOKEN.",
    )
    parameters: str | None = pydantic.Field(
        None,
        pattern=families.PARAMETERS_PATTERN,
        description="Parameter count such as 8B, 70B or 500M, for the memory planner; unset "
        "uses the catalog of popular model families when the URI names one of them.",
    )
    architecture: Architecture | None = pydantic.Field(
        None,
        description="Layers, KV heads and head size for the memory planner; unset uses the "
        "catalog of popular model families when the URI names one of them.",
    )


class Quantization(common.Model):
    """How the weights and the KV cache are quantized (see docs/quantization.md)."""

    method: QuantizationMethodName = pydantic.Field(
        quantization.NONE,
        description="Weight format (--quantization): none serves an unquantized checkpoint as "
        "stored, auto lets vLLM read the checkpoint's quantization_config, any other value is "
        f"passed as --quantization (every method of vLLM {_VLLM}).",
    )
    kv_cache_dtype: KVCacheDtypeName = pydantic.Field(
        quantization.AUTO,
        description="KV cache data type (--kv-cache-dtype); auto is the model's, fp8 halves KV "
        "memory.",
    )
    weight_bits: float | None = pydantic.Field(
        None,
        gt=1,
        le=32,
        description="Bits per weight of the checkpoint, scales included (4-bit GPTQ with group "
        "128 is about 4.16), for the memory planner when the method does not fix the width "
        "(auto, gptq, compressed-tensors, ...); without it the plan is an estimate the "
        "operator does not enforce.",
    )
