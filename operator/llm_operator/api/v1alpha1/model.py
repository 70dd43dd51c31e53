"""The model section: where the weights come from and how they are quantized."""

from __future__ import annotations

import enum

import pydantic

from llm_operator.api.v1alpha1 import common


class QuantizationMethod(enum.StrEnum):
    """Weight quantization formats vLLM can load (`--quantization`)."""

    NONE = "none"
    AWQ = "awq"
    AWQ_MARLIN = "awq_marlin"
    GPTQ = "gptq"
    GPTQ_MARLIN = "gptq_marlin"
    FP8 = "fp8"
    BITSANDBYTES = "bitsandbytes"
    COMPRESSED_TENSORS = "compressed-tensors"
    GGUF = "gguf"


class KVCacheDtype(enum.StrEnum):
    """Data type of the KV cache (`--kv-cache-dtype`)."""

    AUTO = "auto"
    FP8 = "fp8"
    FP8_E4M3 = "fp8_e4m3"
    FP8_E5M2 = "fp8_e5m2"


class SecretKeyRef(common.Model):
    """A key in a Secret in the LLMDeployment's namespace."""

    name: str = pydantic.Field(description="Name of the Secret.", min_length=1, max_length=253)
    key: str = pydantic.Field(
        "token", description="Key in the Secret holding the value.", min_length=1
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


class Quantization(common.Model):
    """How the weights and the KV cache are quantized."""

    method: QuantizationMethod = pydantic.Field(
        QuantizationMethod.NONE,
        description="Weight quantization of the checkpoint; none serves it as stored.",
    )
    kv_cache_dtype: KVCacheDtype = pydantic.Field(
        KVCacheDtype.AUTO, description="KV cache data type; fp8 halves KV memory."
    )
