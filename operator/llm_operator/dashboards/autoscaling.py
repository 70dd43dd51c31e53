"""The autoscaling dashboard: the signal against its target, replicas, Pending Pods, and
the builtin autoscaler's own figures.

The scraped signal is what every provider scales on: requests waiting (plus running
with `includeRunning`) per replica whose engine is scraped, against the spec's
target per replica as the operator exports it. Desired replicas (the provider's
decision, as the Deployment holds it) are drawn against ready ones, the spec's
bounds and the builtin autoscaler's last decision (which differs in mode advise);
Pending and unschedulable Pods show a scale-up waiting for GPUs. The builtin
autoscaler's row reads its `llm_operator_autoscaler_*` families: the signal it read
per replica against its target, its decisions by direction and reason (per minute,
and over the range), panic mode, and failed readings by reason. Scale events are
annotations.
"""

from __future__ import annotations

from grafana_foundation_sdk.builders import dashboard

from llm_operator.builders import monitoring
from llm_operator.dashboards import kit

S = kit.SELECTED
UID = "llm-autoscaling"
BY = monitoring.LLMDEPLOYMENT_LABEL


def _builtin_row(board: dashboard.Dashboard) -> dashboard.Dashboard:
    auto = "llm_operator_autoscaler_"
    replicas = f"clamp_min(sum by ({BY}) (llm_operator_llmdeployment_desired_replicas{{{S}}}), 1)"
    per_minute = f"60 * sum by ({BY}, direction, reason) ({kit.rate(auto + 'decisions_total', S)})"
    return (
        board.with_row(kit.row("Builtin autoscaler"))
        .with_panel(
            kit.graph(
                "Signal per replica against target (builtin)",
                "The signal the builtin autoscaler last read (summed over replicas) divided "
                "by the Deployment's replicas, against the target per replica it aims for. "
                "Above the target for the stable window (or far above it for the panic "
                "window) it scales up; below it for the scale-down window it scales down.",
                "short",
                [
                    (
                        f"sum by ({BY}) ({auto}signal{{{S}}}) / {replicas}",
                        "{{llmdeployment}} signal per replica",
                    ),
                    (
                        f"max by ({BY}) ({auto}target_per_replica{{{S}}})",
                        "{{llmdeployment}} target",
                    ),
                ],
                width=12,
            )
        )
        .with_panel(
            kit.graph(
                "Decisions by reason (builtin)",
                "The builtin autoscaler's decisions per minute, by direction (up, down, "
                "none) and reason: SignalAboveTarget, Burst (panic), SignalBelowTarget, "
                "WithinTarget, Stabilizing, WarmingUp, NoSignal, GPUShortage, "
                "BelowMinReplicas, AboveMaxReplicas.",
                "opm",
                [(per_minute, "{{llmdeployment}} {{direction}} {{reason}}")],
                width=12,
                stacked=True,
            )
        )
        .with_panel(
            kit.bars(
                "Decisions over the range (builtin)",
                "How many decisions the builtin autoscaler took in the dashboard's time "
                "range, by direction and reason (kinds that did not happen left out): why "
                "the replica count is what it is.",
                "short",
                f"sum by ({BY}, direction, reason) "
                f"(increase({auto}decisions_total{{{S}}}[{kit.RANGE}])) > 0",
                "{{llmdeployment}} {{direction}} {{reason}}",
                width=8,
            )
        )
        .with_panel(
            kit.graph(
                "Panic mode (builtin)",
                "1 while a burst holds the builtin autoscaler in panic mode: it scales on "
                "the short panic window and never down until a whole stable window passes "
                "without a burst.",
                "short",
                [(f"max by ({BY}) ({auto}panic{{{S}}})", "{{llmdeployment}} panic")],
                steps=((None, "green"), (1, "orange")),
                width=8,
                max_value=1,
            )
        )
        .with_panel(
            kit.graph(
                "Failed signal readings (builtin)",
                "Readings of the signal that failed, per minute, by reason "
                "(PrometheusUnreachable, NoMetrics, MetricsUnreachable, ...): the count is "
                "held meanwhile, and ScalingActive turns False after a while.",
                "opm",
                [
                    (
                        f"60 * sum by ({BY}, reason) ({kit.rate(auto + 'signal_errors_total', S)})",
                        "{{llmdeployment}} {{reason}}",
                    )
                ],
                steps=((None, "green"), (1, "red")),
                width=8,
            )
        )
    )


def build() -> dashboard.Dashboard:
    op = "llm_operator_llmdeployment_"
    waiting = monitoring.per_pod_sum("vllm:num_requests_waiting", S)
    running = monitoring.per_pod_sum("vllm:num_requests_running", S)
    serving = f"clamp_min({monitoring.serving_pods(S)}, 1)"
    board = (
        kit.new_dashboard(
            UID,
            "LLM autoscaling",
            "Queue-depth autoscaling of the selected LLMDeployments: signal, target, replicas, "
            "and the builtin autoscaler's decisions.",
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
                "scraped, against spec.autoscaling.targetPerReplica, for every provider.",
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
                "The provider's decision as the Deployment holds it (desired) against ready "
                "replicas, the spec's bounds, and the builtin autoscaler's last decision "
                "(a recommendation only in mode advise).",
                "short",
                [
                    (f"sum({op}desired_replicas{{{S}}})", "desired"),
                    (f"sum({op}ready_replicas{{{S}}})", "ready"),
                    (f"max({op}autoscaling_min_replicas{{{S}}})", "minReplicas"),
                    (f"max({op}autoscaling_max_replicas{{{S}}})", "maxReplicas"),
                    (f"sum(llm_operator_autoscaler_desired_replicas{{{S}}})", "builtin decision"),
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
    return _builtin_row(board)
