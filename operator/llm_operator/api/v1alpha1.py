"""The `LLMDeployment` API, version v1alpha1: pydantic models for spec and status.

These models are the single source of truth for the resource. The CRD's OpenAPI
schema (with its defaults, enums and CEL rules) is generated from them by
`llm_operator.api.crd`, the operator parses every object with
`LLMDeploymentSpec.model_validate`, and `llm-operator render` validates files the
same way, so the API server, the operator and the CLI refuse the same specs.
Cross-field rules are written twice on purpose, once as a CEL rule for the API
server and once as a pydantic validator, and a unit test checks that both agree on
the same corpus of bad specs.
"""

from __future__ import annotations

import enum
import re
from typing import Annotated, Any

import pydantic

from llm_serving import policy

API_GROUP = "llmoperator.io"
API_VERSION = "v1alpha1"
KIND = "LLMDeployment"
PLURAL = "llmdeployments"
SINGULAR = "llmdeployment"
SHORT_NAMES = ("llmd",)

Model = policy.Model

QUANTITY_PATTERN = r"^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$"
_QUANTITY_RE = re.compile(QUANTITY_PATTERN)
_INT_OR_PERCENT_RE = re.compile(r"^[0-9]+%?$")
MODEL_URI_PATTERN = r"^(hf://[A-Za-z0-9._-]+/[A-Za-z0-9._-]+(@[A-Za-z0-9._/-]+)?|(s3|gs)://[a-z0-9.-]+(/.*)?|pvc://[a-z0-9]([-a-z0-9]*[a-z0-9])?(/.*)?)$"
_MODEL_URI_RE = re.compile(MODEL_URI_PATTERN)
DNS_LABEL_PATTERN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"

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


def _quantity(value: Any) -> str:
    text = str(value)
    if isinstance(value, bool) or not _QUANTITY_RE.match(text):
        raise ValueError(f"{value!r} is not a Kubernetes quantity such as 4, 500m, 16Gi")
    return text


def _int_or_percent(value: Any) -> int | str:
    if isinstance(value, bool):
        raise ValueError("expected an integer or a percentage such as 25%")
    if isinstance(value, int):
        if value < 0:
            raise ValueError("must not be negative")
        return value
    if isinstance(value, str) and _INT_OR_PERCENT_RE.match(value):
        return value
    raise ValueError(f"{value!r} is not an integer or a percentage such as 25%")


Quantity = Annotated[
    str,
    pydantic.BeforeValidator(_quantity),
    pydantic.WithJsonSchema(
        {
            "x-kubernetes-int-or-string": True,
            "anyOf": [{"type": "integer"}, {"type": "string"}],
            "pattern": QUANTITY_PATTERN,
        }
    ),
]

IntOrPercent = Annotated[
    int | str,
    pydantic.BeforeValidator(_int_or_percent),
    pydantic.WithJsonSchema(
        {"x-kubernetes-int-or-string": True, "anyOf": [{"type": "integer"}, {"type": "string"}]}
    ),
]

# Free-form Kubernetes objects (affinity, env valueFrom) are passed through as they are;
# the API server validates them when the Deployment is applied.
FreeForm = Annotated[
    dict[str, Any],
    pydantic.WithJsonSchema({"type": "object", "x-kubernetes-preserve-unknown-fields": True}),
]


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


class Dtype(enum.StrEnum):
    """Activation and weight data type (`--dtype`)."""

    AUTO = "auto"
    HALF = "half"
    FLOAT16 = "float16"
    BFLOAT16 = "bfloat16"
    FLOAT32 = "float32"


class AutoscalingProvider(enum.StrEnum):
    """Who writes the replica count when autoscaling is on."""

    BUILTIN = "builtin"
    KEDA = "keda"
    HPA = "hpa"


class SecretKeyRef(Model):
    """A key in a Secret in the LLMDeployment's namespace."""

    name: str = pydantic.Field(description="Name of the Secret.", min_length=1, max_length=253)
    key: str = pydantic.Field(
        "token", description="Key in the Secret holding the value.", min_length=1
    )


class ModelSource(Model):
    """Which weights to serve and how to fetch them."""

    uri: str = pydantic.Field(
        description="Where the weights live: hf://org/name[@revision], s3://bucket/path, "
        "gs://bucket/path or pvc://claim/path.",
        pattern=MODEL_URI_PATTERN,
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


class Quantization(Model):
    """How the weights and the KV cache are quantized."""

    method: QuantizationMethod = pydantic.Field(
        QuantizationMethod.NONE,
        description="Weight quantization of the checkpoint; none serves it as stored.",
    )
    kv_cache_dtype: KVCacheDtype = pydantic.Field(
        KVCacheDtype.AUTO, description="KV cache data type; fp8 halves KV memory."
    )


class EnvVar(Model):
    """An environment variable for the vLLM container."""

    name: str = pydantic.Field(description="Variable name.", min_length=1)
    value: str | None = pydantic.Field(None, description="Literal value.")
    value_from: FreeForm | None = pydantic.Field(
        None, description="A Kubernetes EnvVarSource (secretKeyRef, configMapKeyRef, fieldRef)."
    )


class Engine(Model):
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


class Resources(Model):
    """Compute for each replica."""

    gpus: int = pydantic.Field(1, ge=1, le=64, description="GPUs per replica (nvidia.com/gpu).")
    gpu_type: str | None = pydantic.Field(
        None,
        description="GPU product to require, matched against the node label "
        "nvidia.com/gpu.product (e.g. NVIDIA-H100-80GB-HBM3).",
        min_length=1,
    )
    gpu_resource_name: str = pydantic.Field(
        "nvidia.com/gpu", description="Extended resource name of the GPU device plugin."
    )
    cpu: Quantity = pydantic.Field("4", description="CPU request and limit per replica.")
    memory: Quantity = pydantic.Field("32Gi", description="Memory request and limit per replica.")
    shm_size: Quantity = pydantic.Field(
        "8Gi", description="Size of /dev/shm (memory-backed), used by tensor parallelism."
    )


class Toleration(Model):
    """A Kubernetes toleration."""

    key: str | None = pydantic.Field(None, description="Taint key; empty matches all keys.")
    operator: str | None = pydantic.Field(
        None, description="Exists or Equal.", pattern=r"^(Exists|Equal)$"
    )
    value: str | None = pydantic.Field(None, description="Taint value for Equal.")
    effect: str | None = pydantic.Field(
        None,
        description="NoSchedule, PreferNoSchedule or NoExecute; empty matches all.",
        pattern=r"^(NoSchedule|PreferNoSchedule|NoExecute)$",
    )
    toleration_seconds: int | None = pydantic.Field(
        None, description="How long a NoExecute taint is tolerated."
    )


def _default_tolerations() -> list[Toleration]:
    return [
        Toleration.model_validate(
            {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}
        )
    ]


class Scheduling(Model):
    """Where replicas may run."""

    node_selector: dict[str, str] = pydantic.Field(
        default_factory=dict, description="Node labels every replica requires."
    )
    tolerations: list[Toleration] = pydantic.Field(
        default_factory=_default_tolerations,
        description="Tolerations; by default the nvidia.com/gpu NoSchedule taint is tolerated.",
    )
    affinity: FreeForm | None = pydantic.Field(
        None, description="A Kubernetes Affinity object, passed to the Pod as it is."
    )
    priority_class_name: str | None = pydantic.Field(None, description="PriorityClass of the Pods.")
    runtime_class_name: str | None = pydantic.Field(
        None, description="RuntimeClass of the Pods (e.g. nvidia)."
    )


class Autoscaling(Model):
    """Replica count driven by the engine's request queue."""

    model_config = pydantic.ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                {
                    "rule": "self.minReplicas <= self.maxReplicas",
                    "message": "minReplicas must be less than or equal to maxReplicas",
                    "fieldPath": ".minReplicas",
                },
                {
                    "rule": "self.minReplicas >= 1 || self.provider == 'keda'",
                    "message": "minReplicas 0 (scale to zero) needs provider keda",
                    "fieldPath": ".minReplicas",
                },
                {
                    "rule": "self.provider == 'builtin' || size(self.prometheusUrl) > 0",
                    "message": "prometheusUrl is required for providers keda and hpa",
                    "fieldPath": ".prometheusUrl",
                },
            ]
        }
    )

    enabled: bool = pydantic.Field(
        False, description="Scale on queue depth instead of using spec.replicas."
    )
    provider: AutoscalingProvider = pydantic.Field(
        AutoscalingProvider.BUILTIN,
        description="builtin (the operator's loop), keda (a ScaledObject) or hpa "
        "(autoscaling/v2 on an external metric).",
    )
    min_replicas: int = pydantic.Field(1, ge=0, le=1000, description="Fewest replicas.")
    max_replicas: int = pydantic.Field(4, ge=1, le=1000, description="Most replicas.")
    target_queue_depth: float = pydantic.Field(
        4.0,
        gt=0,
        description="Waiting requests per replica to aim for (vllm:num_requests_waiting).",
    )
    include_running: bool = pydantic.Field(
        False, description="Count running requests too (waiting + running)."
    )
    scale_up_stabilization_seconds: int = pydantic.Field(
        0, ge=0, le=3600, description="Window over which scale-up takes the lowest proposal."
    )
    scale_down_stabilization_seconds: int = pydantic.Field(
        300, ge=0, le=3600, description="Window over which scale-down takes the highest proposal."
    )
    polling_interval_seconds: int = pydantic.Field(
        15, ge=1, le=600, description="How often the queue depth is read."
    )
    prometheus_url: str = pydantic.Field(
        "",
        description="Prometheus base URL for keda and hpa (e.g. "
        "http://prometheus.monitoring.svc:9090); builtin reads the pods directly.",
    )

    @pydantic.model_validator(mode="after")
    def _cross_field(self) -> Autoscaling:
        if self.min_replicas > self.max_replicas:
            raise policy.FieldError("minReplicas", "must be less than or equal to maxReplicas")
        if self.min_replicas < 1 and self.provider is not AutoscalingProvider.KEDA:
            raise policy.FieldError("minReplicas", "0 (scale to zero) needs provider keda")
        if self.provider is not AutoscalingProvider.BUILTIN and not self.prometheus_url:
            raise policy.FieldError("prometheusUrl", "is required for providers keda and hpa")
        return self


class GatewaySettings(Model):
    """The guardrail gateway sidecar container (used when guardrails.enabled is true)."""

    image: str | None = pydantic.Field(
        None, description="Gateway image; defaults to the one the operator was installed with."
    )
    cpu: Quantity = pydantic.Field("1", description="CPU request and limit of the sidecar.")
    memory: Quantity = pydantic.Field("1Gi", description="Memory request and limit of the sidecar.")
    log_level: str = pydantic.Field(
        "info",
        description="debug, info, warning or error.",
        pattern=r"^(debug|info|warning|error)$",
    )


class ModelCache(Model):
    """A persistent volume that keeps downloaded weights across restarts."""

    enabled: bool = pydantic.Field(False, description="Mount a model cache volume.")
    existing_claim: str | None = pydantic.Field(
        None,
        description="Use this PersistentVolumeClaim instead of creating one.",
        pattern=DNS_LABEL_PATTERN,
    )
    size: Quantity = pydantic.Field("100Gi", description="Size of the claim the operator creates.")
    storage_class_name: str | None = pydantic.Field(
        None, description="StorageClass of the created claim; unset uses the cluster default."
    )
    access_mode: str = pydantic.Field(
        "ReadWriteOnce",
        description="ReadWriteOnce, ReadWriteMany or ReadOnlyMany; more than one replica on "
        "several nodes needs ReadWriteMany.",
        pattern=r"^(ReadWriteOnce|ReadWriteMany|ReadOnlyMany|ReadWriteOncePod)$",
    )


class Rollout(Model):
    """How a changed spec replaces running replicas."""

    max_surge: IntOrPercent = pydantic.Field(
        1, description="Extra replicas during a rollout (needs spare GPUs)."
    )
    max_unavailable: IntOrPercent = pydantic.Field(
        0, description="Replicas that may be down during a rollout."
    )
    progress_deadline_seconds: int = pydantic.Field(
        1800,
        ge=60,
        description="How long a rollout may take before it is reported as stuck; model "
        "loading can take many minutes.",
    )


class Disruption(Model):
    """The PodDisruptionBudget for voluntary evictions (node drains)."""

    model_config = pydantic.ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                {
                    "rule": "!(has(self.minAvailable) && has(self.maxUnavailable))",
                    "message": "set at most one of minAvailable and maxUnavailable",
                    "fieldPath": ".minAvailable",
                }
            ]
        }
    )

    enabled: bool = pydantic.Field(True, description="Create a PodDisruptionBudget.")
    min_available: IntOrPercent | None = pydantic.Field(
        None, description="Replicas that must stay up during a drain."
    )
    max_unavailable: IntOrPercent | None = pydantic.Field(
        None, description="Replicas that may be evicted at once; 1 when neither field is set."
    )

    @pydantic.model_validator(mode="after")
    def _one_of(self) -> Disruption:
        if self.min_available is not None and self.max_unavailable is not None:
            raise policy.FieldError(
                "minAvailable", "set at most one of minAvailable and maxUnavailable"
            )
        return self


class Observability(Model):
    """Metrics, monitors and alerts."""

    pod_monitor: bool = pydantic.Field(
        False,
        description="Create a Prometheus Operator PodMonitor for the gateway, engine and "
        "its metrics.",
    )
    service_monitor: bool = pydantic.Field(
        False, description="Create a Prometheus Operator ServiceMonitor for the Service."
    )
    prometheus_rule: bool = pydantic.Field(
        False, description="Create a PrometheusRule with this deployment's alerts."
    )
    scrape_annotations: bool = pydantic.Field(
        True, description="Annotate Pods with prometheus.io/scrape, port and path."
    )


class LLMDeploymentSpec(Model):
    """Desired state of an LLMDeployment."""

    model_config = pydantic.ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                {
                    "rule": "self.resources.gpus % self.engine.tensorParallelSize == 0",
                    "message": "engine.tensorParallelSize must divide resources.gpus",
                    "fieldPath": ".engine.tensorParallelSize",
                },
            ]
        }
    )

    model: ModelSource = pydantic.Field(description="The model to serve.")
    quantization: Quantization = pydantic.Field(
        default_factory=Quantization, description="Quantization of weights and KV cache."
    )
    engine: Engine = pydantic.Field(default_factory=Engine, description="vLLM engine settings.")
    resources: Resources = pydantic.Field(
        default_factory=Resources, description="GPUs, CPU and memory per replica."
    )
    scheduling: Scheduling = pydantic.Field(
        default_factory=Scheduling, description="Node placement."
    )
    replicas: int = pydantic.Field(
        1,
        ge=0,
        le=1000,
        description="Replica count when autoscaling is off (also set by kubectl scale).",
    )
    autoscaling: Autoscaling = pydantic.Field(
        default_factory=Autoscaling, description="Queue-depth autoscaling."
    )
    guardrails: policy.GuardrailPolicy = pydantic.Field(
        default_factory=policy.GuardrailPolicy,
        description="Policy of the guardrail gateway sidecar (the same document the gateway "
        "loads).",
    )
    gateway: GatewaySettings = pydantic.Field(
        default_factory=GatewaySettings, description="Gateway sidecar container settings."
    )
    model_cache: ModelCache = pydantic.Field(
        default_factory=ModelCache, description="Persistent cache for downloaded weights."
    )
    rollout: Rollout = pydantic.Field(default_factory=Rollout, description="Rolling updates.")
    disruption: Disruption = pydantic.Field(
        default_factory=Disruption, description="PodDisruptionBudget."
    )
    observability: Observability = pydantic.Field(
        default_factory=Observability, description="Monitoring objects."
    )

    @pydantic.model_validator(mode="after")
    def _cross_field(self) -> LLMDeploymentSpec:
        if self.resources.gpus % self.engine.tensor_parallel_size != 0:
            raise policy.FieldError(
                "engine.tensorParallelSize",
                f"must divide resources.gpus ({self.resources.gpus} GPUs cannot be split into "
                f"groups of {self.engine.tensor_parallel_size})",
            )
        return self


# Object fields the CRD defaults to `{}`, so CEL rules can read their defaulted members.
CRD_DEFAULTED_OBJECTS = ("engine", "resources", "quantization")


class ConditionStatus(enum.StrEnum):
    """Status of a condition."""

    TRUE = "True"
    FALSE = "False"
    UNKNOWN = "Unknown"


class Condition(Model):
    """A Kubernetes-style condition."""

    type: str = pydantic.Field(
        description="Ready, Progressing, Degraded, ScalingActive or GuardrailsReady."
    )
    status: ConditionStatus = pydantic.Field(description="True, False or Unknown.")
    reason: str = pydantic.Field("", description="CamelCase reason for the last transition.")
    message: str = pydantic.Field("", description="Human-readable details.")
    last_transition_time: str | None = pydantic.Field(
        None, description="When the status last changed (RFC 3339)."
    )
    observed_generation: int | None = pydantic.Field(
        None, description="Generation of the spec this condition was computed from."
    )


class Phase(enum.StrEnum):
    """A one-word summary of the status, for `kubectl get`."""

    PENDING = "Pending"
    PROGRESSING = "Progressing"
    READY = "Ready"
    DEGRADED = "Degraded"
    FAILED = "Failed"


class LLMDeploymentStatus(Model):
    """Observed state of an LLMDeployment, written by the operator."""

    observed_generation: int | None = pydantic.Field(
        None, description="The spec generation the operator last acted on."
    )
    phase: Phase | None = pydantic.Field(None, description="Summary of the conditions.")
    conditions: list[Condition] = pydantic.Field(
        default_factory=list,
        description="Ready, Progressing, Degraded, ScalingActive, GuardrailsReady.",
    )
    replicas: int | None = pydantic.Field(None, description="Pods of the current Deployment.")
    ready_replicas: int | None = pydantic.Field(None, description="Pods ready to serve.")
    desired_replicas: int | None = pydantic.Field(
        None, description="Replicas wanted by the spec or the autoscaler."
    )
    ready: str | None = pydantic.Field(None, description="readyReplicas/desiredReplicas.")
    queue_depth: float | None = pydantic.Field(
        None, description="Requests waiting in the engines, summed over replicas."
    )
    endpoint: str | None = pydantic.Field(
        None, description="In-cluster OpenAI-compatible base URL."
    )
    selector: str | None = pydantic.Field(
        None, description="Label selector of the Pods (for the scale subresource)."
    )
    last_scale_time: str | None = pydantic.Field(
        None, description="When the autoscaler last changed the replica count."
    )


def parse_spec(spec: dict[str, Any]) -> LLMDeploymentSpec:
    """Parse and validate a spec as found in an object (camelCase keys)."""
    return LLMDeploymentSpec.model_validate(spec)
