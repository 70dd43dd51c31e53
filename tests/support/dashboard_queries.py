"""Every PromQL query of the shipped dashboards, with Grafana's variables filled in.

`queries(values)` reads charts/llm-operator/dashboards/*.json (what the chart ships)
and yields a `Query` per panel target, per annotation and per query variable
(`label_values(SELECTOR, label)` becomes SELECTOR), with `$namespace`,
`$llmdeployment`, `$job`, `$__rate_interval`, `$__range` and `$__interval` replaced by
`values`. `metric_names(expr)` lists the metric names a query reads, so a check can
tell a query naming a metric no exporter emits.
"""

from __future__ import annotations

import dataclasses
import json
import pathlib
import re
from collections.abc import Iterator, Mapping
from typing import Any

ROOT = pathlib.Path(__file__).resolve().parents[2]
DASHBOARDS = ROOT / "charts" / "llm-operator" / "dashboards"
_LABEL_VALUES = re.compile(r"^label_values\((.*),\s*([a-zA-Z_][a-zA-Z0-9_]*)\)$")
_SELECTOR = re.compile(r"([a-zA-Z_:][a-zA-Z0-9_:]*)\s*\{")
_NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
_VARIABLE = re.compile(r"\$(__[a-z_]+|[a-z_]+)|\$\{([a-z_]+)\}")


@dataclasses.dataclass(frozen=True)
class Query:
    """One query of one dashboard."""

    dashboard: str
    where: str  # the panel's title, `annotation NAME` or `variable NAME`
    expr: str

    @property
    def annotation(self) -> bool:
        return self.where.startswith("annotation ")

    def __str__(self) -> str:
        return f"{self.dashboard}: {self.where}: {self.expr}"


def fill(expr: str, values: Mapping[str, str]) -> str:
    """`expr` with every $variable replaced; KeyError names a variable without a value."""

    def replace(match: re.Match[str]) -> str:
        name = match.group(1) or match.group(2)
        return values[name]

    return _VARIABLE.sub(replace, expr)


def _raw(model: dict[str, Any]) -> Iterator[tuple[str, str]]:
    for panel in model.get("panels", []):
        for target in panel.get("targets", []):
            yield panel["title"], target["expr"]
    for annotation in model.get("annotations", {}).get("list", []):
        if annotation.get("expr"):
            yield f"annotation {annotation['name']}", annotation["expr"]
    for variable in model.get("templating", {}).get("list", []):
        if variable.get("type") == "query":
            match = _LABEL_VALUES.match(str(variable["query"]))
            assert match, f"variable {variable['name']}: not label_values(...): {variable['query']}"
            yield f"variable {variable['name']}", match.group(1)


def queries(values: Mapping[str, str], directory: pathlib.Path = DASHBOARDS) -> list[Query]:
    """Every query of every dashboard file in `directory`, variables filled in."""
    found = []
    for path in sorted(directory.glob("*.json")):
        model = json.loads(path.read_text(encoding="utf-8"))
        for where, expr in _raw(model):
            found.append(Query(path.stem, where, fill(expr, values)))
    return found


def metric_names(expr: str) -> set[str]:
    """The metric names a query selects (every `name{...}` selector, or a bare name)."""
    if _NAME.fullmatch(expr.strip()):
        return {expr.strip()}
    return set(_SELECTOR.findall(expr))
