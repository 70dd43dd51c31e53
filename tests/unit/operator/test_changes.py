"""The apply/prune decision of one pass, without a cluster."""

from __future__ import annotations

from typing import Any

from llm_operator import changes
from llm_operator.builders import children

KINDS = {kind.kind: kind for kind in children.CHILD_KINDS}


def _obj(api_version: str, kind: str, name: str) -> dict[str, Any]:
    return {"apiVersion": api_version, "kind": kind, "metadata": {"name": name}}


def test_owned_children_not_desired_are_pruned_and_desired_ones_kept() -> None:
    desired = [_obj("apps/v1", "Deployment", "m"), _obj("v1", "Service", "m")]
    owned = {
        KINDS["Deployment"]: [{"metadata": {"name": "m"}}],
        KINDS["Service"]: [{"metadata": {"name": "m"}}],
        KINDS["ConfigMap"]: [{"metadata": {"name": "m-guardrails"}}],
    }
    change_set = changes.plan(desired, owned)
    assert change_set.apply == tuple(desired)
    assert [str(p) for p in change_set.prune] == ["ConfigMap/m-guardrails"]


def test_same_name_of_another_kind_is_not_a_match() -> None:
    desired = [_obj("v1", "Service", "m")]
    owned = {KINDS["Deployment"]: [{"metadata": {"name": "m"}}]}
    assert [str(p) for p in changes.plan(desired, owned).prune] == ["Deployment/m"]


def test_kinds_not_listed_are_never_pruned() -> None:
    # A kind whose CRD is missing has no entry in `owned`: nothing of it can be pruned.
    desired = [_obj("keda.sh/v1alpha1", "ScaledObject", "m")]
    assert changes.plan(desired, {}).prune == ()


def test_prune_follows_the_child_kind_order() -> None:
    owned = {
        KINDS["PrometheusRule"]: [{"metadata": {"name": "r"}}],
        KINDS["ServiceAccount"]: [{"metadata": {"name": "a"}}],
    }
    pruned = [p.kind.kind for p in changes.plan([], owned).prune]
    assert pruned == ["ServiceAccount", "PrometheusRule"]
