"""The operator against a real API server, controller manager, scheduler and kwok GPU nodes."""

from __future__ import annotations

import copy
import json
import os
import pathlib
import subprocess
from typing import Any

import pytest
import yaml
from kubernetes import client
from kubernetes.client.rest import ApiException
from kubernetes.dynamic import exceptions as dynamic_exceptions

from llm_operator import kube, leader, render
from llm_operator.builders import children, common
from tests.integration import cluster, conftest

EXAMPLES = sorted((conftest.ROOT / "examples").glob("*.yaml"))
INVALID = sorted((conftest.ROOT / "tests" / "data" / "invalid").glob("*.yaml"))
GROUP_VERSION = "llmoperator.io/v1alpha1"


def load(path: pathlib.Path) -> dict[str, Any]:
    doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    assert isinstance(doc, dict)
    return doc


def llmd_resource(plane: cluster.ControlPlane) -> Any:
    return plane.dynamic.resources.get(api_version=GROUP_VERSION, kind="LLMDeployment")


def create(plane: cluster.ControlPlane, namespace: str, doc: dict[str, Any]) -> dict[str, Any]:
    body = copy.deepcopy(doc)
    body["metadata"]["namespace"] = namespace
    # As kubectl does by default: unknown fields are errors, not silently pruned.
    api = client.CustomObjectsApi(plane.api_client)
    created: dict[str, Any] = api.create_namespaced_custom_object(
        "llmoperator.io", "v1alpha1", namespace, "llmdeployments", body, field_validation="Strict"
    )
    return created


def get(plane: cluster.ControlPlane, namespace: str, name: str) -> dict[str, Any]:
    result: dict[str, Any] = llmd_resource(plane).get(name=name, namespace=namespace).to_dict()
    return result


def patch_spec(
    plane: cluster.ControlPlane, namespace: str, name: str, spec: dict[str, Any]
) -> None:
    llmd_resource(plane).patch(
        name=name,
        namespace=namespace,
        body={"spec": spec},
        content_type="application/merge-patch+json",
    )


def condition(obj: dict[str, Any], type_: str) -> dict[str, Any]:
    for cond in (obj.get("status") or {}).get("conditions") or []:
        if cond["type"] == type_:
            return dict(cond)
    return {}


def wait_ready(
    plane: cluster.ControlPlane, namespace: str, name: str, timeout: float = 120
) -> dict[str, Any]:
    def probe() -> dict[str, Any] | None:
        obj = get(plane, namespace, name)
        status = obj.get("status") or {}
        ready = condition(obj, "Ready").get("status") == "True"
        current = status.get("observedGeneration") == obj["metadata"]["generation"]
        return obj if ready and current else None

    try:
        return cluster.wait_for(f"{namespace}/{name} Ready", probe, timeout=timeout)
    except BaseException:
        print(json.dumps(get(plane, namespace, name).get("status"), indent=1))
        raise


def wait_reason(
    plane: cluster.ControlPlane, namespace: str, name: str, reason: str, timeout: float = 90
) -> dict[str, Any]:
    def probe() -> dict[str, Any] | None:
        obj = get(plane, namespace, name)
        return obj if condition(obj, "Ready").get("reason") == reason else None

    return cluster.wait_for(f"{namespace}/{name} Ready reason {reason}", probe, timeout=timeout)


def owned_children(
    plane: cluster.ControlPlane, namespace: str, name: str, uid: str
) -> list[tuple[str, str]]:
    found = []
    for child in children.CHILD_KINDS:
        resource = plane.dynamic.resources.get(api_version=child.api_version, kind=child.kind)
        items = resource.get(
            namespace=namespace, label_selector=f"{common.LABEL_DEPLOYMENT}={name}"
        ).to_dict()["items"]
        for item in items:
            refs = item["metadata"].get("ownerReferences") or []
            assert any(r["uid"] == uid and r["controller"] for r in refs), item["metadata"]
            found.append((child.kind, item["metadata"]["name"]))
    return sorted(found)


def pods(plane: cluster.ControlPlane, namespace: str, name: str) -> list[Any]:
    items: list[Any] = plane.core.list_namespaced_pod(
        namespace, label_selector=f"{common.LABEL_DEPLOYMENT}={name}"
    ).items
    return items


def provide_volume(plane: cluster.ControlPlane, name: str) -> None:
    """A statically provisioned volume, so a model-cache claim can bind without a provisioner."""
    body = {
        "apiVersion": "v1",
        "kind": "PersistentVolume",
        "metadata": {"name": name},
        "spec": {
            "capacity": {"storage": "1Ti"},
            "accessModes": ["ReadWriteOnce", "ReadWriteMany"],
            "persistentVolumeReclaimPolicy": "Delete",
            "hostPath": {"path": f"/tmp/{name}"},
        },
    }
    try:
        plane.core.create_persistent_volume(body)
    except ApiException as exc:
        if exc.status != 409:
            raise


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.stem for p in EXAMPLES])
def test_example_becomes_ready_on_gpu_nodes(
    path: pathlib.Path, operator: conftest.Operator, namespace: str
) -> None:
    plane = operator.plane
    doc = load(path)
    name = doc["metadata"]["name"]
    if (doc["spec"].get("modelCache") or {}).get("enabled"):
        provide_volume(plane, f"pv-{namespace}")
    created = create(plane, namespace, doc)
    obj = wait_ready(plane, namespace, name)
    status = obj["status"]
    assert status["readyReplicas"] >= 1
    assert status["ready"] == f"{status['readyReplicas']}/{status['desiredReplicas']}"
    assert status["phase"] == "Ready"
    assert status["endpoint"] == f"http://{name}.{namespace}.svc.cluster.local/v1"

    owned = owned_children(plane, namespace, name, created["metadata"]["uid"])
    kinds = {kind for kind, _ in owned}
    assert {"Deployment", "Service", "ServiceAccount", "PodDisruptionBudget"} <= kinds
    assert ("ConfigMap" in kinds) == bool(doc["spec"].get("guardrails", {}).get("enabled"))

    reasons = {
        e.reason
        for e in plane.core.list_namespaced_event(namespace).items
        if e.involved_object.kind == "LLMDeployment" and e.involved_object.name == name
    }
    assert "AllReplicasReady" in reasons, reasons

    gpus = int((doc["spec"].get("resources") or {}).get("gpus", 1))
    running = [p for p in pods(plane, namespace, name) if p.status.phase == "Running"]
    assert len(running) == status["readyReplicas"]
    for pod in running:
        node = plane.core.read_node(pod.spec.node_name)
        assert int(node.status.allocatable["nvidia.com/gpu"]) >= gpus
        assert node.metadata.labels["nvidia.com/gpu.present"] == "true"
        limits = {c.name: c.resources.limits for c in pod.spec.containers}
        assert limits["vllm"]["nvidia.com/gpu"] == str(gpus)


def test_scale_subresource_with_kubectl(
    operator: conftest.Operator, namespace: str, kubectl: pathlib.Path
) -> None:
    plane = operator.plane
    create(plane, namespace, load(conftest.ROOT / "examples" / "minimal.yaml"))
    wait_ready(plane, namespace, "llama-8b")
    env = {**os.environ, "KUBECONFIG": str(plane.kubeconfig)}
    out = subprocess.run(
        [str(kubectl), "scale", "llmd", "llama-8b", "-n", namespace, "--replicas=3"],
        capture_output=True,
        text=True,
        env=env,
        check=False,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    obj = wait_ready(plane, namespace, "llama-8b")
    assert obj["spec"]["replicas"] == 3
    assert obj["status"]["readyReplicas"] == 3
    assert plane.apps.read_namespaced_deployment("llama-8b", namespace).spec.replicas == 3
    table = subprocess.run(
        [str(kubectl), "get", "llmd", "-n", namespace],
        capture_output=True,
        text=True,
        env=env,
        check=True,
        timeout=60,
    ).stdout
    header, row = table.strip().splitlines()
    assert header.split() == ["NAME", "MODEL", "QUANTIZATION", "READY", "QUEUE", "PHASE", "AGE"]
    assert "3/3" in row
    assert "Ready" in row


def test_changes_roll_out(operator: conftest.Operator, namespace: str) -> None:
    plane = operator.plane
    create(plane, namespace, load(conftest.ROOT / "examples" / "minimal.yaml"))
    wait_ready(plane, namespace, "llama-8b")
    patch_spec(
        plane,
        namespace,
        "llama-8b",
        {"engine": {"image": "vllm/vllm-openai:v0.32.1"}, "quantization": {"method": "fp8"}},
    )
    obj = wait_ready(plane, namespace, "llama-8b")
    assert obj["status"]["observedGeneration"] == 2
    dep = plane.apps.read_namespaced_deployment("llama-8b", namespace)
    vllm = dep.spec.template.spec.containers[0]
    assert vllm.image == "vllm/vllm-openai:v0.32.1"
    assert vllm.args[vllm.args.index("--quantization") + 1] == "fp8"
    assert dep.metadata.generation >= 2
    images = {
        c.image
        for p in pods(plane, namespace, "llama-8b")
        for c in p.spec.containers
        if p.status.phase == "Running" and p.metadata.deletion_timestamp is None
    }
    assert images == {"vllm/vllm-openai:v0.32.1"}


def test_guardrails_toggle_adds_and_prunes_sidecar(
    operator: conftest.Operator, namespace: str
) -> None:
    plane = operator.plane
    created = create(plane, namespace, load(conftest.ROOT / "examples" / "guardrails.yaml"))
    uid = created["metadata"]["uid"]
    wait_ready(plane, namespace, "assistant")
    assert ("ConfigMap", "assistant-guardrails") in owned_children(
        plane, namespace, "assistant", uid
    )
    dep = plane.apps.read_namespaced_deployment("assistant", namespace)
    assert [c.name for c in dep.spec.template.spec.containers] == ["gateway", "vllm"]
    obj = get(plane, namespace, "assistant")
    assert condition(obj, "GuardrailsReady")["status"] == "True"

    patch_spec(plane, namespace, "assistant", {"guardrails": {"enabled": False}})
    wait_ready(plane, namespace, "assistant")
    cluster.wait_for(
        "ConfigMap pruned",
        lambda: (
            ("ConfigMap", "assistant-guardrails")
            not in owned_children(plane, namespace, "assistant", uid)
        ),
        timeout=30,
    )
    dep = plane.apps.read_namespaced_deployment("assistant", namespace)
    assert [c.name for c in dep.spec.template.spec.containers] == ["vllm"]
    args = dep.spec.template.spec.containers[0].args
    assert args[args.index("--host") + 1] == "0.0.0.0"


def test_deleting_the_llmdeployment_collects_every_child(
    operator: conftest.Operator, namespace: str
) -> None:
    plane = operator.plane
    created = create(plane, namespace, load(conftest.ROOT / "examples" / "guardrails.yaml"))
    wait_ready(plane, namespace, "assistant")
    assert created["metadata"].get("finalizers") in (None, [])
    assert len(owned_children(plane, namespace, "assistant", created["metadata"]["uid"])) >= 5
    llmd_resource(plane).delete(name="assistant", namespace=namespace)
    cluster.wait_for(
        "children garbage-collected",
        lambda: owned_children(plane, namespace, "assistant", created["metadata"]["uid"]) == [],
        timeout=90,
    )
    cluster.wait_for("pods gone", lambda: pods(plane, namespace, "assistant") == [], timeout=90)


def test_resync_restores_a_deleted_service(operator: conftest.Operator, namespace: str) -> None:
    plane = operator.plane
    create(plane, namespace, load(conftest.ROOT / "examples" / "minimal.yaml"))
    wait_ready(plane, namespace, "llama-8b")
    first_uid = plane.core.read_namespaced_service("llama-8b", namespace).metadata.uid
    plane.core.delete_namespaced_service("llama-8b", namespace)

    def recreated() -> bool:
        try:
            svc = plane.core.read_namespaced_service("llama-8b", namespace)
        except ApiException as exc:
            if exc.status == 404:
                return False
            raise
        return bool(svc.metadata.uid != first_uid)

    cluster.wait_for("Service recreated by the resync", recreated, timeout=30)


@pytest.mark.parametrize("path", INVALID, ids=[p.stem for p in INVALID])
def test_api_server_refuses_invalid_specs(
    path: pathlib.Path, crd_installed: cluster.ControlPlane, namespace: str
) -> None:
    expected = path.read_text(encoding="utf-8").splitlines()[0].removeprefix("# expect: ")
    with pytest.raises((ApiException, dynamic_exceptions.DynamicApiError)) as info:
        create(crd_installed, namespace, load(path))
    assert info.value.status in (400, 422), info.value
    body = json.loads(info.value.body)
    causes = " | ".join(
        f"{c.get('field')}: {c.get('message')}" for c in body.get("details", {}).get("causes", [])
    )
    assert expected in body["message"] or expected in causes, body["message"]


def test_spec_the_operator_refuses_is_reported_in_status(
    operator: conftest.Operator, namespace: str
) -> None:
    plane = operator.plane
    doc = load(conftest.ROOT / "examples" / "minimal.yaml")
    doc["metadata"]["name"] = "bad-regex"
    doc["spec"]["guardrails"] = {
        "enabled": True,
        "input": {"denyPatterns": {"patterns": ["(unclosed"]}},
    }
    create(plane, namespace, doc)
    obj = wait_reason(plane, namespace, "bad-regex", "InvalidSpec")
    ready = condition(obj, "Ready")
    assert ready["status"] == "False"
    assert "spec.guardrails.input.denyPatterns.patterns" in ready["message"]
    assert obj["status"]["phase"] == "Failed"
    events = cluster.wait_for(
        "InvalidSpec event",
        lambda: [
            e
            for e in plane.core.list_namespaced_event(namespace).items
            if e.reason == "InvalidSpec" and e.involved_object.name == "bad-regex"
        ],
        timeout=30,
    )
    assert events[0].type == "Warning"
    assert owned_children(plane, namespace, "bad-regex", obj["metadata"]["uid"]) == []


def test_more_gpus_than_a_node_has_is_reported(operator: conftest.Operator, namespace: str) -> None:
    plane = operator.plane
    doc = load(conftest.ROOT / "examples" / "minimal.yaml")
    doc["metadata"]["name"] = "too-big"
    doc["spec"]["resources"] = {"gpus": 12}
    doc["spec"]["engine"] = {"tensorParallelSize": 4, "pipelineParallelSize": 3}
    create(plane, namespace, doc)
    obj = wait_reason(plane, namespace, "too-big", "InsufficientGPU")
    message = condition(obj, "Ready")["message"]
    assert "needs 12 nvidia.com/gpu" in message
    assert "largest node has 8" in message
    assert "short by 4" in message
    assert obj["status"]["phase"] == "Pending"


def test_gpu_exhaustion_is_reported_unschedulable(
    operator: conftest.Operator, namespace: str
) -> None:
    plane = operator.plane
    doc = load(conftest.ROOT / "examples" / "minimal.yaml")
    doc["metadata"]["name"] = "greedy"
    doc["spec"]["resources"] = {"gpus": 8}
    doc["spec"]["engine"] = {"tensorParallelSize": 8}
    doc["spec"]["replicas"] = 5
    create(plane, namespace, doc)
    obj = wait_reason(plane, namespace, "greedy", "Unschedulable")
    assert "nvidia.com/gpu" in condition(obj, "Ready")["message"]
    patch_spec(plane, namespace, "greedy", {"replicas": 0})
    wait_ready(plane, namespace, "greedy")


def test_restart_mid_reconcile_converges_without_duplicates(
    operator: conftest.Operator, namespace: str
) -> None:
    plane = operator.plane
    operator.stop()
    try:
        created = create(plane, namespace, load(conftest.ROOT / "examples" / "guardrails.yaml"))
        # Start, let it begin applying, and kill it before it can finish the pass.
        operator.start(wait_ready=True)
        cluster.wait_for(
            "first child applied",
            lambda: (
                plane.core.list_namespaced_service_account(
                    namespace, label_selector=f"{common.LABEL_DEPLOYMENT}=assistant"
                ).items
            ),
            timeout=60,
            interval=0.05,
        )
        operator.stop()
    finally:
        if not operator.running:
            operator.start()
    wait_ready(plane, namespace, "assistant")
    owned = owned_children(plane, namespace, "assistant", created["metadata"]["uid"])
    assert len(owned) == len(set(owned))
    deployments = plane.apps.list_namespaced_deployment(namespace).items
    assert [d.metadata.name for d in deployments] == ["assistant"]
    replica_sets = plane.apps.list_namespaced_replica_set(namespace).items
    assert len(replica_sets) == 1


def test_rendered_objects_pass_server_side_dry_run(
    crd_installed: cluster.ControlPlane, namespace: str
) -> None:
    client = kube.Client(crd_installed.new_client())
    kinds: set[str] = set()
    # Beyond the examples: every optional child at once.
    everything = {
        "apiVersion": GROUP_VERSION,
        "kind": "LLMDeployment",
        "metadata": {"name": "everything"},
        "spec": {
            "model": {"uri": "pvc://weights/llama"},
            "guardrails": {"enabled": True, "apiKeys": {"enabled": True, "secretName": "keys"}},
            "modelCache": {"enabled": True},
            "autoscaling": {"enabled": True, "provider": "hpa"},
            "observability": {"podMonitor": True, "prometheusRule": True},
        },
    }
    # At most one monitor per LLMDeployment: the ServiceMonitor on a copy.
    service_monitor = copy.deepcopy(everything)
    service_monitor["metadata"]["name"] = "everything-sm"
    service_monitor["spec"]["observability"] = {"serviceMonitor": True}
    sources = [(p.name, p.read_text(encoding="utf-8")) for p in EXAMPLES]
    sources.append(("everything", yaml.safe_dump(everything)))
    sources.append(("everything-sm", yaml.safe_dump(service_monitor)))
    try:
        for source, text in sources:
            documents = render.load_documents(text, source)
            doc = copy.deepcopy(documents[0])
            doc["metadata"]["namespace"] = namespace
            client.apply(doc, dry_run=True)
            for obj in render.render_objects(documents, source, common.Options(), namespace):
                client.apply(obj, dry_run=True)
                kinds.add(obj["kind"])
    finally:
        client.close()
    assert {
        "ScaledObject",
        "HorizontalPodAutoscaler",
        "PodMonitor",
        "ServiceMonitor",
        "PrometheusRule",
        "PersistentVolumeClaim",
        "ConfigMap",
        "Deployment",
    } <= kinds


def test_leader_election_lets_one_holder_at_a_time(crd_installed: cluster.ControlPlane) -> None:
    # Two electors on the real API server with one hand-driven clock: no sleeping.
    now = [1000.0]
    timing = leader.Timing(lease_duration=6, renew_deadline=4, retry_period=1)
    first = kube.Client(crd_installed.new_client())
    second = kube.Client(crd_installed.new_client())
    a = leader.Elector(
        first, kube.LeaseSpec("it-leader", "default", "replica-a"), timing, lambda: now[0]
    )
    b = leader.Elector(
        second, kube.LeaseSpec("it-leader", "default", "replica-b"), timing, lambda: now[0]
    )
    try:
        assert a.try_take()
        assert a.leading()
        assert not b.try_take()
        assert not b.leading()
        now[0] += 3
        assert a.try_take()  # renewal by the holder
        assert not b.try_take()  # b sees a new record: its wait starts again
        # The holder stops renewing: its gate closes at the renew deadline, before b may take.
        now[0] += 4
        assert not a.leading()
        assert not b.try_take()
        now[0] += 2  # a full lease since b saw the last renewal
        assert b.try_take()
        assert b.leading()
        # a comes back: it finds b holding the Lease and stays a follower.
        assert not a.try_take()
        assert not a.leading()
        held = first.get_lease(b.lease, timeout=5)
        assert held is not None
        assert held["spec"]["holderIdentity"] == "replica-b"
        assert held["spec"]["leaseTransitions"] == 1
    finally:
        first.close()
        second.close()
