"""The operator's /metrics, scraped over HTTP while it reconciles against a real API server."""

from __future__ import annotations

import urllib.request

from prometheus_client import parser

from tests.integration import cluster, conftest
from tests.integration import test_operator as ops


def scrape(operator: conftest.Operator) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    with urllib.request.urlopen(operator.metrics_url, timeout=10) as response:
        text = response.read().decode()
    out = {}
    for family in parser.text_string_to_metric_families(text):
        for sample in family.samples:
            out[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return out


def value(
    got: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str, **labels: str
) -> float | None:
    return got.get((name, frozenset(labels.items())))


def test_operator_metrics_follow_an_llmdeployment(
    operator: conftest.Operator, namespace: str
) -> None:
    plane = operator.plane
    doc = ops.load(conftest.ROOT / "examples" / "minimal.yaml")
    doc["spec"]["resources"] = {**doc["spec"].get("resources", {}), "gpus": 2}
    ops.create(plane, namespace, doc)
    obj = ops.wait_ready(plane, namespace, "llama-8b")
    ready = obj["status"]["readyReplicas"]
    obj_labels = {"namespace": namespace, "llmdeployment": "llama-8b"}

    def figures_current() -> dict[tuple[str, frozenset[tuple[str, str]]], float] | None:
        got = scrape(operator)
        phase = value(got, "llm_operator_llmdeployment_phase", **obj_labels, phase="Ready")
        return got if phase == 1 else None

    got = cluster.wait_for("the Ready phase in the metrics", figures_current, timeout=30)
    assert value(got, "llm_operator_llmdeployment_ready_replicas", **obj_labels) == ready
    assert value(got, "llm_operator_llmdeployment_desired_replicas", **obj_labels) == ready
    assert value(got, "llm_operator_llmdeployment_unavailable_replicas", **obj_labels) == 0
    assert value(got, "llm_operator_llmdeployment_pods", **obj_labels, phase="Running") == ready
    assert (
        value(
            got,
            "llm_operator_llmdeployment_condition",
            **obj_labels,
            condition="Ready",
            status="True",
        )
        == 1
    )
    assert (
        value(got, "llm_operator_llmdeployment_gpus", **obj_labels, gpu_type="unspecified")
        == 2 * ready
    )
    assert value(got, "llm_operator_llmdeployments", namespace=namespace, phase="Ready") == 1
    assert (
        value(got, "llm_operator_reconciles_total", trigger="change", result="success") or 0
    ) >= 1
    assert (value(got, "llm_operator_children_applied_total", kind="Deployment") or 0) >= 1
    assert (value(got, "llm_operator_api_requests_total", operation="apply") or 0) >= 1
    assert value(got, "llm_operator_leader") == 1

    # GPU-hours only grow while the Pods hold GPUs.
    hours = value(
        got, "llm_operator_llmdeployment_gpu_hours_total", **obj_labels, gpu_type="unspecified"
    )
    assert hours is not None

    def grown() -> bool:
        later = value(
            scrape(operator),
            "llm_operator_llmdeployment_gpu_hours_total",
            **obj_labels,
            gpu_type="unspecified",
        )
        return later is not None and later > hours

    cluster.wait_for("GPU-hours to grow", grown, timeout=10)

    # A spec the operator refuses is counted as such.
    before = value(got, "llm_operator_reconciles_total", trigger="change", result="invalid_spec")
    ops.patch_spec(
        plane,
        namespace,
        "llama-8b",
        {"guardrails": {"enabled": True, "input": {"denyPatterns": {"patterns": ["(unclosed"]}}}},
    )

    def refused() -> bool:
        got = scrape(operator)
        count = (
            value(got, "llm_operator_reconciles_total", trigger="change", result="invalid_spec")
            or 0
        )
        failed = value(got, "llm_operator_llmdeployment_phase", **obj_labels, phase="Failed")
        return count > (before or 0) and failed == 1

    cluster.wait_for("the refusal in the metrics", refused, timeout=30)

    # Deleting the object removes its series (the resync notices within its period).
    ops.llmd_resource(plane).delete(name="llama-8b", namespace=namespace)

    def gone() -> bool:
        got = scrape(operator)
        return all(dict(key[1]).get("llmdeployment") != "llama-8b" for key in got)

    cluster.wait_for("the deleted object's series gone", gone, timeout=30)
