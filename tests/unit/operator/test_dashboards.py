"""The dashboards: the chart ships exactly what the Python builds, with variables, units
and thresholds, and every query selects what the exporters label."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from llm_operator.dashboards import render
from tests.unit.operator import conftest

CHART_DASHBOARDS = conftest.ROOT / "charts" / "llm-operator" / "dashboards"
RENDERED = render.render()


def test_chart_dashboards_do_not_drift() -> None:
    shipped = {p.name: p.read_text(encoding="utf-8") for p in CHART_DASHBOARDS.glob("*.json")}
    assert set(shipped) == set(RENDERED), "run `make dashboards`"
    for name, text in RENDERED.items():
        assert shipped[name] == text, f"{name} differs from its Python: run `make dashboards`"


def panels(model: dict[str, Any]) -> list[dict[str, Any]]:
    return [p for p in model["panels"] if p["type"] != "row"]


@pytest.mark.parametrize("name", sorted(RENDERED))
def test_variables_units_and_thresholds(name: str) -> None:
    model = json.loads(RENDERED[name])
    variables = {v["name"]: v for v in model["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    if name != "llm-operator.json":
        assert "namespace" in variables
    if name in ("llm-deployment.json", "llm-autoscaling.json", "llm-guardrails.json"):
        assert "llmdeployment" in variables
    uids = set()
    for panel in panels(model):
        assert panel["datasource"]["uid"] == "${datasource}", panel["title"]
        defaults = panel["fieldConfig"]["defaults"]
        assert defaults.get("unit"), f"{name}: {panel['title']} has no unit"
        assert defaults["thresholds"]["steps"], panel["title"]
        assert panel.get("description"), panel["title"]
        assert panel["targets"], panel["title"]
        uids.add(panel["id"])
    assert len(uids) == len(panels(model))
    assert any(len(p["fieldConfig"]["defaults"]["thresholds"]["steps"]) > 1 for p in panels(model))


def test_dashboard_uids_are_unique() -> None:
    uids = [json.loads(text)["uid"] for text in RENDERED.values()]
    assert len(set(uids)) == len(uids) == 5


def test_per_deployment_queries_select_the_variables() -> None:
    for name in ("llm-deployment.json", "llm-autoscaling.json", "llm-guardrails.json"):
        for panel in panels(json.loads(RENDERED[name])):
            for target in panel["targets"]:
                selectors = re.findall(r"[a-z_:]+\{([^}]*)\}", target["expr"])
                assert selectors, target["expr"]
                for sel in selectors:
                    assert 'llmdeployment=~"$llmdeployment"' in sel, (panel["title"], sel)
