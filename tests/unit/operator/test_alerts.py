"""The alerts' shape: which alerts a spec gets, their annotations, their runbook sections."""

from __future__ import annotations

import re
from typing import Any

import pytest

from llm_operator.builders import alerts, children, common
from tests.unit.operator import conftest

RUNBOOKS = conftest.ROOT / "docs" / "runbooks.md"
BASE: dict[str, Any] = {
    "model": {"uri": "hf://org/model"},
    "observability": {"podMonitor": True, "prometheusRule": True},
}
AUTOSCALED = {**BASE, "guardrails": {"enabled": True}, "autoscaling": {"enabled": True}}


def target(spec: dict[str, Any]) -> common.Target:
    return children.target_from_object(
        {"metadata": {"name": "chat", "namespace": "prod"}, "spec": spec}
    )


def rules(spec: dict[str, Any], options: common.Options | None = None) -> list[dict[str, Any]]:
    rule = alerts.prometheus_rule(target(spec), options or common.Options())
    assert rule is not None
    found: list[dict[str, Any]] = rule["spec"]["groups"][0]["rules"]
    return found


def test_alert_set_follows_the_spec() -> None:
    plain = {r["alert"] for r in rules(BASE)}
    full = {r["alert"] for r in rules(AUTOSCALED)}
    common_alerts = {
        "LLMDeploymentDown",
        "LLMEngineMetricsAbsent",
        "LLMReplicasUnavailable",
        "LLMGPUShortage",
        "LLMQueueBacklog",
        "LLMTimeToFirstTokenHigh",
        "LLMKVCacheSaturated",
        "LLMErrorRateHigh",
    }
    assert plain == common_alerts
    assert full == common_alerts | {"LLMAutoscalerAtMax", "LLMGuardrailBlockSpike"}
    assert (
        alerts.prometheus_rule(target({"model": {"uri": "hf://org/m"}}), common.Options()) is None
    )


def test_error_rate_reads_the_gateway_or_the_engine() -> None:
    (engine,) = [r for r in rules(BASE) if r["alert"] == "LLMErrorRateHigh"]
    (gateway,) = [r for r in rules(AUTOSCALED) if r["alert"] == "LLMErrorRateHigh"]
    assert 'finished_reason="error"' in engine["expr"]
    assert "llm_gateway_requests_total" in gateway["expr"]
    assert 'route=~"/v1/.+"' in gateway["expr"]


@pytest.mark.parametrize("spec", [BASE, AUTOSCALED], ids=["plain", "autoscaled"])
def test_every_alert_is_documented_and_labelled(spec: dict[str, Any]) -> None:
    options = common.Options(runbook_url="https://example.test/runbooks.md")
    sections = set(re.findall(r"^## (\w+)$", RUNBOOKS.read_text(encoding="utf-8"), re.M))
    for rule in rules(spec, options):
        name = rule["alert"]
        assert name in sections, f"docs/runbooks.md has no section for {name}"
        annotations = rule["annotations"]
        assert set(annotations) == {"summary", "description", "runbook_url"}
        assert annotations["runbook_url"] == f"https://example.test/runbooks.md#{name.lower()}"
        assert rule["labels"]["llmdeployment"] == "chat"
        assert rule["labels"]["namespace"] == "prod"
        assert rule["labels"]["severity"] in ("warning", "critical")
        assert "prod/chat" in annotations["summary"]


def test_every_alert_has_probes_that_select_this_deployment() -> None:
    for alert in alerts.alerts(target(AUTOSCALED)):
        assert alert.probes, alert.name
        for probe in alert.probes:
            assert 'namespace="prod",llmdeployment="chat"' in probe, (alert.name, probe)
