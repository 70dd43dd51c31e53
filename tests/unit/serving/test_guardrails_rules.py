"""The prompt-injection rules as data: every rule's two examples, and the loader's refusals."""

from __future__ import annotations

import copy
from typing import Any

import pydantic
import pytest

from llm_serving.guardrails import injection
from llm_serving.guardrails.injection import rules

NAMES = [rule.name for rule in rules.RULES]


@pytest.fixture(scope="module")
def detector() -> injection.Detector:
    return injection.shared()


@pytest.mark.parametrize("rule", rules.RULES, ids=NAMES)
def test_rule_fires_on_its_example(rule: rules.Rule, detector: injection.Detector) -> None:
    assert rule.pattern.search(injection.normalize(rule.matches))
    assert rule.name in detector.evidence(rule.matches).rules


@pytest.mark.parametrize("rule", rules.RULES, ids=NAMES)
def test_rule_passes_its_counter_example(rule: rules.Rule, detector: injection.Detector) -> None:
    assert rule.name not in detector.evidence(rule.passes).rules


def test_one_trigger_table() -> None:
    """Each rule's trigger groups are the only gate (no second table overrides them)."""
    assert len(set(NAMES)) == len(NAMES) >= 80
    assert all(rule.need or rule.substrings for rule in rules.RULES)
    override = next(rule for rule in rules.RULES if rule.name == "override_instructions")
    assert len(override.need) == 2
    assert "ignore" in override.need[0]


def _document() -> dict[str, Any]:
    return {
        "fragments": {"verbs": ["(?:ignore|forget)"]},
        "words": {"verbs": "ignore forget"},
        "rules": [
            {
                "name": "demo",
                "family": "override",
                "weight": 0.5,
                "pattern": [r"\b<<verbs>>\s++", "everything"],
                "triggers": ["<<verbs>>", "everything"],
                "matches": "ignore everything",
                "passes": "ignore nothing",
            }
        ],
    }


def test_the_loader_expands_fragments_and_words() -> None:
    (rule,) = rules.parse(_document())
    assert rule.pattern.pattern == r"\b(?:ignore|forget)\s++everything"
    assert rule.need == (frozenset({"ignore", "forget"}), frozenset({"everything"}))


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda d: d["rules"][0].update(pattern=["<<nouns>>"]), "unknown <<nouns>>"),
        (lambda d: d["rules"][0].update(triggers=["<<nouns>>"]), "unknown <<nouns>>"),
        (lambda d: d["rules"][0].update(pattern=["(unclosed"]), "does not compile"),
        (lambda d: d["rules"].append(copy.deepcopy(d["rules"][0])), "duplicate name"),
        (lambda d: d["rules"][0].update(triggers=[]), "needs triggers or substrings"),
        (lambda d: d["rules"][0].update(triggers=["..."]), "empty trigger group"),
    ],
)
def test_the_loader_refuses_a_broken_rule(change: Any, message: str) -> None:
    document = _document()
    change(document)
    with pytest.raises(ValueError, match=message):
        rules.parse(document)


@pytest.mark.parametrize(
    "change",
    [
        lambda d: d["rules"][0].update(words="ignore"),  # the old second trigger table
        lambda d: d["rules"][0].update(weight=1.5),
        lambda d: d["rules"][0].pop("passes"),
        lambda d: d["rules"][0].update(name="Bad Name"),
    ],
)
def test_the_schema_refuses_unknown_or_missing_fields(change: Any) -> None:
    document = _document()
    change(document)
    with pytest.raises(pydantic.ValidationError):
        rules.parse(document)
