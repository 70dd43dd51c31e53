"""Writes the rule files the builder renders and promtool's test files for `cases`.

`rule_groups(variant)` is the PrometheusRule of a case variant as a Prometheus rule
file; `test_document(...)` is one promtool test file (for one variant's rules) with a
test group per case: an `alert_rule_test` expecting the alert with its full labels and
annotations, or no alert; or a `promql_expr_test` expecting a value. The files are
generated at test time (and by `python -m tests.rules.promtool_files DIR` to look at
them), never edited by hand.
"""

from __future__ import annotations

import pathlib
import sys
from collections.abc import Callable, Iterable
from typing import Any

import yaml

from llm_operator.builders import alerts, children, common
from tests.rules import cases


def target(variant: str) -> common.Target:
    obj = {
        "metadata": {"name": cases.NAME, "namespace": cases.NAMESPACE},
        "spec": cases.VARIANTS[variant],
    }
    return children.target_from_object(obj)


def rule_groups(variant: str, options: common.Options | None = None) -> dict[str, Any]:
    """The variant's PrometheusRule as a Prometheus rule file."""
    rule = alerts.prometheus_rule(target(variant), options or common.Options())
    assert rule is not None, variant
    return {"groups": rule["spec"]["groups"]}


def rules_by_name(groups: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {rule["alert"]: rule for group in groups["groups"] for rule in group["rules"]}


def _series(pairs: Iterable[tuple[str, str]]) -> list[dict[str, str]]:
    return [{"series": series, "values": values} for series, values in pairs]


def alert_test(case: cases.AlertCase, rules: dict[str, dict[str, Any]]) -> dict[str, Any]:
    rule = rules[case.alert]
    expected = []
    if case.fires:
        labels = {**case.result_labels, **rule["labels"]}
        expected.append({"exp_labels": labels, "exp_annotations": rule["annotations"]})
    return {
        "name": case.name,
        "interval": "1m",
        "input_series": _series(case.series),
        "alert_rule_test": [
            {"eval_time": cases.EVAL_TIME, "alertname": case.alert, "exp_alerts": expected}
        ],
    }


def expr_test(case: cases.ExprCase, query: str) -> dict[str, Any]:
    return {
        "name": case.name,
        "interval": "1m",
        "input_series": _series(case.series),
        "promql_expr_test": [
            {
                "expr": query,
                "eval_time": cases.EVAL_TIME,
                "exp_samples": [{"labels": "{}", "value": case.value}],
            }
        ],
    }


def test_document(
    rule_file: str,
    rules: dict[str, dict[str, Any]],
    alert_cases: Iterable[cases.AlertCase],
    expr_cases: Iterable[tuple[cases.ExprCase, str]],
) -> dict[str, Any]:
    """One promtool test file over `rule_file` (whose rules are `rules`)."""
    return {
        "rule_files": [rule_file],
        "evaluation_interval": "1m",
        "tests": [
            *(alert_test(case, rules) for case in alert_cases),
            *(expr_test(case, query) for case, query in expr_cases),
        ],
    }


def write(path: pathlib.Path, document: dict[str, Any]) -> pathlib.Path:
    path.write_text(yaml.safe_dump(document, sort_keys=False, width=120), encoding="utf-8")
    return path


def write_suite(
    directory: pathlib.Path,
    variant_rules: Callable[[str], dict[str, Any]] = rule_groups,
) -> tuple[list[pathlib.Path], list[pathlib.Path]]:
    """Rule files and test files of every variant in `directory`: (rule files, test files)."""
    rule_files, test_files = [], []
    for variant in cases.VARIANTS:
        groups = variant_rules(variant)
        rule_files.append(write(directory / f"rules-{variant}.yaml", groups))
        document = test_document(
            f"rules-{variant}.yaml",
            rules_by_name(groups),
            [c for c in cases.ALERT_CASES if c.variant == variant],
            [(c, c.query(target(variant))) for c in cases.EXPR_CASES if c.variant == variant],
        )
        test_files.append(write(directory / f"test-{variant}.yaml", document))
    return rule_files, test_files


if __name__ == "__main__":
    out = pathlib.Path(sys.argv[1])
    out.mkdir(parents=True, exist_ok=True)
    rule_files, test_files = write_suite(out)
    for written in [*rule_files, *test_files]:
        print(written)
