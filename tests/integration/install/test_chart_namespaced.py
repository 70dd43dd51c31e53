"""The chart's namespaced mode: Roles in the listed namespaces only, and nothing cluster-wide.

Installed with ci/namespaced-values.yaml (watchNamespaces team-a and team-b, no node
reads, the NetworkPolicy on), the operator runs with the release's ServiceAccount
token and `--namespace` for each watched namespace, takes an example to Ready in
team-a, and `kubectl auth can-i` shows it can do nothing outside team-a and team-b
(its own namespace's Lease aside) and nothing cluster-scoped.
"""

from __future__ import annotations

import pathlib
from collections.abc import Iterator

import pytest
import yaml

from tests.integration import cluster, test_operator
from tests.integration.install import conftest as install
from tests.integration.install import rbac

pytestmark = pytest.mark.integration

VALUES = install.CHART / "ci" / "namespaced-values.yaml"
RELEASE = "team-ops"
NAMESPACE = "team-ops"
FULLNAME = "team-ops-llm-operator"
WATCHED = tuple(yaml.safe_load(VALUES.read_text(encoding="utf-8"))["watchNamespaces"])


@pytest.fixture(scope="module")
def release(plane: cluster.ControlPlane, helm: pathlib.Path) -> Iterator[cluster.ControlPlane]:
    existing = {ns.metadata.name for ns in plane.core.list_namespace().items}
    for name in (NAMESPACE, *WATCHED):
        if name not in existing:
            plane.core.create_namespace({"metadata": {"name": name}})
    install.run(
        [
            helm,
            "install",
            RELEASE,
            install.CHART,
            "-n",
            NAMESPACE,
            "--values",
            VALUES,
            "--wait",
            "--timeout",
            "3m",
        ],
        kubeconfig=plane.kubeconfig,
    )
    yield plane
    install.run([helm, "uninstall", RELEASE, "-n", NAMESPACE, "--wait"], plane.kubeconfig)


def test_operator_watching_listed_namespaces_reconciles_with_roles_only(
    release: cluster.ControlPlane, tmp_path: pathlib.Path
) -> None:
    kubeconfig = install.service_account_kubeconfig(
        release, NAMESPACE, FULLNAME, tmp_path / "sa.kubeconfig"
    )
    args = install.chart_args(release, NAMESPACE, FULLNAME)
    assert [f"--namespace={name}" for name in WATCHED] == [
        a for a in args if a.startswith("--namespace=")
    ]
    assert "--no-read-nodes" in args
    proc = install.OperatorProcess(kubeconfig, tmp_path / "operator.log", args)
    doc = test_operator.load(install.ROOT / "examples" / "minimal.yaml")
    with install.operators(proc.start()):
        test_operator.create(release, WATCHED[0], doc)
        try:
            obj = test_operator.wait_ready(release, WATCHED[0], doc["metadata"]["name"])
        except BaseException:
            print(proc.text()[-4000:])
            raise
        assert obj["status"]["phase"] == "Ready"
        assert proc.metric("llm_operator_api_errors_total", code="403") == 0.0
        log = proc.text()
        # No node reads granted: the status simply cannot check GPU capacity (no error).
        assert "Not enough permissions" not in log, log[-4000:]
        assert "Forbidden" not in log, log[-4000:]


def test_can_i_matrix_namespaced(
    release: cluster.ControlPlane, kubectl: pathlib.Path, tmp_path: pathlib.Path
) -> None:
    subject = f"system:serviceaccount:{NAMESPACE}:{FULLNAME}"
    elsewhere = release.create_namespace("other")
    must = [check for name in WATCHED for check in rbac.allowed(name)]
    must.append(
        rbac.Check("update", "leases.coordination.k8s.io", NAMESPACE, name=f"{FULLNAME}-leader")
    )
    never = [
        *rbac.refused_in(None),
        *rbac.refused_cluster(),
        *[check for name in WATCHED for check in rbac.refused_in(name)],
        *[rbac.Check(c.verb, c.resource, elsewhere, c.subresource) for c in rbac.allowed("x")],
        *[rbac.Check(c.verb, c.resource, NAMESPACE, c.subresource) for c in rbac.allowed("x")],
        rbac.Check("list", "nodes"),
        rbac.Check("list", "namespaces"),
        rbac.Check("watch", "customresourcedefinitions.apiextensions.k8s.io"),
    ]
    answers = rbac.can_i(kubectl, release.kubeconfig, tmp_path / "cache", subject, must + never)
    assert [str(c) for c in must if not answers[c]] == []
    assert [str(c) for c in never if answers[c]] == []
    release.delete_namespace(elsewhere)
