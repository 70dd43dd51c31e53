"""The pieces every dashboard is built from: variables, selectors, PromQL helpers, panels.

Panels are grafana-foundation-sdk builders (the build for the current Grafana, schema
41), so a misspelt option fails at build time rather than in Grafana. Every panel reads
the `${datasource}` variable; per-LLMDeployment selectors match the `namespace` and
`llmdeployment` variables as regular expressions (both are multi-select). Rates use
Grafana's `$__rate_interval`, totals over the dashboard's range `$__range`.
"""

from __future__ import annotations

from collections.abc import Sequence

from grafana_foundation_sdk.builders import bargauge, dashboard, prometheus, stat, timeseries
from grafana_foundation_sdk.builders import common as common_builders
from grafana_foundation_sdk.models import common as common_models
from grafana_foundation_sdk.models import dashboard as dashboard_models

from llm_operator.builders import monitoring

DATASOURCE = common_models.DataSourceRef(type_val="prometheus", uid="${datasource}")
RATE = "$__rate_interval"
RANGE = "$__range"
#: Series of the selected namespaces (fleet dashboards).
NAMESPACES = 'namespace=~"$namespace"'
#: Series of the selected LLMDeployments.
SELECTED = f'{NAMESPACES},{monitoring.LLMDEPLOYMENT_LABEL}=~"$llmdeployment"'
#: Client requests at the gateway (not probes, not scrapes).
API = 'route=~"/v1/.+"'
SERVER_ERRORS = 'code=~"5.."'
#: The series every LLMDeployment has while the operator manages it.
INVENTORY = "llm_operator_llmdeployment_phase"
TAGS = ["llm-operator"]


def datasource_variable() -> dashboard.DatasourceVariable:
    return dashboard.DatasourceVariable("datasource").label("Data source").type("prometheus")


def namespace_variable() -> dashboard.QueryVariable:
    return (
        dashboard.QueryVariable("namespace")
        .label("Namespace")
        .datasource(DATASOURCE)
        .query(f"label_values({INVENTORY}, namespace)")
        .refresh(dashboard_models.VariableRefresh.ON_TIME_RANGE_CHANGED)
        .sort(dashboard_models.VariableSort.ALPHABETICAL_ASC)
        .multi(True)
        .include_all(True)
        .all_value(".*")
    )


def llmdeployment_variable(multi: bool = True) -> dashboard.QueryVariable:
    variable = (
        dashboard.QueryVariable(monitoring.LLMDEPLOYMENT_LABEL)
        .label("LLMDeployment")
        .datasource(DATASOURCE)
        .query(f"label_values({INVENTORY}{{{NAMESPACES}}}, {monitoring.LLMDEPLOYMENT_LABEL})")
        .refresh(dashboard_models.VariableRefresh.ON_TIME_RANGE_CHANGED)
        .sort(dashboard_models.VariableSort.ALPHABETICAL_ASC)
        .multi(multi)
    )
    if multi:
        variable = variable.include_all(True).all_value(".*")
    return variable


def new_dashboard(uid: str, title: str, description: str) -> dashboard.Dashboard:
    return (
        dashboard.Dashboard(title)
        .uid(uid)
        .description(description)
        .tags(TAGS)
        .refresh("30s")
        .time("now-1h", "now")
        .timezone("browser")
        .tooltip(dashboard_models.DashboardCursorSync.CROSSHAIR)
        .readonly()
    )


# --- PromQL ----------------------------------------------------------------------------


def rate(metric: str, sel: str, window: str = RATE) -> str:
    return f"rate({metric}{{{sel}}}[{window}])"


def quantile(q: float, histogram: str, sel: str, by: str = "") -> str:
    """The q-quantile of a histogram's buckets over the rate window."""
    group = f"{by}, le" if by else "le"
    return f"histogram_quantile({q:g}, sum by ({group}) ({rate(histogram + '_bucket', sel)}))"


def ratio(numerator: str, denominator: str) -> str:
    """numerator / denominator; a numerator with no series yet counts as 0."""
    return f"(({numerator}) or vector(0)) / {denominator}"


def increase(metric: str, sel: str, by: str = "") -> str:
    """A counter's increase over the dashboard's range, summed (by `by`)."""
    grouping = f" by ({by})" if by else ""
    return f"sum{grouping} (increase({metric}{{{sel}}}[{RANGE}]))"


# --- panels ----------------------------------------------------------------------------


def target(expr: str, legend: str, ref: str) -> prometheus.Dataquery:
    return prometheus.Dataquery().expr(expr).legend_format(legend).ref_id(ref).range()


def instant(expr: str, legend: str, ref: str) -> prometheus.Dataquery:
    return prometheus.Dataquery().expr(expr).legend_format(legend).ref_id(ref).instant()


def thresholds(*steps: tuple[float | None, str]) -> dashboard.ThresholdsConfig:
    """Absolute thresholds: (None, base colour) first, then (value, colour) upwards."""
    return (
        dashboard.ThresholdsConfig()
        .mode(dashboard_models.ThresholdsMode.ABSOLUTE)
        .steps([dashboard_models.Threshold(value=v, color=c) for v, c in steps])
    )


NO_THRESHOLDS = ((None, "green"),)


def _refs(queries: Sequence[tuple[str, str]]) -> list[tuple[str, str, str]]:
    return [(expr, legend, chr(ord("A") + i)) for i, (expr, legend) in enumerate(queries)]


def graph(
    title: str,
    description: str,
    unit: str,
    queries: Sequence[tuple[str, str]],
    steps: Sequence[tuple[float | None, str]] = NO_THRESHOLDS,
    width: int = 12,
    stacked: bool = False,
    min_value: float | None = 0,
    max_value: float | None = None,
) -> timeseries.Panel:
    """A time series panel of (expr, legend) queries."""
    panel = (
        timeseries.Panel()
        .title(title)
        .description(description)
        .datasource(DATASOURCE)
        .unit(unit)
        .span(width)
        .height(8)
        .thresholds(thresholds(*steps))
        .fill_opacity(10)
        .line_width(1)
        .legend(
            common_builders.VizLegendOptions()
            .display_mode(common_models.LegendDisplayMode.LIST)
            .placement(common_models.LegendPlacement.BOTTOM)
            .show_legend(True)
        )
    )
    if len(steps) > 1:
        panel = panel.thresholds_style(
            common_builders.GraphThresholdsStyleConfig().mode(
                common_models.GraphThresholdsStyleMode.LINE
            )
        )
    if stacked:
        panel = panel.stacking(
            common_builders.StackingConfig().mode(common_models.StackingMode.NORMAL)
        )
    if min_value is not None:
        panel = panel.min(min_value)
    if max_value is not None:
        panel = panel.max(max_value)
    for expr, legend, ref in _refs(queries):
        panel = panel.with_target(target(expr, legend, ref))
    return panel


def single(
    title: str,
    description: str,
    unit: str,
    expr: str,
    steps: Sequence[tuple[float | None, str]] = NO_THRESHOLDS,
    width: int = 4,
) -> stat.Panel:
    """A stat panel showing the latest value of one query."""
    return (
        stat.Panel()
        .title(title)
        .description(description)
        .datasource(DATASOURCE)
        .unit(unit)
        .span(width)
        .height(4)
        .thresholds(thresholds(*steps))
        .color_mode(common_models.BigValueColorMode.VALUE)
        .graph_mode(common_models.BigValueGraphMode.AREA)
        .reduce_options(common_builders.ReduceDataOptions().calcs(["lastNotNull"]))
        .with_target(target(expr, title, "A"))
    )


def bars(
    title: str,
    description: str,
    unit: str,
    expr: str,
    legend: str,
    steps: Sequence[tuple[float | None, str]] = NO_THRESHOLDS,
    width: int = 8,
) -> bargauge.Panel:
    """A bar gauge of one instant query, a bar per series (a total over the range)."""
    return (
        bargauge.Panel()
        .title(title)
        .description(description)
        .datasource(DATASOURCE)
        .unit(unit)
        .span(width)
        .height(8)
        .thresholds(thresholds(*steps))
        .orientation(common_models.VizOrientation.HORIZONTAL)
        .display_mode(common_models.BarGaugeDisplayMode.GRADIENT)
        .min(0)
        .reduce_options(common_builders.ReduceDataOptions().calcs(["lastNotNull"]))
        .with_target(instant(expr, legend, "A"))
    )


def row(title: str) -> dashboard.Row:
    return dashboard.Row(title)


def scale_events(sel: str) -> dashboard.AnnotationQuery:
    """An annotation wherever an LLMDeployment's desired replica count changed."""
    return (
        dashboard.AnnotationQuery()
        .name("Scale events")
        .datasource(DATASOURCE)
        .enable(True)
        .icon_color("orange")
        .expr(f"changes(llm_operator_llmdeployment_desired_replicas{{{sel}}}[1m]) > 0")
    )
