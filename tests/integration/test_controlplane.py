"""Smoke tests of the local control plane itself: version, GPU nodes, scheduling, GC, RBAC.

They use the session's `control_plane` fixture (tests/integration/cluster.py)
and check what the operator's integration tests rely on: the API server reports
the version it was built as, kwok's simulated nodes carry `nvidia.com/gpu`, the
scheduler places GPU Pods and refuses impossible ones, kwok drives Pods to
Running and Ready, and the controller manager's garbage collector and
Deployment controllers work.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client
from kubernetes import config as kube_config
from kubernetes.client.rest import ApiException

from tests.integration import cluster
from tests.support import devcluster

pytestmark = pytest.mark.integration

GPU = devcluster.GPU_RESOURCE


@pytest.fixture
def namespace(control_plane: cluster.ControlPlane) -> Iterator[str]:
    name = control_plane.create_namespace("cp")
    yield name
    control_plane.delete_namespace(name)


def gpu_pod(name: str, gpus: int, **labels: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": {"app": name, **labels}},
        "spec": {
            "containers": [
                {
                    "name": "main",
                    "image": "registry.example/vllm:test",
                    "resources": {
                        "requests": {"cpu": "1", "memory": "1Gi", GPU: str(gpus)},
                        "limits": {GPU: str(gpus)},
                    },
                }
            ],
        },
    }


def pod_ready(pod: client.V1Pod) -> bool:
    conditions = (pod.status and pod.status.conditions) or []
    return any(c.type == "Ready" and c.status == "True" for c in conditions)


def gpu_node_names(control_plane: cluster.ControlPlane) -> set[str]:
    nodes = control_plane.core.list_node(label_selector="nvidia.com/gpu.present=true").items
    return {n.metadata.name for n in nodes}


def test_version_is_the_one_built(control_plane: cluster.ControlPlane) -> None:
    info = client.VersionApi(control_plane.api_client).get_code()
    assert info.git_version == control_plane.kubernetes_version
    assert info.git_version.startswith("v1.34.")
    assert (info.major, info.minor) == ("1", "34")
    assert info.git_tree_state == "clean"


def test_gpu_nodes_are_ready_with_gpus(control_plane: cluster.ControlPlane) -> None:
    nodes = control_plane.core.list_node(label_selector="nvidia.com/gpu.present=true").items
    assert len(nodes) == devcluster.DEFAULT_NODES
    for node in nodes:
        labels = node.metadata.labels
        assert labels["nvidia.com/gpu.product"] == devcluster.DEFAULT_GPU_PRODUCT
        assert labels["nvidia.com/gpu.count"] == str(devcluster.DEFAULT_GPUS_PER_NODE)
        assert node.status.allocatable[GPU] == str(devcluster.DEFAULT_GPUS_PER_NODE)
        assert node.status.capacity[GPU] == str(devcluster.DEFAULT_GPUS_PER_NODE)
        ready = [c for c in node.status.conditions if c.type == "Ready"]
        assert ready
        assert ready[0].status == "True"
        assert not [t for t in node.spec.taints or [] if t.effect == "NoSchedule"]


def test_gpu_pod_is_scheduled_and_runs(control_plane: cluster.ControlPlane, namespace: str) -> None:
    core = control_plane.core
    core.create_namespaced_pod(namespace, gpu_pod("one-gpu", 1))

    def running() -> client.V1Pod | None:
        pod = core.read_namespaced_pod("one-gpu", namespace)
        return pod if pod.status.phase == "Running" and pod_ready(pod) else None

    pod = cluster.wait_for("Pod one-gpu Running and Ready", running, timeout=90)
    assert pod.spec.node_name in gpu_node_names(control_plane)
    assert pod.status.pod_ip


def test_pod_asking_too_many_gpus_stays_pending(
    control_plane: cluster.ControlPlane, namespace: str
) -> None:
    core = control_plane.core
    too_many = devcluster.DEFAULT_GPUS_PER_NODE + 1
    core.create_namespaced_pod(namespace, gpu_pod("greedy", too_many))

    def failed_scheduling() -> client.CoreV1Event | None:
        events = core.list_namespaced_event(
            namespace, field_selector="involvedObject.name=greedy,reason=FailedScheduling"
        ).items
        return events[0] if events else None

    event = cluster.wait_for(
        "a FailedScheduling event for Pod greedy", failed_scheduling, timeout=60
    )
    assert f"Insufficient {GPU}" in event.message

    def unschedulable() -> client.V1PodCondition | None:
        pod = core.read_namespaced_pod("greedy", namespace)
        conditions = [c for c in pod.status.conditions or [] if c.type == "PodScheduled"]
        return conditions[0] if conditions and conditions[0].status == "False" else None

    condition = cluster.wait_for("Pod greedy PodScheduled=False", unschedulable, timeout=30)
    assert condition.reason == "Unschedulable"
    assert f"Insufficient {GPU}" in condition.message
    pod = core.read_namespaced_pod("greedy", namespace)
    assert pod.status.phase == "Pending"
    assert not pod.spec.node_name


def test_garbage_collector_deletes_dependents(
    control_plane: cluster.ControlPlane, namespace: str
) -> None:
    core = control_plane.core
    owner = core.create_namespaced_config_map(
        namespace, {"metadata": {"name": "owner"}, "data": {"k": "v"}}
    )
    ref = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "name": "owner",
        "uid": owner.metadata.uid,
    }
    core.create_namespaced_config_map(
        namespace, {"metadata": {"name": "dependent", "ownerReferences": [ref]}}
    )
    core.delete_namespaced_config_map("owner", namespace)

    def dependent_gone() -> bool:
        try:
            core.read_namespaced_config_map("dependent", namespace)
        except ApiException as exc:
            if exc.status == 404:
                return True
            raise
        return False

    cluster.wait_for(
        "the garbage collector to delete ConfigMap dependent", dependent_gone, timeout=60
    )


def test_deployment_pods_become_ready(control_plane: cluster.ControlPlane, namespace: str) -> None:
    apps = control_plane.apps
    labels = {"app": "web"}
    pod_spec = gpu_pod("web", 1)["spec"]
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web", "labels": labels},
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": labels},
            "template": {"metadata": {"labels": labels}, "spec": pod_spec},
        },
    }
    apps.create_namespaced_deployment(namespace, deployment)

    def ready() -> client.V1Deployment | None:
        d = apps.read_namespaced_deployment("web", namespace)
        return d if (d.status.ready_replicas or 0) == 2 else None

    cluster.wait_for("Deployment web to have 2 ready replicas", ready, timeout=90)
    pods = control_plane.core.list_namespaced_pod(namespace, label_selector="app=web").items
    assert len(pods) == 2
    assert all(pod_ready(p) for p in pods)
    assert {p.spec.node_name for p in pods} <= gpu_node_names(control_plane)
    owners = {p.metadata.owner_references[0].kind for p in pods}
    assert owners == {"ReplicaSet"}


def test_rbac_is_enforced(control_plane: cluster.ControlPlane) -> None:
    authz = client.AuthorizationV1Api(control_plane.api_client)

    def can(user: str, groups: list[str], verb: str, resource: str) -> bool:
        review = authz.create_subject_access_review(
            {
                "apiVersion": "authorization.k8s.io/v1",
                "kind": "SubjectAccessReview",
                "spec": {
                    "user": user,
                    "groups": groups,
                    "resourceAttributes": {"verb": verb, "resource": resource},
                },
            }
        )
        return bool(review.status.allowed)

    sa = "system:serviceaccount:default:default"
    assert not can(sa, ["system:serviceaccounts", "system:authenticated"], "list", "secrets")
    assert can("someone", ["system:masters"], "list", "secrets")


def test_pod_security_admission_is_enforced(control_plane: cluster.ControlPlane) -> None:
    name = control_plane.create_namespace(
        "psa", labels={"pod-security.kubernetes.io/enforce": "restricted"}
    )
    try:
        pod = gpu_pod("privileged", 0)
        pod["spec"]["containers"][0]["securityContext"] = {"privileged": True}
        with pytest.raises(ApiException) as info:
            control_plane.core.create_namespaced_pod(name, pod)
        assert info.value.status == 403
        assert "violates PodSecurity" in info.value.body
    finally:
        control_plane.delete_namespace(name)


def test_third_party_crds_validate_objects(
    control_plane: cluster.ControlPlane, namespace: str
) -> None:
    scaled_object = {
        "apiVersion": "keda.sh/v1alpha1",
        "kind": "ScaledObject",
        "metadata": {"name": "so", "namespace": namespace},
        "spec": {
            "scaleTargetRef": {"name": "web"},
            "triggers": [
                {
                    "type": "prometheus",
                    "metadata": {
                        "serverAddress": "http://prometheus:9090",
                        "query": "sum(vllm:num_requests_waiting)",
                        "threshold": "4",
                    },
                }
            ],
        },
    }
    service_monitor = {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "ServiceMonitor",
        "metadata": {"name": "sm", "namespace": namespace},
        "spec": {"selector": {"matchLabels": {"app": "web"}}, "endpoints": [{"port": "http"}]},
    }
    for obj in (scaled_object, service_monitor):
        applied = control_plane.apply(obj)
        assert applied.metadata.uid
    # Well-typed but invalid: the CRD's schema requires spec.scaleTargetRef.
    bad = dict(scaled_object, spec={"triggers": scaled_object["spec"]["triggers"]})
    with pytest.raises(ApiException) as info:
        control_plane.apply(bad)
    assert info.value.status == 422
    assert "spec.scaleTargetRef: Required value" in info.value.body


def test_up_is_idempotent_and_down_stops_everything(control_plane: cluster.ControlPlane) -> None:
    # A second, smaller cluster with another GPU product, next to the session's.
    cfg = devcluster.ClusterConfig(
        name=f"{control_plane.config.name}-small",
        nodes=1,
        gpus_per_node=4,
        gpu_product="NVIDIA-L4",
    )
    pids: list[int | None] = []
    try:
        first = devcluster.up(cfg)
        second = devcluster.up(cfg)
        assert second.server == first.server
        st = devcluster.status(cfg)
        assert st.up
        pids = [c.pid for c in st.components]
        assert len(pids) == len(devcluster.COMPONENTS)
        with kube_config.new_client_from_config(config_file=str(first.kubeconfig)) as api_client:
            nodes = client.CoreV1Api(api_client).list_node().items
        assert [n.metadata.labels["nvidia.com/gpu.product"] for n in nodes] == ["NVIDIA-L4"]
        assert nodes[0].status.allocatable[GPU] == "4"
    finally:
        devcluster.down(cfg)
    assert not devcluster.status(cfg).up
    assert not cfg.state_dir.exists()
    for pid in pids:
        assert pid is not None
        assert not pid_running(pid), f"pid {pid} still running after down"


def pid_running(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"
