"""The operator's own health: reconcile passes, their duration, children, API calls, leadership.

Read from `llm_operator_*` (the operator's metrics port, 8081) and the process
collector's `process_*` series of the same job.
"""

from __future__ import annotations

from grafana_foundation_sdk.builders import dashboard

from llm_operator.dashboards import kit

UID = "llm-operator"
JOB = 'job=~"$job"'
FAILED = 'result="error"'


def _job_variable() -> dashboard.QueryVariable:
    return (
        dashboard.QueryVariable("job")
        .label("Operator job")
        .datasource(kit.DATASOURCE)
        .query("label_values(llm_operator_build_info, job)")
        .multi(True)
        .include_all(True)
        .all_value(".*")
    )


def build() -> dashboard.Dashboard:
    def rate(metric: str) -> str:
        return kit.rate(metric, JOB)

    return (
        kit.new_dashboard(
            UID,
            "LLM operator health",
            "The llm-operator process: reconcile passes, API calls, leadership, resources.",
        )
        .with_variable(kit.datasource_variable())
        .with_variable(_job_variable())
        .with_row(kit.row("Reconcile"))
        .with_panel(
            kit.single(
                "Active replicas",
                "Operator processes that hold the leader Lease (or run without election): 1 "
                "is right.",
                "short",
                f"sum(llm_operator_leader{{{JOB}}})",
                steps=((None, "red"), (1, "green"), (2, "red")),
                width=6,
            )
        )
        .with_panel(
            kit.single(
                "LLMDeployments managed",
                "LLMDeployments the operator holds figures for.",
                "short",
                f"sum(llm_operator_llmdeployments{{{JOB}}})",
                width=6,
            )
        )
        .with_panel(
            kit.single(
                "Failed passes",
                "Reconcile passes per second that ended in an error (kopf retries them).",
                "short",
                f"sum({kit.rate('llm_operator_reconciles_total', f'{JOB},{FAILED}')}) or vector(0)",
                steps=((None, "green"), (0.01, "red")),
                width=6,
            )
        )
        .with_panel(
            kit.single(
                "API errors",
                "Kubernetes API calls per second that failed.",
                "short",
                f"sum({rate('llm_operator_api_errors_total')}) or vector(0)",
                steps=((None, "green"), (0.01, "red")),
                width=6,
            )
        )
        .with_panel(
            kit.graph(
                "Reconcile passes by result",
                "Passes per second: success, invalid_spec (status and an Event say why), gone "
                "(deleted meanwhile), error.",
                "ops",
                [(f"sum by (result) ({rate('llm_operator_reconciles_total')})", "{{result}}")],
                width=12,
                stacked=True,
            )
        )
        .with_panel(
            kit.graph(
                "Reconcile duration",
                "Time of one pass, p50/p95/p99.",
                "s",
                [
                    (
                        kit.quantile(q, "llm_operator_reconcile_duration_seconds", JOB),
                        f"p{round(q * 100)}",
                    )
                    for q in (0.5, 0.95, 0.99)
                ],
                steps=((None, "green"), (1, "yellow"), (10, "red")),
                width=12,
            )
        )
        .with_panel(
            kit.graph(
                "Passes by trigger",
                "What started the passes: a spec change, a Deployment event, the resync.",
                "ops",
                [(f"sum by (trigger) ({rate('llm_operator_reconciles_total')})", "{{trigger}}")],
                width=12,
            )
        )
        .with_panel(
            kit.graph(
                "Children applied and pruned",
                "Children server-side applied per second, by kind; and owned children pruned.",
                "ops",
                [
                    (f"sum by (kind) ({rate('llm_operator_children_applied_total')})", "{{kind}}"),
                    (f"sum({rate('llm_operator_children_pruned_total')}) or vector(0)", "pruned"),
                ],
                width=12,
            )
        )
        .with_panel(
            kit.graph(
                "LLMDeployments by phase",
                "LLMDeployments the operator manages, by phase.",
                "short",
                [(f"sum by (phase) (llm_operator_llmdeployments{{{JOB}}})", "{{phase}}")],
                width=12,
                stacked=True,
            )
        )
        .with_panel(
            kit.graph(
                "LLMDeployments by condition",
                "How many LLMDeployments have each condition True and False.",
                "short",
                [
                    (
                        "sum by (condition, status) "
                        f"(llm_operator_llmdeployment_condition{{{JOB}}})",
                        "{{condition}}={{status}}",
                    )
                ],
                width=12,
            )
        )
        .with_row(kit.row("Kubernetes API"))
        .with_panel(
            kit.graph(
                "API calls by operation",
                "Calls to the API server per second.",
                "ops",
                [
                    (
                        f"sum by (operation) ({rate('llm_operator_api_requests_total')})",
                        "{{operation}}",
                    )
                ],
                width=12,
            )
        )
        .with_panel(
            kit.graph(
                "API errors by code",
                "Failed calls per second by HTTP status code (connection: no answer).",
                "ops",
                [
                    (
                        f"sum by (code, operation) ({rate('llm_operator_api_errors_total')})",
                        "{{code}} {{operation}}",
                    )
                ],
                width=12,
            )
        )
        .with_row(kit.row("Process"))
        .with_panel(
            kit.graph(
                "CPU",
                "CPU seconds per second used by the operator process.",
                "percentunit",
                [(f"sum by (instance) ({rate('process_cpu_seconds_total')})", "{{instance}}")],
                width=12,
            )
        )
        .with_panel(
            kit.graph(
                "Memory",
                "Resident memory of the operator process.",
                "bytes",
                [(f"sum by (instance) (process_resident_memory_bytes{{{JOB}}})", "{{instance}}")],
                width=12,
            )
        )
    )
