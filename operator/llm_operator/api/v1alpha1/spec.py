"""The whole spec: one field per section, and the rules that span sections."""

from __future__ import annotations

from typing import Any

import pydantic

from llm_operator.api.v1alpha1 import common, operations, placement, scaling
from llm_operator.api.v1alpha1 import engine as engine_section
from llm_operator.api.v1alpha1 import model as model_section
from llm_operator.planning import engine_args, quantization
from llm_operator.planning import gpus as gpus_catalog
from llm_serving import policy


class LLMDeploymentSpec(common.Model):
    """Desired state of an LLMDeployment."""

    model_config = pydantic.ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                {
                    "rule": "!has(self.engine.tensorParallelSize) || self.resources.gpus == "
                    "self.engine.tensorParallelSize * self.engine.pipelineParallelSize",
                    "message": "resources.gpus must equal engine.tensorParallelSize x "
                    "engine.pipelineParallelSize",
                    "fieldPath": ".engine.tensorParallelSize",
                },
                {
                    "rule": "has(self.engine.tensorParallelSize) || "
                    "self.resources.gpus % self.engine.pipelineParallelSize == 0",
                    "message": "engine.pipelineParallelSize must divide resources.gpus",
                    "fieldPath": ".engine.pipelineParallelSize",
                },
                {
                    "rule": "!has(self.autoscaling) || !self.autoscaling.enabled "
                    "|| self.autoscaling.metric != 'inflight' "
                    "|| (has(self.guardrails) && self.guardrails.enabled)",
                    "message": "autoscaling metric inflight is counted by the gateway: it needs "
                    "guardrails.enabled",
                    "fieldPath": ".autoscaling.metric",
                },
                {
                    # A transition rule (checked on updates only, the scale subresource's too).
                    "rule": "self.replicas == oldSelf.replicas || !has(self.autoscaling) "
                    "|| !self.autoscaling.enabled || self.autoscaling.mode == 'advise' "
                    "|| !has(oldSelf.autoscaling) || !oldSelf.autoscaling.enabled",
                    "message": "replicas cannot change while autoscaling is on (mode scale): the "
                    "autoscaler sets them; change autoscaling.minReplicas/maxReplicas, or turn "
                    "autoscaling off first",
                    "fieldPath": ".replicas",
                },
            ]
        }
    )

    model: model_section.ModelSource = pydantic.Field(description="The model to serve.")
    quantization: model_section.Quantization = pydantic.Field(
        default_factory=model_section.Quantization,
        description="Quantization of weights and KV cache.",
    )
    engine: engine_section.Engine = pydantic.Field(
        default_factory=engine_section.Engine, description="vLLM engine settings."
    )
    resources: placement.Resources = pydantic.Field(
        default_factory=placement.Resources, description="GPUs, CPU and memory per replica."
    )
    scheduling: placement.Scheduling = pydantic.Field(
        default_factory=placement.Scheduling, description="Node placement."
    )
    replicas: int = pydantic.Field(
        1,
        ge=0,
        le=1000,
        description="Replica count when autoscaling is off or in mode advise (kubectl scale "
        "sets it). While autoscaling is on in mode scale it is not used, and changing it (kubectl "
        "scale included) is refused.",
    )
    autoscaling: scaling.Autoscaling = pydantic.Field(
        default_factory=scaling.Autoscaling,
        description="Autoscaling on the engines' queue depth (or in-flight requests, or KV "
        "cache usage); see docs/autoscaling.md.",
    )
    guardrails: policy.GuardrailPolicy = pydantic.Field(
        default_factory=policy.GuardrailPolicy,
        description="Policy of the guardrail gateway sidecar (the same document the gateway "
        "loads).",
    )
    gateway: operations.GatewaySettings = pydantic.Field(
        default_factory=operations.GatewaySettings,
        description="Gateway sidecar container settings.",
    )
    model_cache: operations.ModelCache = pydantic.Field(
        default_factory=operations.ModelCache,
        description="Persistent cache for downloaded weights.",
    )
    rollout: operations.Rollout = pydantic.Field(
        default_factory=operations.Rollout, description="Rolling updates."
    )
    disruption: operations.Disruption = pydantic.Field(
        default_factory=operations.Disruption, description="PodDisruptionBudget."
    )
    observability: operations.Observability = pydantic.Field(
        default_factory=operations.Observability, description="Monitoring objects."
    )

    @pydantic.model_validator(mode="after")
    def _cross_field(self) -> LLMDeploymentSpec:
        gpus = self.resources.gpus
        tp, pp = self.engine.tensor_parallel_size, self.engine.pipeline_parallel_size
        if tp is not None and gpus != tp * pp:
            raise policy.FieldError(
                "engine.tensorParallelSize",
                f"resources.gpus ({gpus}) must equal tensorParallelSize x pipelineParallelSize "
                f"({tp} x {pp} = {tp * pp})",
            )
        if tp is None and gpus % pp != 0:
            raise policy.FieldError(
                "engine.pipelineParallelSize",
                f"must divide resources.gpus ({gpus} GPUs cannot be split into {pp} stages)",
            )
        self._check_conditional_flags()
        gpu = gpus_catalog.resolve(self.resources.gpu_type or "")
        if gpu is not None:
            found = quantization.compatibility(self.quantization.method, self.engine.dtype, gpu)
            for path, message in found.refusals:
                raise policy.FieldError(path, message)
        scaling_ = self.autoscaling
        if (
            scaling_.enabled
            and scaling_.metric is scaling.AutoscalingMetric.INFLIGHT
            and not self.guardrails.enabled
        ):
            raise policy.FieldError(
                "autoscaling.metric",
                "inflight is counted by the gateway: it needs guardrails.enabled",
            )
        return self

    def _check_conditional_flags(self) -> None:
        """Flags the operator sets only for some specs may not be repeated in extraArgs."""
        owned = {}
        if self.model.uri.startswith(("s3://", "gs://")):
            owned["load_format"] = "model.uri (s3:// and gs:// load with runai_streamer)"
        if "--allow-deprecated-quantization" in quantization.engine_flags(
            self.quantization.method, "auto"
        ):
            owned["allow_deprecated_quantization"] = (
                f"quantization.method ({self.quantization.method} is deprecated in vLLM)"
            )
        for use in engine_args.check(self.engine.extra_args, self.engine.image).uses:
            if use.dest in owned:
                raise policy.FieldError(
                    "engine.extraArgs",
                    f"{use.spelling} sets {use.dest}, which the operator sets from "
                    f"{owned[use.dest]}",
                )


# Object fields the CRD defaults to `{}`, so CEL rules can read their defaulted members.
CRD_DEFAULTED_OBJECTS = ("engine", "resources", "quantization")


def parse_spec(spec: dict[str, Any]) -> LLMDeploymentSpec:
    """Parse and validate a spec as found in an object (camelCase keys)."""
    return LLMDeploymentSpec.model_validate(spec)
