"""The chart: lint, every ci/ values file accepted by the API server, install, helm test, uninstall.

`helm install` goes into the local control plane: the CRD becomes Established and the
operator Deployment Available on the simulated nodes (kwok runs no containers; its
stages make the Pods Ready), in a namespace that enforces the restricted Pod
Security profile. The operator then runs here as a process with the credentials of
the chart's ServiceAccount (a TokenRequest token) and takes every example to Ready,
which proves the chart's RBAC sufficient; test_rbac.py proves it no broader.
`helm uninstall` leaves only what docs/helm.md says it keeps.
"""

from __future__ import annotations

import pathlib
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import pytest
import yaml

from llm_operator import cli
from llm_operator.builders import signals
from tests.integration import cluster, test_operator
from tests.integration.install import conftest as install
from tests.integration.install import rbac

pytestmark = pytest.mark.integration

CHART = install.CHART
CI_VALUES = sorted((CHART / "ci").glob("*-values.yaml"))
RELEASE = "llm-operator"
NAMESPACE = "llm-system"
FULLNAME = "llm-operator"  # the release name contains the chart name
RESTRICTED = {
    "pod-security.kubernetes.io/enforce": "restricted",
    "pod-security.kubernetes.io/enforce-version": "latest",
}


def documents(text: str) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(text) if doc]


def template(
    helm: pathlib.Path, *args: str | pathlib.Path, namespace: str = NAMESPACE
) -> list[dict[str, Any]]:
    out = install.run([helm, "template", RELEASE, CHART, "-n", namespace, *args])
    return documents(out.stdout)


def test_chart_yaml_pins_what_the_issue_asks() -> None:
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text(encoding="utf-8"))
    assert chart["apiVersion"] == "v2"
    assert chart["kubeVersion"].startswith(">=")
    values = yaml.safe_load((CHART / "values.yaml").read_text(encoding="utf-8"))
    for image in (values["image"], values["gateway"]["image"]):
        assert image["tag"]
        assert image["tag"] != "latest"


@pytest.mark.parametrize("values", [None, *CI_VALUES], ids=lambda v: v.name if v else "none")
def test_helm_lint_strict(helm: pathlib.Path, values: pathlib.Path | None) -> None:
    extra = ["--values", str(values)] if values else []
    out = install.run([helm, "lint", "--strict", CHART, *extra])
    assert "0 chart(s) failed" in out.stdout


@pytest.mark.parametrize(
    ("setting", "message"),
    [
        ("imag.tag=x", "additional properties 'imag' not allowed"),
        ("replicaCount=two", "/replicaCount"),
        ("leaderElection.enabled=false", "/replicaCount"),
        ("image.tag=latest", "/image/tag"),
        ("metrics.port=99999", "/metrics/port"),
        ("leaderElection.renewDeadlineSeconds=15", "renewDeadlineSeconds must be shorter"),
        ("gateway.defaultPolicy.inptu.pii.action=block", "'inptu' not allowed"),
        ("gateway.defaultPolicy.input.pii.action=shout", "/gateway/defaultPolicy/input/pii/action"),
    ],
)
def test_a_wrong_value_fails_naming_it(helm: pathlib.Path, setting: str, message: str) -> None:
    out = install.run([helm, "template", RELEASE, CHART, "--set", setting], check=False)
    assert out.returncode != 0
    assert message in out.stderr


@pytest.mark.parametrize("values", CI_VALUES, ids=lambda v: v.name)
def test_every_object_passes_a_server_side_dry_run(
    plane: cluster.ControlPlane, helm: pathlib.Path, kubectl: pathlib.Path, values: pathlib.Path
) -> None:
    namespace = plane.create_namespace("dry", labels=RESTRICTED)
    objects = template(helm, "--values", values, namespace=namespace)
    assert objects, f"{values.name} renders nothing"
    for extra in yaml.safe_load(values.read_text(encoding="utf-8")).get("watchNamespaces") or []:
        if extra not in {ns.metadata.name for ns in plane.core.list_namespace().items}:
            plane.core.create_namespace({"metadata": {"name": extra}})
    out = install.run(
        [
            kubectl,
            "apply",
            "--server-side",
            "--dry-run=server",
            "--validate=strict",
            "--field-manager=chart-ci",
            "-o",
            "name",
            "-f",
            "-",
        ],
        kubeconfig=plane.kubeconfig,
        input_text=yaml.safe_dump_all(objects),
    )
    assert len(out.stdout.split()) == len(objects), out.stdout
    plane.delete_namespace(namespace)


def test_dashboards_are_read_from_the_files_zero_or_more(
    helm: pathlib.Path, tmp_path: pathlib.Path
) -> None:
    shipped = sorted(p.name for p in (CHART / "dashboards").glob("*.json"))
    objects = template(helm, "--set", "dashboards.enabled=true")
    maps = [
        o for o in objects if o["kind"] == "ConfigMap" and "-dashboard-" in o["metadata"]["name"]
    ]
    assert sorted(next(iter(m["data"])) for m in maps) == shipped
    # The same template with two more files in a copy of the chart.
    copy = tmp_path / "llm-operator"
    subprocess.run(["cp", "-r", str(CHART), str(copy)], check=True)
    for name in ("fleet", "cost"):
        (copy / "dashboards" / f"{name}.json").write_text(
            f'{{"title": "{name}", "panels": []}}', encoding="utf-8"
        )
    out = install.run([helm, "template", RELEASE, copy, "--set", "dashboards.enabled=true"])
    maps = [
        o
        for o in documents(out.stdout)
        if o["kind"] == "ConfigMap" and "-dashboard-" in o["metadata"]["name"]
    ]
    assert len(maps) == len(shipped) + 2
    for m in maps:
        assert m["metadata"]["labels"]["grafana_dashboard"] == "1"
        ((key, text),) = m["data"].items()
        assert key.endswith(".json")
        assert yaml.safe_load(text)["title"]


@pytest.fixture(scope="module")
def release(plane: cluster.ControlPlane, helm: pathlib.Path) -> Iterator[cluster.ControlPlane]:
    """The chart installed with its defaults into NAMESPACE (restricted Pod Security)."""
    plane.core.create_namespace({"metadata": {"name": NAMESPACE, "labels": RESTRICTED}})
    install.run(
        [helm, "install", RELEASE, CHART, "-n", NAMESPACE, "--wait", "--timeout", "3m"],
        kubeconfig=plane.kubeconfig,
    )
    yield plane
    install.run([helm, "uninstall", RELEASE, "-n", NAMESPACE], plane.kubeconfig, check=False)


def test_install_establishes_the_crd_and_runs_two_replicas(release: cluster.ControlPlane) -> None:
    ext = release.dynamic.resources.get(
        api_version="apiextensions.k8s.io/v1", kind="CustomResourceDefinition"
    )
    crd = ext.get(name="llmdeployments.llmoperator.io").to_dict()
    conditions = {c["type"]: c["status"] for c in crd["status"]["conditions"]}
    assert conditions["Established"] == "True"
    deployment = release.apps.read_namespaced_deployment(FULLNAME, NAMESPACE)
    available = {c.type: c.status for c in deployment.status.conditions}
    assert available["Available"] == "True"
    assert deployment.status.ready_replicas == 2
    pods = release.core.list_namespaced_pod(
        NAMESPACE, label_selector=f"app.kubernetes.io/instance={RELEASE}"
    ).items
    assert len(pods) == 2
    nodes = {pod.spec.node_name for pod in pods}
    assert all(node.startswith("gpu-node-") for node in nodes)
    for pod in pods:
        container = pod.spec.containers[0]
        assert container.security_context.read_only_root_filesystem
        assert container.liveness_probe.http_get.path == "/healthz"
        assert container.liveness_probe.http_get.port == "health"
        ports = {p.name: p.container_port for p in container.ports}
        assert ports == {"health": 8080, "metrics": 8081}


def test_the_chart_args_are_what_the_operator_accepts(release: cluster.ControlPlane) -> None:
    deployment = release.apps.read_namespaced_deployment(FULLNAME, NAMESPACE)
    args = deployment.spec.template.spec.containers[0].args
    # The parser of the image's entry point, `llm-operator`.
    parsed = cli.parser().parse_args(args)
    assert parsed.command == "run"
    assert parsed.leader_election
    assert parsed.lease_name == f"{FULLNAME}-leader"
    assert parsed.lease_namespace == NAMESPACE
    assert parsed.metrics_port == 8081
    assert parsed.liveness == "http://0.0.0.0:8080/healthz"
    assert parsed.renew_deadline_seconds < parsed.lease_seconds


def test_helm_test_hook_completes(release: cluster.ControlPlane, helm: pathlib.Path) -> None:
    # kwok completes the Job's Pod without running it: this proves the hook is accepted,
    # scheduled and awaited by helm; the check the Job runs is run for real below, in
    # test_operator_with_the_chart_credentials_reconciles_every_example.
    out = install.run(
        [helm, "test", RELEASE, "-n", NAMESPACE, "--timeout", "2m"], release.kubeconfig
    )
    assert "Phase:          Succeeded" in out.stdout or "Succeeded" in out.stdout, out.stdout


def test_operator_with_the_chart_credentials_reconciles_every_example(
    release: cluster.ControlPlane, helm: pathlib.Path, tmp_path: pathlib.Path
) -> None:
    kubeconfig = install.service_account_kubeconfig(
        release, NAMESPACE, FULLNAME, tmp_path / "sa.kubeconfig"
    )
    workload = release.create_namespace("apps", labels=RESTRICTED)
    args = install.chart_args(release, NAMESPACE, FULLNAME)
    proc = install.OperatorProcess(kubeconfig, tmp_path / "operator.log", args)
    with install.operators(proc.start()):
        for index, path in enumerate(test_operator.EXAMPLES):
            doc = test_operator.load(path)
            if (doc["spec"].get("modelCache") or {}).get("enabled"):
                test_operator.provide_volume(release, f"pv-{workload}-{index}")
            test_operator.create(release, workload, doc)
        for path in test_operator.EXAMPLES:
            name = test_operator.load(path)["metadata"]["name"]
            try:
                test_operator.wait_ready(release, workload, name, timeout=120)
            except BaseException:
                print(proc.text()[-4000:])
                raise
        assert proc.metric("llm_operator_api_errors_total", code="403") == 0.0
        assert proc.metric("llm_operator_leader") == 1.0
        log = proc.text()
        assert "Forbidden" not in log, log[-4000:]
        # The helm test hook's own check, run here against this process's metrics...
        hooks = documents(
            install.run([helm, "get", "hooks", RELEASE, "-n", NAMESPACE], release.kubeconfig).stdout
        )
        (job,) = [h for h in hooks if h["kind"] == "Job"]
        container = job["spec"]["template"]["spec"]["containers"][0]
        assert container["command"][0] == "python"
        url = f"http://127.0.0.1:{proc.metrics_port}/metrics"
        checked = hook_check(container["command"][1:], url)
        assert checked.returncode == 0, checked.stderr
        assert "the operator's metrics are served" in checked.stdout
        # ...and against an endpoint without them (the health port): it fails, naming them.
        failed = hook_check(
            container["command"][1:], f"http://127.0.0.1:{proc.health_port}/healthz"
        )
        assert failed.returncode != 0
        assert "llm_operator_build_info" in failed.stderr
    release.delete_namespace(workload)


def hook_check(args: list[str], url: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, *args],
        capture_output=True,
        text=True,
        env={"METRICS_URL": url},
        check=False,
        timeout=30,
    )


def test_cluster_role_is_exactly_the_operators_calls(helm: pathlib.Path) -> None:
    objects = template(helm)
    (role,) = [o for o in objects if o["kind"] == "ClusterRole"]
    expected = {
        **rbac.namespaced_rules(),
        ("apiextensions.k8s.io", "customresourcedefinitions"): frozenset({"list", "watch"}),
        ("", "nodes"): frozenset({"list"}),
    }
    assert rbac.rules_of(role) == expected
    for obj in objects:
        for rule in obj.get("rules") or []:
            assert "*" not in rule["verbs"] + rule["resources"] + rule["apiGroups"], rule
    (lease_role,) = [o for o in objects if o["kind"] == "Role"]
    assert lease_role["metadata"]["namespace"] == NAMESPACE
    assert rbac.rules_of(lease_role) == {
        ("coordination.k8s.io", "leases"): frozenset({"create", "get", "update"})
    }
    (named,) = [r for r in lease_role["rules"] if "resourceNames" in r]
    assert named["resourceNames"] == [f"{FULLNAME}-leader"]
    assert sorted(named["verbs"]) == ["get", "update"]


def test_can_i_matrix_cluster_wide(
    release: cluster.ControlPlane, kubectl: pathlib.Path, tmp_path: pathlib.Path
) -> None:
    subject = f"system:serviceaccount:{NAMESPACE}:{FULLNAME}"
    somewhere = release.create_namespace("any")
    must = [
        *rbac.allowed(somewhere),
        rbac.Check("list", "nodes"),
        rbac.Check("list", "customresourcedefinitions.apiextensions.k8s.io"),
        rbac.Check("watch", "customresourcedefinitions.apiextensions.k8s.io"),
        rbac.Check("create", "leases.coordination.k8s.io", NAMESPACE),
        rbac.Check("get", "leases.coordination.k8s.io", NAMESPACE, name=f"{FULLNAME}-leader"),
        rbac.Check("update", "leases.coordination.k8s.io", NAMESPACE, name=f"{FULLNAME}-leader"),
    ]
    never = [
        *rbac.refused_in(somewhere),
        *rbac.refused_in(NAMESPACE),
        *rbac.refused_in(None),
        *rbac.refused_cluster(),
        rbac.Check("get", "leases.coordination.k8s.io", NAMESPACE, name="other-lease"),
        rbac.Check("update", "leases.coordination.k8s.io", NAMESPACE, name="other-lease"),
        rbac.Check("create", "leases.coordination.k8s.io", somewhere),
        rbac.Check("get", "nodes"),
    ]
    answers = rbac.can_i(kubectl, release.kubeconfig, tmp_path / "cache", subject, must + never)
    assert [str(c) for c in must if not answers[c]] == []
    assert [str(c) for c in never if answers[c]] == []
    release.delete_namespace(somewhere)


KEPT_KINDS = (
    ("apps/v1", "Deployment"),
    ("v1", "Service"),
    ("v1", "ServiceAccount"),
    ("v1", "ConfigMap"),
    ("policy/v1", "PodDisruptionBudget"),
    ("batch/v1", "Job"),
    ("networking.k8s.io/v1", "NetworkPolicy"),
    ("rbac.authorization.k8s.io/v1", "Role"),
    ("rbac.authorization.k8s.io/v1", "RoleBinding"),
    ("rbac.authorization.k8s.io/v1", "ClusterRole"),
    ("rbac.authorization.k8s.io/v1", "ClusterRoleBinding"),
    ("monitoring.coreos.com/v1", "ServiceMonitor"),
    ("monitoring.coreos.com/v1", "PrometheusRule"),
)


def release_objects(plane: cluster.ControlPlane, release_name: str) -> list[str]:
    """Every object labelled as part of the release, in any namespace."""
    found = []
    for api_version, kind in KEPT_KINDS:
        resource = plane.dynamic.resources.get(api_version=api_version, kind=kind)
        items = resource.get(label_selector=f"app.kubernetes.io/instance={release_name}")
        found += [f"{kind}/{item.metadata.name}" for item in items.items]
    return found


def test_uninstall_leaves_only_what_the_docs_say(
    release: cluster.ControlPlane, helm: pathlib.Path
) -> None:
    assert release_objects(release, RELEASE)
    kept = release.create_namespace("kept")
    test_operator.create(release, kept, test_operator.load(test_operator.EXAMPLES[0]))
    install.run([helm, "uninstall", RELEASE, "-n", NAMESPACE, "--wait"], release.kubeconfig)
    assert release_objects(release, RELEASE) == []
    cluster.wait_for(
        "the operator's Pods to go",
        lambda: (
            not release.core.list_namespaced_pod(
                NAMESPACE, label_selector=f"app.kubernetes.io/instance={RELEASE}"
            ).items
        ),
        timeout=60,
    )
    # Kept, as docs/helm.md says: the CRD and every LLMDeployment, and the Lease the
    # operator wrote at run time.
    ext = release.dynamic.resources.get(
        api_version="apiextensions.k8s.io/v1", kind="CustomResourceDefinition"
    )
    assert ext.get(name="llmdeployments.llmoperator.io").metadata.name
    name = test_operator.load(test_operator.EXAMPLES[0])["metadata"]["name"]
    assert test_operator.get(release, kept, name)["metadata"]["name"] == name
    lease = release.dynamic.resources.get(api_version="coordination.k8s.io/v1", kind="Lease")
    assert lease.get(name=f"{FULLNAME}-leader", namespace=NAMESPACE).metadata.name
    release.delete_namespace(kept)


def test_namespaced_mode_reads_capacity_cluster_wide_only_when_asked(helm: pathlib.Path) -> None:
    with_reads = template(helm, "--set", "watchNamespaces={team-a}")
    (capacity,) = [o for o in with_reads if o["kind"] == "ClusterRole"]
    assert rbac.rules_of(capacity) == {
        ("", "nodes"): frozenset({"list"}),
        ("", "pods"): frozenset({"list"}),
    }
    (role,) = [
        o for o in with_reads if o["kind"] == "Role" and o["metadata"]["namespace"] == "team-a"
    ]
    assert rbac.rules_of(role) == rbac.namespaced_rules()
    without = template(helm, "--set", "watchNamespaces={team-a}", "--set", "rbac.readNodes=false")
    assert [o["kind"] for o in without if o["kind"].startswith("Cluster")] == []


def test_prometheus_adapter_rules_are_the_builders(helm: pathlib.Path) -> None:
    objects = template(helm, "--set", "prometheusAdapter.enabled=true")
    (config,) = [o for o in objects if o["metadata"]["name"].endswith("-prometheus-adapter")]
    rules = yaml.safe_load(config["data"]["config.yaml"])
    assert rules == signals.prometheus_adapter_rules()
    names = {rule["name"]["as"] for rule in rules["externalRules"]}
    assert set(signals.EXTERNAL_METRICS.values()) == names
