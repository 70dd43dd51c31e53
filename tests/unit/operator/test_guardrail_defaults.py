"""The installation's default guardrail policy: merge rules, validation, and the commands."""

from __future__ import annotations

import json
import pathlib
import subprocess
import sys
from typing import Any

import pytest
import yaml

from llm_operator import guardrail_defaults
from llm_operator.builders import children, common
from tests.unit.operator import conftest

DEFAULTS = {
    "input": {"promptInjection": {"action": "monitor", "threshold": 0.7}},
    "output": {"toxicity": {"action": "monitor"}},
    "cache": {"enabled": True},
}


def policy_of(spec: dict[str, Any], defaults: dict[str, Any]) -> dict[str, Any] | None:
    obj = {"metadata": {"name": "m", "namespace": "ns"}, "spec": spec}
    target = children.target_from_object(obj, guardrail_defaults=defaults)
    for child in children.build_all(target, common.Options(guardrail_defaults=defaults)):
        if child["kind"] == "ConfigMap" and "policy.json" in child.get("data", {}):
            found: dict[str, Any] = json.loads(child["data"]["policy.json"])
            return found
    return None


def test_the_spec_wins_and_the_defaults_fill_the_rest() -> None:
    spec = {
        "model": {"uri": "hf://org/model"},
        "guardrails": {"enabled": True, "input": {"promptInjection": {"action": "block"}}},
    }
    policy = policy_of(spec, DEFAULTS)
    assert policy is not None
    assert policy["input"]["promptInjection"]["action"] == "block"  # the spec's
    assert policy["input"]["promptInjection"]["threshold"] == 0.7  # the default's
    assert policy["output"]["toxicity"]["action"] == "monitor"
    assert policy["cache"]["enabled"] is True
    # Without defaults the built-in ones apply.
    plain = policy_of(spec, {})
    assert plain is not None
    assert plain["input"]["promptInjection"]["threshold"] == 0.5
    assert plain["cache"]["enabled"] is False


def test_defaults_do_not_turn_guardrails_on() -> None:
    spec = {"model": {"uri": "hf://org/model"}}
    assert policy_of(spec, DEFAULTS) is None
    assert guardrail_defaults.apply(spec, DEFAULTS) == spec


def test_apply_does_not_change_its_inputs() -> None:
    spec = {"guardrails": {"enabled": True, "input": {"pii": {"action": "block"}}}}
    before = json.dumps([spec, DEFAULTS], sort_keys=True)
    merged = guardrail_defaults.apply(spec, DEFAULTS)
    assert json.dumps([spec, DEFAULTS], sort_keys=True) == before
    assert merged["guardrails"]["input"] == {
        "promptInjection": {"action": "monitor", "threshold": 0.7},
        "pii": {"action": "block"},
    }


@pytest.mark.parametrize(
    ("defaults", "message"),
    [
        ({"enabled": True}, "unknown keys enabled"),
        ({"inptu": {}}, "unknown keys inptu"),
        ({"input": {"pii": {"action": "shout"}}}, "input.pii.action"),
        ([1, 2], "must be a mapping"),
    ],
)
def test_a_bad_file_is_refused_naming_the_field(
    tmp_path: pathlib.Path, defaults: Any, message: str
) -> None:
    path = tmp_path / "defaults.yaml"
    path.write_text(yaml.safe_dump(defaults), encoding="utf-8")
    with pytest.raises(ValueError, match=message):
        guardrail_defaults.load(path)


def test_render_and_run_take_the_file(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "defaults.json"
    path.write_text(json.dumps(DEFAULTS), encoding="utf-8")
    example = conftest.ROOT / "examples" / "guardrails.yaml"
    command = [sys.executable, "-m", "llm_operator.cli"]
    out = subprocess.run(
        [*command, "render", "-f", str(example), "--guardrail-defaults", str(path)],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    (policy_map,) = [
        o for o in yaml.safe_load_all(out.stdout) if "policy.json" in o.get("data", {})
    ]
    assert json.loads(policy_map["data"]["policy.json"])["cache"]["enabled"] is True
    path.write_text(json.dumps({"cache": {"ttlSeconds": -1}}), encoding="utf-8")
    for args in (["render", "-f", str(example)], ["run"]):
        bad = subprocess.run(
            [*command, *args, "--guardrail-defaults", str(path)],
            capture_output=True,
            text=True,
            check=False,
            timeout=60,
        )
        assert bad.returncode == 2
        assert "--guardrail-defaults" in bad.stderr
        assert "cache.ttlSeconds" in bad.stderr
