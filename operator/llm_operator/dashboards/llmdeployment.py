"""The dashboard of one LLMDeployment: traffic, queue and KV cache, latency, replicas, cost.

Queue depth and KV cache come from vLLM (`vllm:*`, one value per pod, so a second
scrape of a pod does not double them), latencies from vLLM's histograms at p50, p95
and p99, replica counts and GPUs from the operator (`llm_operator_llmdeployment_*`),
requests and errors from the gateway when guardrails are on and from vLLM's finished
requests otherwise. Scale events (a change of the desired replica count) are
annotations.
"""

from __future__ import annotations

from grafana_foundation_sdk.builders import dashboard, timeseries

from llm_operator.builders import monitoring
from llm_operator.dashboards import kit

S = kit.SELECTED
UID = "llm-deployment"


def _latency(title: str, histogram: str, description: str, red: float) -> timeseries.Panel:
    return kit.graph(
        title,
        description,
        "s",
        [
            (kit.quantile(q, f"vllm:{histogram}", S), f"p{round(q * 100)}")
            for q in (0.5, 0.95, 0.99)
        ],
        steps=((None, "green"), (red / 2, "yellow"), (red, "red")),
        width=8,
    )


def build() -> dashboard.Dashboard:
    api = f"{S},{kit.API}"
    requests = f"sum({kit.rate('llm_gateway_requests_total', api)})"
    failed = f"sum({kit.rate('llm_gateway_requests_total', f'{api},{kit.SERVER_ERRORS}')})"
    waiting = monitoring.per_pod_sum("vllm:num_requests_waiting", S)
    running = monitoring.per_pod_sum("vllm:num_requests_running", S)
    op = "llm_operator_llmdeployment_"
    cost = kit.increase(f"{op}gpu_cost_dollars_total", S)
    tokens = (
        f"({kit.increase('vllm:prompt_tokens_total', S)} + "
        f"{kit.increase('vllm:generation_tokens_total', S)})"
    )
    return (
        kit.new_dashboard(
            UID,
            "LLMDeployment",
            "One LLMDeployment: traffic, queue, KV cache, latency, replicas and cost.",
        )
        .with_variable(kit.datasource_variable())
        .with_variable(kit.namespace_variable())
        .with_variable(kit.llmdeployment_variable())
        .annotation(kit.scale_events(S))
        .with_row(kit.row("Traffic"))
        .with_panel(
            kit.graph(
                "Requests by status",
                "API requests per second answered by the gateway, by HTTP status; and the "
                "requests vLLM finished, by reason.",
                "reqps",
                [
                    (
                        f"sum by (code) ({kit.rate('llm_gateway_requests_total', api)})",
                        "gateway {{code}}",
                    ),
                    (
                        f"sum by (finished_reason) ({kit.rate('vllm:request_success_total', S)})",
                        "engine {{finished_reason}}",
                    ),
                ],
                width=8,
            )
        )
        .with_panel(
            kit.graph(
                "Error ratio",
                "Share of API requests the gateway answered with a 5xx status (503: engine down, "
                "504: engine too slow). The LLMErrorRateHigh alert fires above 5%.",
                "percentunit",
                [(kit.ratio(failed, requests), "5xx share")],
                steps=((None, "green"), (0.01, "yellow"), (0.05, "red")),
                width=8,
            )
        )
        .with_panel(
            kit.graph(
                "Tokens per second",
                "Prompt tokens the engine read (in) and tokens it generated (out), per second.",
                "short",
                [
                    (f"sum({kit.rate('vllm:prompt_tokens_total', S)})", "in (prompt)"),
                    (f"sum({kit.rate('vllm:generation_tokens_total', S)})", "out (generated)"),
                ],
                width=8,
            )
        )
        .with_row(kit.row("Queue and KV cache"))
        .with_panel(
            kit.graph(
                "Requests waiting and running",
                "Requests queued in the engines (waiting) and in their running batches, summed "
                "over replicas: the signal the autoscalers act on.",
                "short",
                [(waiting, "waiting"), (running, "running")],
                width=8,
            )
        )
        .with_panel(
            kit.graph(
                "KV cache usage",
                "Share of each replica's KV cache in use. Above 95% the engine preempts "
                "sequences (LLMKVCacheSaturated).",
                "percentunit",
                [(f"max by (pod) (vllm:kv_cache_usage_perc{{{S}}})", "{{pod}}")],
                steps=((None, "green"), (0.8, "yellow"), (0.95, "red")),
                width=8,
                max_value=1,
            )
        )
        .with_panel(
            kit.graph(
                "Preemptions",
                "Sequences the engines preempted per second (recomputed later): a full KV cache.",
                "short",
                [(f"sum({kit.rate('vllm:num_preemptions_total', S)})", "preemptions/s")],
                steps=((None, "green"), (0.1, "red")),
                width=8,
            )
        )
        .with_row(kit.row("Latency"))
        .with_panel(
            _latency(
                "Time to first token",
                "time_to_first_token_seconds",
                "From the request's arrival at the engine to its first token, p50/p95/p99. "
                "LLMTimeToFirstTokenHigh fires when p95 stays above 5 s.",
                5.0,
            )
        )
        .with_panel(
            _latency(
                "Inter-token latency",
                "inter_token_latency_seconds",
                "Time between two generated tokens of a request, p50/p95/p99.",
                0.2,
            )
        )
        .with_panel(
            _latency(
                "End-to-end latency",
                "e2e_request_latency_seconds",
                "Whole request in the engine, queue included, p50/p95/p99.",
                60.0,
            )
        )
        .with_row(kit.row("Replicas"))
        .with_panel(
            kit.graph(
                "Replicas desired, ready, unavailable",
                "What the LLMDeployment wants (spec or autoscaler), how many replicas are ready, "
                "and how many wanted ones are not.",
                "short",
                [
                    (f"sum({op}desired_replicas{{{S}}})", "desired"),
                    (f"sum({op}ready_replicas{{{S}}})", "ready"),
                    (f"sum({op}unavailable_replicas{{{S}}})", "unavailable"),
                ],
                width=12,
            )
        )
        .with_panel(
            kit.graph(
                "Pods by phase",
                "The Pods by phase; Pending ones that cannot be scheduled lack GPUs.",
                "short",
                [
                    (f"sum by (phase) ({op}pods{{{S}}})", "{{phase}}"),
                    (f"sum({op}unschedulable_pods{{{S}}})", "unschedulable"),
                ],
                width=12,
                stacked=False,
            )
        )
        .with_row(kit.row("Cost"))
        .with_panel(
            kit.single(
                "GPUs held",
                "GPUs held by the LLMDeployment's Pods now.",
                "short",
                f"sum({op}gpus{{{S}}})",
            )
        )
        .with_panel(
            kit.single(
                "GPU-hours",
                "GPU-hours held over the dashboard's time range.",
                "short",
                kit.increase(f"{op}gpu_hours_total", S),
            )
        )
        .with_panel(
            kit.single(
                "GPU cost",
                "Cost of those GPU-hours at the operator's price table (--gpu-prices).",
                "currencyUSD",
                cost,
            )
        )
        .with_panel(
            kit.single(
                "Tokens per dollar",
                "Prompt and generated tokens over the range, per dollar of GPU time.",
                "short",
                f"{tokens} / {cost}",
                width=6,
            )
        )
        .with_panel(
            kit.single(
                "Requests per dollar",
                "Requests finished over the range, per dollar of GPU time.",
                "short",
                f"{kit.increase('vllm:request_success_total', S)} / {cost}",
                width=6,
            )
        )
    )
