"""Service, ServiceAccount, PodDisruptionBudget, model-cache claim, guardrail policy ConfigMap."""

from __future__ import annotations

import json
from typing import Any

from llm_operator.api import v1alpha1
from llm_operator.builders import common


def service(target: common.Target) -> dict[str, Any]:
    """ClusterIP Service on port 80 in front of the gateway (or vLLM when guardrails are off)."""
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": common.metadata(target, target.name, "model-server"),
        "spec": {
            "type": "ClusterIP",
            "selector": common.selector_labels(target),
            "ports": [
                {
                    "name": "http",
                    "port": common.SERVICE_PORT,
                    "targetPort": "http",
                    "protocol": "TCP",
                    "appProtocol": "http",
                }
            ],
        },
    }


def service_account(target: common.Target) -> dict[str, Any]:
    """A ServiceAccount of its own, with no token mounted: serving needs no API access."""
    return {
        "apiVersion": "v1",
        "kind": "ServiceAccount",
        "metadata": common.metadata(target, target.name, "model-server"),
        "automountServiceAccountToken": False,
    }


def pod_disruption_budget(target: common.Target) -> dict[str, Any] | None:
    """policy/v1 PodDisruptionBudget; maxUnavailable 1 unless the spec says otherwise."""
    disruption = target.spec.disruption
    if not disruption.enabled:
        return None
    budget: dict[str, Any] = {"selector": {"matchLabels": common.selector_labels(target)}}
    if disruption.min_available is not None:
        budget["minAvailable"] = disruption.min_available
    else:
        budget["maxUnavailable"] = (
            disruption.max_unavailable if disruption.max_unavailable is not None else 1
        )
    # Let a drain evict Pods that never became ready (a stuck rollout must not block it).
    budget["unhealthyPodEvictionPolicy"] = "AlwaysAllow"
    return {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": common.metadata(target, target.name, "model-server"),
        "spec": budget,
    }


def model_cache_claim(target: common.Target) -> dict[str, Any] | None:
    """The PersistentVolumeClaim for the model cache, unless an existing claim is used."""
    cache = target.spec.model_cache
    if not cache.enabled or cache.existing_claim:
        return None
    claim_spec: dict[str, Any] = {
        "accessModes": [cache.access_mode],
        "resources": {"requests": {"storage": cache.size}},
    }
    if cache.storage_class_name:
        claim_spec["storageClassName"] = cache.storage_class_name
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": common.metadata(target, common.model_cache_claim_name(target), "model-cache"),
        "spec": claim_spec,
    }


def context_length(engine: v1alpha1.Engine) -> int | None:
    """The engine's context length when the spec sets it (`maxModelLen`; extraArgs may not
    carry --max-model-len); None when vLLM takes the model's own."""
    return engine.max_model_len


def policy_json(target: common.Target) -> str:
    """The guardrail policy as the gateway reads it: the spec's document with defaults filled.

    `input.maxPromptTokens` defaults to the engine's context length when the spec
    states it: a longer prompt could not run, and its checks would be work for nothing.
    """
    document = target.spec.guardrails.model_dump(by_alias=True, mode="json")
    if document["input"]["maxPromptTokens"] is None:
        document["input"]["maxPromptTokens"] = context_length(target.spec.engine)
    return json.dumps(document, indent=2, sort_keys=True) + "\n"


def guardrails_config_map(target: common.Target) -> dict[str, Any] | None:
    """ConfigMap mounted into the gateway; absent when guardrails are off."""
    if not target.gateway_enabled:
        return None
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": common.metadata(target, common.policy_configmap_name(target), "guardrails"),
        "data": {common.POLICY_FILE: policy_json(target)},
    }
