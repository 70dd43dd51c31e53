"""The guardrails and cache dashboard: verdicts, the latency the gateway adds, cache hits.

Read from the gateway sidecar's `llm_gateway_*` metrics of the selected LLMDeployments
(guardrails on): verdicts by check and action, the share of API requests blocked, the
time a request spends in the gateway (p50/p95/p99) and in the checks by stage, and the
semantic cache's hit ratio, hits by kind and size.
"""

from __future__ import annotations

from grafana_foundation_sdk.builders import dashboard

from llm_operator.dashboards import kit

S = kit.SELECTED
UID = "llm-guardrails"
BLOCKED = 'action="block"'


def build() -> dashboard.Dashboard:
    api = f"{S},{kit.API}"
    requests = f"sum({kit.rate('llm_gateway_requests_total', api)})"
    blocks = f"sum({kit.rate('llm_gateway_guardrail_verdicts_total', f'{S},{BLOCKED}')})"
    hits = f"sum({kit.rate('llm_gateway_cache_hits_total', S)})"
    misses = f"sum({kit.rate('llm_gateway_cache_misses_total', S)})"
    return (
        kit.new_dashboard(
            UID,
            "LLM guardrails and cache",
            "The gateway sidecar of the selected LLMDeployments: guardrail verdicts, added "
            "latency, semantic cache.",
        )
        .with_variable(kit.datasource_variable())
        .with_variable(kit.namespace_variable())
        .with_variable(kit.llmdeployment_variable())
        .with_row(kit.row("Guardrails"))
        .with_panel(
            kit.graph(
                "Verdicts by check and action",
                "Guardrail findings per second, by check and the action taken.",
                "short",
                [
                    (
                        "sum by (check, action) "
                        f"({kit.rate('llm_gateway_guardrail_verdicts_total', S)})",
                        "{{check}} {{action}}",
                    )
                ],
                width=12,
                stacked=True,
            )
        )
        .with_panel(
            kit.graph(
                "Blocked share of API requests",
                "Blocks per API request. LLMGuardrailBlockSpike fires above 20% over 10 minutes.",
                "percentunit",
                [(kit.ratio(blocks, requests), "blocked")],
                steps=((None, "green"), (0.05, "yellow"), (0.2, "red")),
                width=12,
            )
        )
        .with_panel(
            kit.graph(
                "Latency added by the gateway",
                "Time a proxied request spends in the gateway, waits on the engine excluded.",
                "s",
                [
                    (kit.quantile(q, "llm_gateway_added_latency_seconds", S), f"p{round(q * 100)}")
                    for q in (0.5, 0.95, 0.99)
                ],
                steps=((None, "green"), (0.005, "yellow"), (0.025, "red")),
                width=12,
            )
        )
        .with_panel(
            kit.graph(
                "Guardrail check time by stage, p95",
                "95th percentile of the time spent in the checks of each stage.",
                "s",
                [
                    (
                        kit.quantile(
                            0.95, "llm_gateway_guardrail_check_duration_seconds", S, "stage"
                        ),
                        "{{stage}}",
                    )
                ],
                width=12,
            )
        )
        .with_row(kit.row("Semantic cache"))
        .with_panel(
            kit.graph(
                "Cache hit ratio",
                "Cacheable requests answered from the cache.",
                "percentunit",
                [(kit.ratio(hits, f"({hits} + {misses})"), "hit ratio")],
                width=8,
                max_value=1,
            )
        )
        .with_panel(
            kit.graph(
                "Cache hits by kind",
                "Responses served from the cache per second: exact or semantic matches.",
                "reqps",
                [(f"sum by (kind) ({kit.rate('llm_gateway_cache_hits_total', S)})", "{{kind}}")],
                width=8,
            )
        )
        .with_panel(
            kit.graph(
                "Cache entries",
                "Entries held by each replica's cache.",
                "short",
                [(f"sum by (pod) (llm_gateway_cache_entries{{{S}}})", "{{pod}}")],
                width=8,
            )
        )
    )
