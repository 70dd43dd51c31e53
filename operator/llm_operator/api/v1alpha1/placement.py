"""The placement sections: GPUs, CPU and memory per replica, and where replicas run."""

from __future__ import annotations

import pydantic

from llm_operator.api.v1alpha1 import common
from llm_operator.planning import gpus


class Resources(common.Model):
    """Compute for each replica."""

    gpus: int = pydantic.Field(
        1,
        ge=1,
        le=64,
        description="GPUs per replica (nvidia.com/gpu). With engine.tensorParallelSize unset, "
        "the most a replica may use: the Pod requests tensorParallelSize x "
        "pipelineParallelSize of them.",
    )
    gpu_type: str | None = pydantic.Field(
        None,
        description="GPU product to require: a short name of the GPU catalog (T4, L4, A10G, "
        "L40S, A100-40GB, A100-80GB, H100-80GB, H200, B200, ...) or an nvidia.com/gpu.product "
        "value (NVIDIA-H100-80GB-HBM3). Nodes are selected by the product label; the memory "
        "planner and the compatibility checks use the catalog's figures.",
        min_length=1,
        max_length=63,
    )
    gpu_resource_name: str = pydantic.Field(
        "nvidia.com/gpu", description="Extended resource name of the GPU device plugin."
    )
    cpu: common.Quantity = pydantic.Field("4", description="CPU request and limit per replica.")
    memory: common.Quantity = pydantic.Field(
        "32Gi", description="Memory request and limit per replica."
    )
    shm_size: common.Quantity = pydantic.Field(
        "8Gi", description="Size of /dev/shm (memory-backed), used by tensor parallelism."
    )

    @pydantic.field_validator("gpu_type")
    @classmethod
    def _known_gpu(cls, value: str | None) -> str | None:
        if value is None or gpus.resolve(value) or gpus.looks_like_product_label(value):
            return value
        raise ValueError(
            f"{value!r} is neither a GPU of the catalog ({', '.join(gpus.short_names())}) nor "
            "an nvidia.com/gpu.product value such as NVIDIA-H100-80GB-HBM3"
        )


class Toleration(common.Model):
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


class Scheduling(common.Model):
    """Where replicas may run."""

    node_selector: dict[str, str] = pydantic.Field(
        default_factory=dict, description="Node labels every replica requires."
    )
    tolerations: list[Toleration] = pydantic.Field(
        default_factory=_default_tolerations,
        description="Tolerations; by default the nvidia.com/gpu NoSchedule taint is tolerated.",
    )
    affinity: common.FreeForm | None = pydantic.Field(
        None, description="A Kubernetes Affinity object, passed to the Pod as it is."
    )
    priority_class_name: str | None = pydantic.Field(None, description="PriorityClass of the Pods.")
    runtime_class_name: str | None = pydantic.Field(
        None, description="RuntimeClass of the Pods (e.g. nvidia)."
    )
