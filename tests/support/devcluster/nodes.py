"""The simulated GPU nodes: kwok-managed Node objects with NVIDIA labels and capacity."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from llm_operator.planning import gpus as gpu_catalog
from tests.support.devcluster import model, probes


def manifest(config: model.ClusterConfig, index: int) -> dict[str, Any]:
    name = f"gpu-node-{index}"
    gpus = str(config.gpus_per_node)
    instance_type = f"kwok-{config.gpus_per_node}x{config.gpu_product}"[:63]
    labels = {
        "kubernetes.io/hostname": name,
        "kubernetes.io/os": "linux",
        "kubernetes.io/arch": "amd64",
        "node.kubernetes.io/instance-type": instance_type,
        "topology.kubernetes.io/zone": "local-a",
        "type": "kwok",
        "nvidia.com/gpu.present": "true",
        "nvidia.com/gpu.product": config.gpu_product,
        "nvidia.com/gpu.count": gpus,
    }
    # GPU memory in MiB, as NVIDIA's GPU feature discovery labels it, for known products.
    known = gpu_catalog.resolve(config.gpu_product)
    if known is not None:
        labels["nvidia.com/gpu.memory"] = str(known.memory_mib)
    capacity = {
        "cpu": config.node_cpu,
        "memory": config.node_memory,
        "pods": str(config.node_pods),
        "ephemeral-storage": "3500Gi",
        model.GPU_RESOURCE: gpus,
    }
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": name,
            "labels": labels,
            "annotations": {
                model.KWOK_NODE_ANNOTATION: "fake",
                "node.alpha.kubernetes.io/ttl": "0",
            },
        },
        "spec": {"podCIDR": f"10.244.{index}.0/24", "podCIDRs": [f"10.244.{index}.0/24"]},
        "status": {
            "capacity": capacity,
            "allocatable": dict(capacity),
            "addresses": [
                {"type": "InternalIP", "address": f"10.0.0.{index + 10}"},
                {"type": "Hostname", "address": name},
            ],
        },
    }


def ensure(api: probes.Api, config: model.ClusterConfig) -> list[str]:
    names = []
    for i in range(config.nodes):
        node = manifest(config, i)
        name = node["metadata"]["name"]
        names.append(name)
        code, body = api.request("GET", f"/api/v1/nodes/{name}")
        if code == 200:
            continue
        code, body = api.request("POST", "/api/v1/nodes", node)
        if code not in (200, 201, 409):
            raise model.ClusterError(f"cannot create node {name}: HTTP {code}: {body}")
    return names


def ready(api: probes.Api, names: Sequence[str]) -> tuple[bool, str]:
    code, body = api.request("GET", "/api/v1/nodes")
    if code != 200:
        return False, f"HTTP {code}"
    ready = set()
    for item in body.get("items", []):
        for cond in item.get("status", {}).get("conditions", []) or []:
            if cond.get("type") == "Ready" and cond.get("status") == "True":
                ready.add(item["metadata"]["name"])
    waiting = [n for n in names if n not in ready]
    return not waiting, f"not Ready: {', '.join(waiting)}" if waiting else "all Ready"
