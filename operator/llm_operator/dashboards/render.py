"""Renders the dashboards to JSON files: `python -m llm_operator.dashboards.render DIR`.

`render()` maps each file name to its JSON text (sorted keys, two-space indent, a
final newline), so the output is byte-stable and a drift test can compare it with the
files in the chart.
"""

from __future__ import annotations

import json
import pathlib
import sys
from collections.abc import Callable

from grafana_foundation_sdk.builders import dashboard
from grafana_foundation_sdk.cog import encoder

from llm_operator.dashboards import autoscaling, fleet, guardrails, llmdeployment, operator_health

BUILDERS: dict[str, Callable[[], dashboard.Dashboard]] = {
    "llm-fleet.json": fleet.build,
    "llm-deployment.json": llmdeployment.build,
    "llm-autoscaling.json": autoscaling.build,
    "llm-guardrails.json": guardrails.build,
    "llm-operator.json": operator_health.build,
}


def _numbered(model: dict[str, object]) -> dict[str, object]:
    """Give every panel a stable id (1, 2, ...), as Grafana expects."""
    panels = model.get("panels")
    if isinstance(panels, list):
        for number, panel in enumerate(panels, start=1):
            if isinstance(panel, dict):
                panel["id"] = number
    return model


def render() -> dict[str, str]:
    """File name -> JSON text of every dashboard."""
    out = {}
    for name, build in BUILDERS.items():
        model = json.loads(json.dumps(build().build(), cls=encoder.JSONEncoder))
        out[name] = json.dumps(_numbered(model), indent=2, sort_keys=True) + "\n"
    return out


def write(directory: pathlib.Path) -> list[pathlib.Path]:
    """Write every dashboard into `directory`, removing stale `llm-*.json` files."""
    directory.mkdir(parents=True, exist_ok=True)
    files = render()
    for stale in directory.glob("llm-*.json"):
        if stale.name not in files:
            stale.unlink()
    written = []
    for name, text in files.items():
        path = directory / name
        path.write_text(text, encoding="utf-8")
        written.append(path)
    return written


if __name__ == "__main__":
    for path in write(pathlib.Path(sys.argv[1])):
        print(path)
