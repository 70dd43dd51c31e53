"""The alerts the builder renders, checked and unit-tested by promtool (`make test-rules`).

promtool is the project's own pinned build (`make tools`); when it is missing the tests
fail with the reason. Every alert fires on series that should fire it and stays quiet
on series that should not (cases.py); the three bugs of issue 16 have cases that pass
on today's rules and fail on the expressions rendered before the fix (legacy.yaml).
"""

from __future__ import annotations

import copy
import pathlib
import subprocess
import xml.etree.ElementTree as ElementTree
from typing import Any

import pytest
import yaml

from llm_operator.builders import alerts, children, common
from tests.rules import cases, promtool_files
from tests.support import dashboard_queries, tools

ROOT = pathlib.Path(__file__).resolve().parents[2]
LEGACY = pathlib.Path(__file__).with_name("legacy.yaml")
COVERED_VARIANTS = ("gateway", "engine")
DASHBOARD_VALUES = {
    "namespace": "prod",
    "llmdeployment": "chat",
    "job": "llm-operator",
    "__rate_interval": "1m",
    "__range": "1h",
    "__interval": "15s",
}


@pytest.fixture(scope="module")
def promtool() -> pathlib.Path:
    try:
        return tools.path("promtool")
    except tools.ToolMissingError as exc:
        pytest.fail(f"promtool is needed for the rule tests: {exc}", pytrace=False)


def run(promtool: pathlib.Path, *args: str, cwd: pathlib.Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(promtool), *args], cwd=cwd, capture_output=True, text=True, timeout=120, check=False
    )


def junit_results(path: pathlib.Path) -> dict[str, bool]:
    """Test group name -> passed, from promtool's JUnit report."""
    results = {}
    for case in ElementTree.parse(path).getroot().iter("testcase"):
        results[case.attrib["name"]] = case.find("failure") is None
    return results


def example_rules() -> list[tuple[str, dict[str, Any]]]:
    found = []
    for path in sorted((ROOT / "examples").glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")):
            rule = alerts.prometheus_rule(children.target_from_object(doc), common.Options())
            if rule is not None:
                found.append((path.stem, {"groups": rule["spec"]["groups"]}))
    return found


def test_rendered_rules_pass_promtool_check(promtool: pathlib.Path, tmp_path: pathlib.Path) -> None:
    documents = [(v, promtool_files.rule_groups(v)) for v in cases.VARIANTS]
    documents += example_rules()
    assert any(name == "guardrails" for name, _ in documents), "an example has prometheusRule"
    files = [str(promtool_files.write(tmp_path / f"{name}.yaml", doc)) for name, doc in documents]
    result = run(promtool, "check", "rules", *files, cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("SUCCESS") == len(files), result.stdout


def test_every_alert_has_a_firing_and_a_quiet_case() -> None:
    missing = []
    for variant in COVERED_VARIANTS:
        rules = promtool_files.rules_by_name(promtool_files.rule_groups(variant))
        for name, rule in rules.items():
            # A case of another variant covers this one when the expression is the same.
            same = [
                v
                for v in COVERED_VARIANTS
                if promtool_files.rules_by_name(promtool_files.rule_groups(v))
                .get(name, {})
                .get("expr")
                == rule["expr"]
            ]
            outcomes = {c.fires for c in cases.ALERT_CASES if c.alert == name and c.variant in same}
            if outcomes != {True, False}:
                missing.append(f"{variant}/{name}: has cases firing={sorted(outcomes)}")
    assert not missing, missing


def test_alerts_fire_and_stay_quiet_as_the_cases_say(
    promtool: pathlib.Path, tmp_path: pathlib.Path
) -> None:
    _, test_files = promtool_files.write_suite(tmp_path)
    report = tmp_path / "junit.xml"
    result = run(
        promtool,
        "test",
        "rules",
        f"--junit={report}",
        *[f.name for f in test_files],
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    results = junit_results(report)
    expected = {c.name for c in cases.ALERT_CASES} | {c.name for c in cases.EXPR_CASES}
    assert set(results) == expected
    assert all(results.values()), results


def legacy_rules() -> dict[str, Any]:
    """The gateway variant's rules with the pre-fix expressions of legacy.yaml."""
    old = yaml.safe_load(LEGACY.read_text(encoding="utf-8"))
    groups = copy.deepcopy(promtool_files.rule_groups("gateway"))
    for rule in groups["groups"][0]["rules"]:
        if rule["alert"] in old:
            rule["expr"] = old[rule["alert"]]
    return groups


@pytest.mark.parametrize("legacy", [False, True], ids=["today", "before-the-fix"])
def test_fixed_bugs_pass_today_and_fail_before_the_fix(
    legacy: bool, promtool: pathlib.Path, tmp_path: pathlib.Path
) -> None:
    groups = legacy_rules() if legacy else promtool_files.rule_groups("gateway")
    old_queue = yaml.safe_load(LEGACY.read_text(encoding="utf-8"))["queue_depth"]
    gateway = promtool_files.target("gateway")
    fixes_alerts = [c for c in cases.ALERT_CASES if c.fixes]
    fixes_exprs = [c for c in cases.EXPR_CASES if c.fixes]
    assert {c.fixes for c in fixes_alerts + fixes_exprs} == {
        cases.DOWN_NO_TARGETS,
        cases.TWO_TARGETS,
        cases.DUPLICATE_SCRAPE,
    }
    assert all(c.variant == "gateway" for c in fixes_alerts + fixes_exprs)
    promtool_files.write(tmp_path / "rules.yaml", groups)
    document = promtool_files.test_document(
        "rules.yaml",
        promtool_files.rules_by_name(groups),
        fixes_alerts,
        [(c, old_queue if legacy else c.query(gateway)) for c in fixes_exprs],
    )
    promtool_files.write(tmp_path / "test.yaml", document)
    report = tmp_path / "junit.xml"
    result = run(promtool, "test", "rules", f"--junit={report}", "test.yaml", cwd=tmp_path)
    results = junit_results(report)
    assert set(results) == {c.name for c in fixes_alerts + fixes_exprs}
    if legacy:
        assert result.returncode != 0
        passed = [name for name, ok in results.items() if ok]
        assert not passed, f"these cases should fail on the old expressions: {passed}"
    else:
        assert result.returncode == 0, result.stdout + result.stderr
        assert all(results.values())


def test_every_dashboard_query_parses(promtool: pathlib.Path, tmp_path: pathlib.Path) -> None:
    """promtool parses each query (variables filled in) as a recording rule's expression."""
    found = dashboard_queries.queries(DASHBOARD_VALUES)
    assert len(found) > 50
    rules = [{"record": f"dashboard:query_{i}", "expr": q.expr} for i, q in enumerate(found)]
    path = promtool_files.write(
        tmp_path / "dashboards.yaml", {"groups": [{"name": "dashboards", "rules": rules}]}
    )
    result = run(promtool, "check", "rules", str(path), cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"{len(found)} rules found" in result.stdout, result.stdout
