"""The memory planner and the extraArgs check in the running operator, against a real API server."""

from __future__ import annotations

import copy
from typing import Any

from llm_operator.builders import common
from tests.integration import cluster, conftest
from tests.integration import test_operator as helpers


def _events(plane: cluster.ControlPlane, namespace: str, name: str, reason: str) -> list[Any]:
    return [
        e
        for e in plane.core.list_namespaced_event(namespace).items
        if e.reason == reason and e.involved_object.name == name
    ]


def _minimal(name: str) -> dict[str, Any]:
    doc = copy.deepcopy(helpers.load(conftest.ROOT / "examples" / "minimal.yaml"))
    doc["metadata"]["name"] = name
    return doc


def test_a_model_too_big_for_its_gpus_is_refused_before_any_pod(
    operator: conftest.Operator, namespace: str
) -> None:
    plane = operator.plane
    doc = _minimal("too-heavy")
    doc["spec"]["model"]["uri"] = "hf://meta-llama/Llama-3.3-70B-Instruct"
    doc["spec"]["resources"] = {"gpuType": "L4"}
    created = helpers.create(plane, namespace, doc)
    obj = helpers.wait_reason(plane, namespace, "too-heavy", "InsufficientGPUMemory")
    ready = helpers.condition(obj, "Ready")
    assert ready["status"] == "False"
    message = ready["message"]
    assert message.startswith("spec.resources.gpus: Llama 3.1/3.3 70B at 16 bits per weight")
    assert "GiB of weights" in message
    assert "L4 (NVIDIA-L4) gives vLLM 20.2 GiB" in message
    assert "short by" in message
    assert obj["status"]["phase"] == "Failed"
    events = cluster.wait_for(
        "InsufficientGPUMemory event",
        lambda: _events(plane, namespace, "too-heavy", "InsufficientGPUMemory"),
        timeout=30,
    )
    assert events[0].type == "Warning"
    assert helpers.owned_children(plane, namespace, "too-heavy", created["metadata"]["uid"]) == []
    assert helpers.pods(plane, namespace, "too-heavy") == []

    # Told a context the planner finds fits, on GPUs that hold the weights, it serves.
    helpers.patch_spec(
        plane,
        namespace,
        "too-heavy",
        {
            "resources": {"gpuType": "H100-80GB", "gpus": 8},
            "engine": {"maxModelLen": 8192},
        },
    )
    served = helpers.wait_ready(plane, namespace, "too-heavy")
    assert served["status"]["phase"] == "Ready"
    deployment = plane.apps.read_namespaced_deployment("too-heavy", namespace)
    pod = deployment.spec.template.spec
    (vllm,) = [c for c in pod.containers if c.name == "vllm"]
    # The planner chose the smallest tensor-parallel size that fits within the 8 GPUs.
    assert vllm.args[vllm.args.index("--tensor-parallel-size") + 1] == "4"
    assert vllm.resources.limits["nvidia.com/gpu"] == "4"
    assert pod.node_selector == {"nvidia.com/gpu.product": "NVIDIA-H100-80GB-HBM3"}


def test_extra_args_the_api_server_lets_through_are_refused_in_status(
    operator: conftest.Operator, namespace: str
) -> None:
    plane = operator.plane
    doc = _minimal("turbo")
    # An unknown flag, and an abbreviation of an owned one: the CRD's rule checks neither.
    doc["spec"]["engine"] = {"extraArgs": ["--enable-turbo-mode", "--tensor-parallel", "2"]}
    created = helpers.create(plane, namespace, doc)
    obj = helpers.wait_reason(plane, namespace, "turbo", "InvalidSpec")
    message = helpers.condition(obj, "Ready")["message"]
    assert message.startswith("spec.engine.extraArgs: vLLM 0.32.0 refuses them")
    assert "--enable-turbo-mode" in message
    assert helpers.owned_children(plane, namespace, "turbo", created["metadata"]["uid"]) == []
    helpers.patch_spec(
        plane, namespace, "turbo", {"engine": {"extraArgs": ["--tensor-parallel", "2"]}}
    )
    obj = cluster.wait_for(
        "owned-flag refusal",
        lambda: (
            o
            if "spec.engine.tensorParallelSize"
            in helpers.condition(o := helpers.get(plane, namespace, "turbo"), "Ready").get(
                "message", ""
            )
            else None
        ),
        timeout=60,
    )
    assert helpers.condition(obj, "Ready")["reason"] == "InvalidSpec"
    labels = f"{common.LABEL_DEPLOYMENT}=turbo"
    assert plane.apps.list_namespaced_deployment(namespace, label_selector=labels).items == []
