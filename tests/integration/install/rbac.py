"""What the operator's RBAC must allow and must refuse, and `kubectl auth can-i` to ask.

`namespaced_rules()` is the operator's namespaced work, derived from the kinds it
manages (`children.CHILD_KINDS`: applied with server-side apply = create + patch,
listed to find its own, deleted when pruned) plus the LLMDeployment, Pods and Events;
a child kind added to the builders without its rule in the chart fails the tests.
`refused()` lists what no mode may allow: wildcards, Secrets, anything on RBAC,
impersonation, Pods' exec, updates and deletes the operator never makes.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import pathlib
import subprocess
from typing import Any

from llm_operator.builders import children

CHILD_VERBS = frozenset({"list", "create", "patch", "delete"})


@dataclasses.dataclass(frozen=True)
class Check:
    """One `kubectl auth can-i` question."""

    verb: str
    resource: str  # resource[.group], as kubectl takes it
    namespace: str | None = None  # None: cluster-scoped, or --all-namespaces for namespaced
    subresource: str = ""
    name: str = ""

    def args(self) -> list[str]:
        target = f"{self.resource}/{self.name}" if self.name else self.resource
        args = [self.verb, target]
        if self.subresource:
            args.append(f"--subresource={self.subresource}")
        args += ["-n", self.namespace] if self.namespace else ["--all-namespaces"]
        return args

    def __str__(self) -> str:
        return " ".join(self.args())


def _resource(group: str, plural: str) -> str:
    return f"{plural}.{group}" if group else plural


def namespaced_rules() -> dict[tuple[str, str], frozenset[str]]:
    """(apiGroup, resource) -> verbs of the operator's work inside a watched namespace."""
    rules: dict[tuple[str, str], frozenset[str]] = {
        ("llmoperator.io", "llmdeployments"): frozenset({"get", "list", "watch", "patch"}),
        ("llmoperator.io", "llmdeployments/status"): frozenset({"patch"}),
        ("", "pods"): frozenset({"list"}),
        ("", "events"): frozenset({"create"}),
    }
    for kind in children.CHILD_KINDS:
        verbs = set(CHILD_VERBS)
        if (kind.group, kind.plural) == ("apps", "deployments"):
            verbs |= {"get", "watch"}  # read for status, watched by kopf
        rules[(kind.group, kind.plural)] = frozenset(verbs)
    return rules


def rules_of(role: dict[str, Any]) -> dict[tuple[str, str], frozenset[str]]:
    """The rules of a rendered (Cluster)Role, as (apiGroup, resource) -> verbs."""
    found: dict[tuple[str, str], set[str]] = {}
    for rule in role["rules"]:
        assert "resourceNames" not in rule or role["kind"] == "Role", rule
        for group in rule["apiGroups"]:
            for resource in rule["resources"]:
                found.setdefault((group, resource), set()).update(rule["verbs"])
    return {key: frozenset(verbs) for key, verbs in found.items()}


def allowed(namespace: str) -> list[Check]:
    """Every verb of `namespaced_rules()` in `namespace`."""
    checks = []
    for (group, resource), verbs in sorted(namespaced_rules().items()):
        plural, _, sub = resource.partition("/")
        for verb in sorted(verbs):
            checks.append(Check(verb, _resource(group, plural), namespace, subresource=sub))
    return checks


def refused_in(namespace: str | None) -> list[Check]:
    """What the operator never does, in `namespace` (None: across all namespaces)."""
    checks = [
        Check("*", "*", namespace),
        Check("get", "secrets", namespace),
        Check("list", "secrets", namespace),
        Check("watch", "secrets", namespace),
        Check("create", "secrets", namespace),
        Check("create", "pods", namespace),
        Check("delete", "pods", namespace),
        Check("get", "pods", namespace),
        Check("create", "pods", namespace, subresource="exec"),
        Check("create", "serviceaccounts", namespace, subresource="token"),
        Check("create", "llmdeployments.llmoperator.io", namespace),
        Check("delete", "llmdeployments.llmoperator.io", namespace),
        Check("update", "llmdeployments.llmoperator.io", namespace),
        Check("update", "llmdeployments.llmoperator.io", namespace, subresource="status"),
        Check("patch", "llmdeployments.llmoperator.io", namespace, subresource="scale"),
        Check("update", "deployments.apps", namespace),
        Check("deletecollection", "deployments.apps", namespace),
        Check("create", "roles.rbac.authorization.k8s.io", namespace),
        Check("create", "rolebindings.rbac.authorization.k8s.io", namespace),
        Check("bind", "roles.rbac.authorization.k8s.io", namespace),
        Check("escalate", "roles.rbac.authorization.k8s.io", namespace),
        Check("delete", "events", namespace),
        Check("delete", "leases.coordination.k8s.io", namespace),
    ]
    for kind in children.CHILD_KINDS:
        checks.append(Check("update", _resource(kind.group, kind.plural), namespace))
        if (kind.group, kind.plural) != ("apps", "deployments"):
            checks.append(Check("get", _resource(kind.group, kind.plural), namespace))
            checks.append(Check("watch", _resource(kind.group, kind.plural), namespace))
    return checks


def refused_cluster() -> list[Check]:
    """Cluster-scoped requests no mode may allow."""
    return [
        Check("*", "*"),
        Check("impersonate", "users"),
        Check("impersonate", "serviceaccounts"),
        Check("create", "clusterroles.rbac.authorization.k8s.io"),
        Check("create", "clusterrolebindings.rbac.authorization.k8s.io"),
        Check("escalate", "clusterroles.rbac.authorization.k8s.io"),
        Check("patch", "nodes"),
        Check("delete", "nodes"),
        Check("get", "secrets"),
        Check("list", "secrets"),
        Check("create", "customresourcedefinitions.apiextensions.k8s.io"),
        Check("patch", "customresourcedefinitions.apiextensions.k8s.io"),
        Check("delete", "customresourcedefinitions.apiextensions.k8s.io"),
        Check("delete", "namespaces"),
        Check("create", "namespaces"),
    ]


def can_i(
    kubectl: pathlib.Path,
    kubeconfig: pathlib.Path,
    cache: pathlib.Path,
    subject: str,
    checks: list[Check],
) -> dict[Check, bool]:
    """Ask `kubectl auth can-i ... --as=<subject>` for each check (as the admin)."""

    def ask(check: Check) -> bool:
        out = subprocess.run(
            [
                str(kubectl),
                "--kubeconfig",
                str(kubeconfig),
                "--cache-dir",
                str(cache),
                "auth",
                "can-i",
                *check.args(),
                f"--as={subject}",
            ],
            capture_output=True,
            text=True,
            check=False,
            timeout=60,
        )
        answer = out.stdout.strip().splitlines()[-1] if out.stdout.strip() else ""
        assert answer in ("yes", "no"), f"kubectl auth can-i {check}: {out.stdout} {out.stderr}"
        return answer == "yes"

    with concurrent.futures.ThreadPoolExecutor(max_workers=4) as pool:
        return dict(zip(checks, pool.map(ask, checks), strict=True))
