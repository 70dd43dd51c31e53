"""The placement sections: GPUs, CPU and memory per replica, and where replicas run."""

from __future__ import annotations

import pydantic

from llm_operator.api.v1alpha1 import common


class Resources(common.Model):
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
    cpu: common.Quantity = pydantic.Field("4", description="CPU request and limit per replica.")
    memory: common.Quantity = pydantic.Field(
        "32Gi", description="Memory request and limit per replica."
    )
    shm_size: common.Quantity = pydantic.Field(
        "8Gi", description="Size of /dev/shm (memory-backed), used by tensor parallelism."
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
