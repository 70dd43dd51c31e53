"""Draws a Grafana dashboard model to a PNG with matplotlib, from a real Prometheus's data.

Each panel is placed where its gridPos puts it (24 columns). Time series panels run
their queries over [start, end] with `query_range` and draw one line per series,
named by the query's legend format, with the panel's thresholds as dashed lines and
the dashboard's annotations (scale events) as vertical orange lines; stat panels
show the last value over a sparkline; bar gauges run an instant query at `end`. Units
follow the panel's (`percentunit` in %, `currencyUSD` in $, `s`, `bytes`). The point
is that a reader of the docs sees what an SRE would see in Grafana, from the same
queries and the same data.
"""

from __future__ import annotations

import math
import pathlib
import re
from collections.abc import Mapping
from typing import Any

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
from matplotlib.axes import Axes

from tests.support import dashboard_queries, prometheus

COLUMNS = 24
UNIT_HEIGHT = 0.42  # inches per grid row
WIDTH = 22.0  # inches
_LEGEND = re.compile(r"\{\{\s*([a-zA-Z_]+)\s*\}\}")
COLORS = ["#73bf69", "#f2cc0c", "#5794f2", "#ff780a", "#b877d9", "#f2495c", "#8ab8ff", "#96d98d"]


def _scale(unit: str) -> tuple[float, str]:
    return {
        "percentunit": (100.0, "%"),
        "currencyUSD": (1.0, "$"),
        "s": (1.0, "s"),
        "bytes": (1 / 2**20, "MiB"),
        "reqps": (1.0, "req/s"),
        "ops": (1.0, "/s"),
        "opm": (1.0, "/min"),
    }.get(unit, (1.0, ""))


def _number(value: float, suffix: str) -> str:
    if suffix == "$":
        return f"${value:,.2f}"
    text = f"{value:,.0f}" if abs(value) >= 1000 else f"{value:.3g}"
    return f"{text} {suffix}".strip()


def _legend(fmt: str, labels: Mapping[str, str]) -> str:
    return _LEGEND.sub(lambda m: labels.get(m.group(1), ""), fmt) or str(dict(labels))


def _value(raw: str) -> float:
    value = float(raw)
    return value if math.isfinite(value) else math.nan


def _events(
    model: dict[str, Any],
    server: prometheus.Prometheus,
    values: Mapping[str, str],
    span: tuple[float, float, float],
) -> list[float]:
    times: list[float] = []
    for annotation in model.get("annotations", {}).get("list", []):
        expr = annotation.get("expr")
        if not expr:
            continue
        for series in server.query_range(dashboard_queries.fill(expr, values), *span):
            times += [float(t) for t, v in series["values"] if float(v) > 0]
    # A change stays in the expression's window for a while: mark where each run begins.
    starts: list[float] = []
    previous = -math.inf
    for when in sorted(set(times)):
        if when - previous > span[2] * 1.5:
            starts.append(when)
        previous = when
    return starts


def _frame(ax: Axes, title: str) -> None:
    ax.set_title(title, fontsize=9, loc="left", color="#d8d9da")
    ax.set_facecolor("#181b1f")
    for spine in ax.spines.values():
        spine.set_color("#2c3235")
    ax.tick_params(colors="#9fa7b3", labelsize=7)
    ax.grid(True, color="#2c3235", linewidth=0.5)


def _timeseries(
    ax: Axes,
    panel: dict[str, Any],
    server: prometheus.Prometheus,
    values: Mapping[str, str],
    span: tuple[float, float, float],
    events: list[float],
) -> None:
    defaults = panel["fieldConfig"]["defaults"]
    factor, suffix = _scale(defaults.get("unit", ""))
    start = span[0]
    color = 0
    for target in panel["targets"]:
        for series in server.query_range(dashboard_queries.fill(target["expr"], values), *span):
            xs = [(float(t) - start) / 60 for t, _ in series["values"]]
            ys = [_value(v) * factor for _, v in series["values"]]
            label = _legend(target.get("legendFormat", ""), series["metric"])
            ax.plot(xs, ys, linewidth=1.2, label=label, color=COLORS[color % len(COLORS)])
            color += 1
    steps = defaults.get("thresholds", {}).get("steps", [])
    for step in steps[1:]:
        ax.axhline(step["value"] * factor, color=step["color"], linestyle="--", linewidth=0.8)
    for when in events:
        ax.axvline((when - start) / 60, color="#ff9830", linewidth=0.8, alpha=0.7)
    if defaults.get("min") is not None:
        ax.set_ylim(bottom=defaults["min"] * factor)
    ax.set_xlabel("minutes", fontsize=7, color="#9fa7b3")
    if suffix:
        ax.set_ylabel(suffix, fontsize=7, color="#9fa7b3")
    if color:
        ax.legend(fontsize=6, loc="upper left", facecolor="#181b1f", labelcolor="#d8d9da")


def _stat(
    ax: Axes,
    panel: dict[str, Any],
    server: prometheus.Prometheus,
    values: Mapping[str, str],
    span: tuple[float, float, float],
) -> None:
    defaults = panel["fieldConfig"]["defaults"]
    factor, suffix = _scale(defaults.get("unit", ""))
    expr = dashboard_queries.fill(panel["targets"][0]["expr"], values)
    result = server.query_range(expr, *span)
    text, color = "No data", "#9fa7b3"
    if result:
        points = [(float(t), _value(v) * factor) for t, v in result[0]["values"]]
        ax.fill_between(
            [(t - span[0]) / 60 for t, _ in points],
            [v for _, v in points],
            color="#73bf69",
            alpha=0.15,
        )
        last = points[-1][1]
        color = "#73bf69"
        for step in defaults.get("thresholds", {}).get("steps", [])[1:]:
            if last >= step["value"] * factor:
                color = {"red": "#f2495c", "yellow": "#fade2a", "green": "#73bf69"}.get(
                    step["color"], step["color"]
                )
        text = _number(last, suffix)
    ax.text(
        0.5,
        0.45,
        text,
        transform=ax.transAxes,
        ha="center",
        va="center",
        fontsize=18,
        color=color,
        weight="bold",
    )
    ax.set_xticks([])
    ax.set_yticks([])


def _bars(
    ax: Axes,
    panel: dict[str, Any],
    server: prometheus.Prometheus,
    values: Mapping[str, str],
    end: float,
) -> None:
    defaults = panel["fieldConfig"]["defaults"]
    factor, suffix = _scale(defaults.get("unit", ""))
    target = panel["targets"][0]
    result = server.query(dashboard_queries.fill(target["expr"], values), end)
    names = [_legend(target.get("legendFormat", ""), s["metric"]) for s in result]
    heights = [_value(s["value"][1]) * factor for s in result]
    ax.barh(list(range(len(names))), heights, color="#5794f2", height=0.5)
    for index, (name, height) in enumerate(zip(names, heights, strict=True)):
        ax.text(0, index + 0.3, f" {name}", va="bottom", fontsize=7, color="#d8d9da")
        label = f" {_number(height, suffix)}"
        ax.text(height, index, label, va="center", fontsize=8, color="#d8d9da")
    ax.set_yticks([])
    ax.set_ylim(-0.5, len(names) - 0.1)
    ax.margins(x=0.25)


def render(
    model: dict[str, Any],
    server: prometheus.Prometheus,
    values: Mapping[str, str],
    start: float,
    end: float,
    out: pathlib.Path,
    step: float = 15.0,
) -> pathlib.Path:
    """Draw `model` with data from `server` over [start, end] into the PNG `out`."""
    span = (start, end, step)
    panels = model["panels"]
    rows = max(p["gridPos"]["y"] + p["gridPos"]["h"] for p in panels)
    height = rows * UNIT_HEIGHT + 0.8
    fig = plt.figure(figsize=(WIDTH, height), facecolor="#111217")
    fig.text(
        0.01,
        1 - 0.35 / height,
        model["title"],
        fontsize=14,
        color="#d8d9da",
        weight="bold",
        va="top",
    )
    margin = 0.7  # inches above the grid, for the dashboard's title
    events = _events(model, server, values, span)
    for panel in panels:
        grid = panel["gridPos"]
        left = grid["x"] / COLUMNS + 0.035 / 2
        width = grid["w"] / COLUMNS - 0.035
        top_edge = 1 - (margin + grid["y"] * UNIT_HEIGHT) / height
        bottom_edge = 1 - (margin + (grid["y"] + grid["h"]) * UNIT_HEIGHT) / height
        bottom = bottom_edge + 0.4 / height
        box_height = top_edge - 0.3 / height - bottom
        if panel["type"] == "row":
            fig.text(
                left,
                top_edge - 0.32 / height,
                panel["title"],
                fontsize=11,
                color="#d8d9da",
                weight="bold",
            )
            continue
        ax = fig.add_axes((left, bottom, width, max(box_height, 0.01)))
        _frame(ax, panel["title"])
        if panel["type"] == "timeseries":
            _timeseries(ax, panel, server, values, span, events)
        elif panel["type"] == "stat":
            _stat(ax, panel, server, values, span)
        elif panel["type"] == "bargauge":
            _bars(ax, panel, server, values, end)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=70, facecolor=fig.get_facecolor())
    plt.close(fig)
    return out
