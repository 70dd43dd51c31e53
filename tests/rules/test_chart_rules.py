"""The chart's own alerts (charts/llm-operator/rules/*.yaml) through promtool.

`promtool check rules` on every file, and `promtool test rules` with one case that
fires each alert and one that leaves it quiet, on series the operator's metrics
endpoint and a Prometheus scrape of it would produce (`up` with the metrics Service's
job). promtool is the project's own build (`make tools`).
"""

from __future__ import annotations

import pathlib
import subprocess
from typing import Any

import pytest
import yaml

from tests.support import tools

ROOT = pathlib.Path(__file__).resolve().parents[2]
RULE_FILES = sorted((ROOT / "charts" / "llm-operator" / "rules").glob("*.yaml"))
JOB = 'job="llm-operator-metrics",instance="10.0.0.7:8081"'
OTHER = 'job="llm-operator-metrics",instance="10.0.0.8:8081"'

# (alert, fires, series as promtool's expanding notation, labels the alert carries)
CASES: list[tuple[str, bool, list[tuple[str, str]], dict[str, str]]] = [
    ("LLMOperatorDown", True, [(f"up{{{JOB}}}", "0x40")], {}),
    (
        "LLMOperatorDown",
        False,
        [(f"up{{{JOB}}}", "1x40"), (f'llm_operator_build_info{{{JOB},version="0.1.0"}}', "1x40")],
        {},
    ),
    (
        "LLMOperatorNoLeader",
        True,
        [(f"llm_operator_leader{{{JOB}}}", "0x40"), (f"llm_operator_leader{{{OTHER}}}", "0x40")],
        {},
    ),
    (
        "LLMOperatorNoLeader",
        False,
        [(f"llm_operator_leader{{{JOB}}}", "1x40"), (f"llm_operator_leader{{{OTHER}}}", "0x40")],
        {},
    ),
    (
        "LLMOperatorTwoLeaders",
        True,
        [(f"llm_operator_leader{{{JOB}}}", "1x40"), (f"llm_operator_leader{{{OTHER}}}", "1x40")],
        {},
    ),
    (
        "LLMOperatorTwoLeaders",
        False,
        # A takeover: the old leader's last scrape says 1 while the new one says 1 too,
        # for less than the alert's minute.
        [
            (f"llm_operator_leader{{{JOB}}}", "1x29 0x10"),
            (f"llm_operator_leader{{{OTHER}}}", "0x29 1x10"),
        ],
        {},
    ),
    (
        "LLMOperatorReconcileErrors",
        True,
        [(f'llm_operator_reconciles_total{{{JOB},trigger="resync",result="error"}}', "0+6x40")],
        {},
    ),
    (
        "LLMOperatorReconcileErrors",
        False,
        [(f'llm_operator_reconciles_total{{{JOB},trigger="resync",result="error"}}', "0+1x40")],
        {},
    ),
    (
        "LLMOperatorAPIForbidden",
        True,
        [(f'llm_operator_api_errors_total{{{JOB},operation="list",code="403"}}', "0+1x40")],
        {"operation": "list"},
    ),
    (
        "LLMOperatorAPIForbidden",
        False,
        [
            (f'llm_operator_api_errors_total{{{JOB},operation="list",code="403"}}', "3x40"),
            (f'llm_operator_api_errors_total{{{JOB},operation="get",code="500"}}', "0+1x40"),
        ],
        {},
    ),
]


@pytest.fixture(scope="module")
def promtool() -> pathlib.Path:
    try:
        return tools.path("promtool")
    except tools.ToolMissingError as exc:
        pytest.fail(f"promtool is needed for the rule tests: {exc}", pytrace=False)


def rules() -> dict[str, dict[str, Any]]:
    found = {}
    for path in RULE_FILES:
        for group in yaml.safe_load(path.read_text(encoding="utf-8"))["groups"]:
            for rule in group["rules"]:
                found[rule["alert"]] = rule
    return found


def test_rule_files_pass_promtool_check(promtool: pathlib.Path) -> None:
    assert RULE_FILES
    out = subprocess.run(
        [str(promtool), "check", "rules", *map(str, RULE_FILES)],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert out.returncode == 0, out.stdout + out.stderr


def test_every_alert_has_a_firing_and_a_quiet_case() -> None:
    assert {(alert, fires) for alert, fires, _, _ in CASES} == {
        (alert, fires) for alert in rules() for fires in (True, False)
    }


@pytest.mark.parametrize(
    "case", CASES, ids=[f"{a}-{'fires' if f else 'quiet'}" for a, f, _, _ in CASES]
)
def test_alert_under_promtool(
    promtool: pathlib.Path, tmp_path: pathlib.Path, case: tuple[Any, ...]
) -> None:
    alert, fires, series, labels = case
    rule = rules()[alert]
    expected = []
    if fires:
        expected.append(
            {"exp_labels": {**labels, **rule["labels"]}, "exp_annotations": rule["annotations"]}
        )
    document = {
        "rule_files": [str(p) for p in RULE_FILES],
        "evaluation_interval": "1m",
        "tests": [
            {
                "interval": "1m",
                "input_series": [{"series": s, "values": v} for s, v in series],
                "alert_rule_test": [
                    {"eval_time": "35m", "alertname": alert, "exp_alerts": expected}
                ],
            }
        ],
    }
    test_file = tmp_path / "test.yaml"
    test_file.write_text(yaml.safe_dump(document), encoding="utf-8")
    out = subprocess.run(
        [str(promtool), "test", "rules", str(test_file)],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert out.returncode == 0, out.stdout + out.stderr
