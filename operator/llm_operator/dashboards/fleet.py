"""The fleet overview: every LLMDeployment of the selected namespaces side by side.

Counts by phase, replicas and GPUs held, traffic, queues, p95 time to first token and
KV cache per LLMDeployment, and the cost of the range: GPU-hours, dollars and tokens
per dollar by LLMDeployment (from the operator's price table).
"""

from __future__ import annotations

from grafana_foundation_sdk.builders import dashboard

from llm_operator.builders import monitoring
from llm_operator.dashboards import kit

N = kit.NAMESPACES
BY = f"namespace, {monitoring.LLMDEPLOYMENT_LABEL}"
LEGEND = "{{namespace}}/{{llmdeployment}}"
UID = "llm-fleet"


def build() -> dashboard.Dashboard:
    op = "llm_operator_llmdeployment_"
    cost = kit.increase(f"{op}gpu_cost_dollars_total", N, BY)
    tokens = (
        f"({kit.increase('vllm:prompt_tokens_total', N, BY)} + "
        f"{kit.increase('vllm:generation_tokens_total', N, BY)})"
    )
    return (
        kit.new_dashboard(
            UID,
            "LLM fleet overview",
            "Every LLMDeployment of the selected namespaces: health, traffic, latency and cost.",
        )
        .with_variable(kit.datasource_variable())
        .with_variable(kit.namespace_variable())
        .with_row(kit.row("Fleet"))
        .with_panel(
            kit.single(
                "LLMDeployments",
                "LLMDeployments the operator manages in the selected namespaces.",
                "short",
                f"sum(llm_operator_llmdeployments{{{N}}})",
            )
        )
        .with_panel(
            kit.single(
                "Not ready",
                "LLMDeployments whose phase is not Ready (Pending, Progressing, Degraded, Failed).",
                "short",
                f'sum(llm_operator_llmdeployments{{{N},phase!="Ready"}}) or vector(0)',
                steps=((None, "green"), (1, "red")),
            )
        )
        .with_panel(
            kit.single(
                "Ready replicas",
                "Replicas ready to serve, over every LLMDeployment.",
                "short",
                f"sum({op}ready_replicas{{{N}}})",
            )
        )
        .with_panel(
            kit.single(
                "GPUs held",
                "GPUs held by the fleet's Pods now.",
                "short",
                f"sum({op}gpus{{{N}}})",
            )
        )
        .with_panel(
            kit.single(
                "Requests per second",
                "Requests the engines finished per second.",
                "reqps",
                f"sum({kit.rate('vllm:request_success_total', N)})",
            )
        )
        .with_panel(
            kit.single(
                "GPU cost",
                "Cost of the fleet's GPU-hours over the dashboard's range.",
                "currencyUSD",
                kit.increase(f"{op}gpu_cost_dollars_total", N),
            )
        )
        .with_row(kit.row("By LLMDeployment"))
        .with_panel(
            kit.graph(
                "Ready replicas",
                "Ready replicas of each LLMDeployment.",
                "short",
                [(f"sum by ({BY}) ({op}ready_replicas{{{N}}})", LEGEND)],
                width=8,
            )
        )
        .with_panel(
            kit.graph(
                "Requests per second",
                "Requests each LLMDeployment's engines finished per second.",
                "reqps",
                [(f"sum by ({BY}) ({kit.rate('vllm:request_success_total', N)})", LEGEND)],
                width=8,
            )
        )
        .with_panel(
            kit.graph(
                "Requests waiting",
                "Requests queued in each LLMDeployment's engines (one value per pod, summed).",
                "short",
                [
                    (
                        f"sum by ({BY}) (max by ({BY}, pod) (vllm:num_requests_waiting{{{N}}}))",
                        LEGEND,
                    )
                ],
                width=8,
            )
        )
        .with_panel(
            kit.graph(
                "Time to first token, p95",
                "95th percentile of the time to first token of each LLMDeployment.",
                "s",
                [(kit.quantile(0.95, "vllm:time_to_first_token_seconds", N, BY), LEGEND)],
                steps=((None, "green"), (2.5, "yellow"), (5, "red")),
                width=8,
            )
        )
        .with_panel(
            kit.graph(
                "KV cache usage, fullest replica",
                "KV cache usage of each LLMDeployment's fullest replica.",
                "percentunit",
                [(f"max by ({BY}) (vllm:kv_cache_usage_perc{{{N}}})", LEGEND)],
                steps=((None, "green"), (0.8, "yellow"), (0.95, "red")),
                width=8,
                max_value=1,
            )
        )
        .with_panel(
            kit.graph(
                "Generated tokens per second",
                "Tokens each LLMDeployment generated per second.",
                "short",
                [(f"sum by ({BY}) ({kit.rate('vllm:generation_tokens_total', N)})", LEGEND)],
                width=8,
            )
        )
        .with_row(kit.row("Cost over the range"))
        .with_panel(
            kit.bars(
                "GPU-hours",
                "GPU-hours each LLMDeployment held over the dashboard's range.",
                "short",
                kit.increase(f"{op}gpu_hours_total", N, BY),
                LEGEND,
            )
        )
        .with_panel(
            kit.bars(
                "GPU cost",
                "Cost of those GPU-hours at the operator's price per GPU type.",
                "currencyUSD",
                cost,
                LEGEND,
            )
        )
        .with_panel(
            kit.bars(
                "Tokens per dollar",
                "Prompt and generated tokens per dollar of GPU time, over the range.",
                "short",
                f"{tokens} / {cost}",
                LEGEND,
            )
        )
    )
