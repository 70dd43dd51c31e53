"""Shared pieces of every child object: names, labels, owner references, build inputs.

Builders are pure functions of a `Target` (the parsed spec plus identity of the
LLMDeployment) and `Options` (settings of the operator installation). They do no
I/O, read no clock and no environment, so the same input always gives the same
objects; golden files pin that down.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from llm_operator.api import v1alpha1
from llm_operator.planning import memory

LABEL_DEPLOYMENT = "llmoperator.io/deployment"
FIELD_MANAGER = "llm-operator"
ENGINE_PORT = 8000
GATEWAY_PORT = 8080
SERVICE_PORT = 80
POLICY_FILE = "policy.json"
POLICY_DIR = "/etc/llm-gateway/policy"
API_KEYS_DIR = "/etc/llm-gateway/api-keys"
MODEL_CACHE_DIR = "/model-cache"
PVC_MODEL_DIR = "/mnt/models"

DEFAULT_GATEWAY_IMAGE = "ghcr.io/llm-operator/llm-gateway:0.1.0"
# The alerts' runbook_url is this page plus the alert's anchor (docs/runbooks.md).
DEFAULT_RUNBOOK_URL = "https://github.com/llm-operator/llm-operator/blob/main/docs/runbooks.md"


@dataclasses.dataclass(frozen=True)
class Options:
    """Settings of the operator installation that shape children."""

    gateway_image: str = DEFAULT_GATEWAY_IMAGE
    cluster_domain: str = "cluster.local"
    runbook_url: str = DEFAULT_RUNBOOK_URL
    # The builtin autoscaler's Prometheus when a spec names none (shapes no child).
    prometheus_url: str = ""
    # The installation's default guardrail policy (`guardrail_defaults`); empty: none.
    guardrail_defaults: dict[str, Any] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(frozen=True)
class Target:
    """One LLMDeployment as the builders see it."""

    name: str
    namespace: str
    uid: str
    spec: v1alpha1.LLMDeploymentSpec
    # Replica count to write into the Deployment; None leaves the field to another writer
    # (KEDA or an HPA).
    replicas: int | None

    @property
    def served_name(self) -> str:
        return self.spec.model.served_name or self.name

    @property
    def gateway_enabled(self) -> bool:
        return self.spec.guardrails.enabled

    @property
    def tensor_parallel_size(self) -> int:
        """The spec's, or the smallest the memory planner finds to fit (docs/quantization.md)."""
        return memory.parallelism(self.spec)[0]

    @property
    def gpus(self) -> int:
        """GPUs each replica requests: tensor x pipeline parallel size."""
        tensor, pipeline = memory.parallelism(self.spec)
        return tensor * pipeline


def selector_labels(target: Target) -> dict[str, str]:
    """Labels that select the Pods of one LLMDeployment (immutable once created)."""
    return {LABEL_DEPLOYMENT: target.name}


def labels(target: Target, component: str) -> dict[str, str]:
    """The label set on every child."""
    return {
        LABEL_DEPLOYMENT: target.name,
        "app.kubernetes.io/name": "llmdeployment",
        "app.kubernetes.io/instance": target.name,
        "app.kubernetes.io/component": component,
        "app.kubernetes.io/managed-by": "llm-operator",
        "app.kubernetes.io/part-of": "llm-operator",
    }


def owner_reference(target: Target) -> dict[str, Any]:
    """Makes the LLMDeployment the controlling owner, so deletion is garbage collection."""
    return {
        "apiVersion": f"{v1alpha1.API_GROUP}/{v1alpha1.API_VERSION}",
        "kind": v1alpha1.KIND,
        "name": target.name,
        "uid": target.uid,
        "controller": True,
        "blockOwnerDeletion": True,
    }


def metadata(target: Target, name: str, component: str) -> dict[str, Any]:
    """Metadata of a child object."""
    return {
        "name": name,
        "namespace": target.namespace,
        "labels": labels(target, component),
        "ownerReferences": [owner_reference(target)],
    }


def policy_configmap_name(target: Target) -> str:
    return f"{target.name}-guardrails"


def model_cache_claim_name(target: Target) -> str:
    return f"{target.name}-model-cache"


def endpoint(target: Target, options: Options) -> str:
    """In-cluster OpenAI-compatible base URL of the LLMDeployment."""
    return f"http://{target.name}.{target.namespace}.svc.{options.cluster_domain}/v1"
