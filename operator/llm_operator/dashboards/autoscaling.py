"""The autoscaling dashboard: the signal against its target, replicas, Pending Pods.

The signal is what every provider scales on: requests waiting (plus running with
`includeRunning`) per replica whose engine is scraped; the target is the spec's
`targetQueueDepth` as the operator exports it. Desired replicas (the provider's
decision, as the Deployment holds it) are drawn against ready ones and the spec's
bounds; Pending and unschedulable Pods show a scale-up waiting for GPUs. Scale events
are annotations.
"""

from __future__ import annotations

from grafana_foundation_sdk.builders import dashboard

from llm_operator.builders import monitoring
from llm_operator.dashboards import kit

S = kit.SELECTED
UID = "llm-autoscaling"


def build() -> dashboard.Dashboard:
    op = "llm_operator_llmdeployment_"
    waiting = monitoring.per_pod_sum("vllm:num_requests_waiting", S)
    running = monitoring.per_pod_sum("vllm:num_requests_running", S)
    serving = f"clamp_min({monitoring.serving_pods(S)}, 1)"
    return (
        kit.new_dashboard(
            UID,
            "LLM autoscaling",
            "Queue-depth autoscaling of the selected LLMDeployments: signal, target, replicas.",
        )
        .with_variable(kit.datasource_variable())
        .with_variable(kit.namespace_variable())
        .with_variable(kit.llmdeployment_variable())
        .annotation(kit.scale_events(S))
        .with_row(kit.row("Signal"))
        .with_panel(
            kit.graph(
                "Queue per replica against target",
                "Requests waiting (and waiting plus running) per replica whose engine is "
                "scraped, against spec.autoscaling.targetQueueDepth.",
                "short",
                [
                    (f"({waiting}) / {serving}", "waiting per replica"),
                    (f"({waiting} + {running}) / {serving}", "waiting + running per replica"),
                    (f"max({op}autoscaling_target_queue_depth{{{S}}})", "target"),
                ],
                width=12,
            )
        )
        .with_panel(
            kit.graph(
                "Queue",
                "Requests waiting and running, summed over replicas.",
                "short",
                [(waiting, "waiting"), (running, "running")],
                width=12,
            )
        )
        .with_row(kit.row("Replicas"))
        .with_panel(
            kit.graph(
                "Desired and ready replicas",
                "The provider's decision (desired) against ready replicas and the spec's bounds.",
                "short",
                [
                    (f"sum({op}desired_replicas{{{S}}})", "desired"),
                    (f"sum({op}ready_replicas{{{S}}})", "ready"),
                    (f"max({op}autoscaling_min_replicas{{{S}}})", "minReplicas"),
                    (f"max({op}autoscaling_max_replicas{{{S}}})", "maxReplicas"),
                ],
                width=12,
            )
        )
        .with_panel(
            kit.graph(
                "Pending Pods",
                "Pods not running yet; unschedulable ones wait for GPUs (LLMGPUShortage).",
                "short",
                [
                    (f'sum({op}pods{{{S},phase="Pending"}})', "Pending"),
                    (f"sum({op}unschedulable_pods{{{S}}})", "unschedulable"),
                ],
                steps=((None, "green"), (1, "red")),
                width=12,
            )
        )
    )
