"""The weighted rules of the prompt-injection check, read from ``data/injection_rules.yaml``.

The rules are data: each holds its pattern, its weight, its trigger groups (one table:
word lists that must each occur in a sentence for the rule to be tried there) and two
examples, one it must fire on and one it must not. This module reads the file once,
validates it (known fragments and word lists, unique names, patterns that compile, a
way in for every rule) and turns each entry into a `Rule`; the file's header says what
each field means. Only the case-sensitive ``DAN`` name check, which reads the prompt
before normalisation, stays here as code.
"""

from __future__ import annotations

import dataclasses
import functools
import importlib.resources
import re

import pydantic
import yaml
from pydantic import alias_generators

_REFERENCE = re.compile(r"<<(\w+)>>")


@dataclasses.dataclass(frozen=True)
class Rule:
    """One weighted pattern, run on normalised text only when its trigger words are present."""

    name: str
    family: str
    weight: float
    pattern: re.Pattern[str]
    need: tuple[frozenset[str], ...]
    """Word groups: the rule runs only if every group shares a word with the prompt."""
    substrings: tuple[str, ...] = ()
    """Alternatively, the rule runs if one of these occurs in the normalised prompt."""
    min_matches: int = 1
    """More than 1: the pattern must match this often in the whole prompt (not per sentence)."""
    matches: str = ""
    """A prompt the rule fires on (checked by a unit test)."""
    passes: str = ""
    """A prompt the rule does not fire on (checked by a unit test)."""


class _Model(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(
        extra="forbid", alias_generator=alias_generators.to_camel, populate_by_name=True
    )


class RuleSpec(_Model):
    """One entry of ``rules`` in the file."""

    name: str = pydantic.Field(pattern=r"^[a-z][a-z0-9_]*$", description="Unique rule name.")
    family: str = pydantic.Field(min_length=1, description="The family the rule belongs to.")
    weight: float = pydantic.Field(gt=0.0, le=1.0, description="Weight in the noisy-OR.")
    pattern: list[str] = pydantic.Field(
        min_length=1, description="Pieces of the pattern, joined without separators."
    )
    triggers: list[str] = pydantic.Field(
        default_factory=list, description="Trigger groups: words separated by spaces."
    )
    substrings: list[str] = pydantic.Field(
        default_factory=list, description="Substrings of the normalised prompt that let it in."
    )
    min_matches: int = pydantic.Field(1, ge=1, description="Matches needed in the whole prompt.")
    matches: str = pydantic.Field(min_length=1, description="A prompt the rule must fire on.")
    passes: str = pydantic.Field(min_length=1, description="A prompt it must not fire on.")


class RuleFile(_Model):
    """The whole file: shared pattern fragments, shared word lists, and the rules."""

    fragments: dict[str, list[str]] = pydantic.Field(
        default_factory=dict, description="Pattern pieces that ``<<name>>`` stands for."
    )
    words: dict[str, str] = pydantic.Field(
        default_factory=dict, description="Word lists that ``<<name>>`` stands for in triggers."
    )
    rules: list[RuleSpec] = pydantic.Field(min_length=1, description="The rules, in order.")


def tokenize(text: str) -> list[str]:
    """Word tokens of normalised text: ASCII punctuation splits words, like the rule gates."""
    return text.translate(TOKEN_TABLE).split()


TOKEN_TABLE = str.maketrans({char: " " for char in "!\"#$%&'()*+,-./:;<=>?@[\\]^`{|}~_"})
"""Maps ASCII punctuation to spaces; `str.split` then yields the rule gates' words."""


def _expand(text: str, table: dict[str, str], where: str) -> str:
    def replace(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in table:
            raise ValueError(f"{where}: unknown <<{name}>>")
        return table[name]

    return _REFERENCE.sub(replace, text)


def parse(document: object) -> tuple[Rule, ...]:
    """Validate a parsed rule file and build its rules (raises `ValueError` naming the rule)."""
    spec = RuleFile.model_validate(document)
    fragments = {name: "".join(pieces) for name, pieces in spec.fragments.items()}
    built: list[Rule] = []
    names: set[str] = set()
    for entry in spec.rules:
        where = f"rule {entry.name}"
        if entry.name in names:
            raise ValueError(f"{where}: duplicate name")
        names.add(entry.name)
        if not entry.triggers and not entry.substrings:
            raise ValueError(f"{where}: needs triggers or substrings, or it never runs")
        source = _expand("".join(entry.pattern), fragments, where)
        try:
            pattern = re.compile(source, re.MULTILINE)
        except re.error as exc:
            raise ValueError(f"{where}: pattern does not compile: {exc}") from exc
        groups = tuple(
            frozenset(tokenize(_expand(group, spec.words, where))) for group in entry.triggers
        )
        if any(not group for group in groups):
            raise ValueError(f"{where}: an empty trigger group")
        built.append(
            Rule(
                entry.name,
                entry.family,
                entry.weight,
                pattern,
                groups,
                tuple(entry.substrings),
                entry.min_matches,
                entry.matches,
                entry.passes,
            )
        )
    return tuple(built)


@functools.cache
def load_default() -> tuple[Rule, ...]:
    """The rules shipped with the package (``llm_serving/data/injection_rules.yaml``)."""
    resource = importlib.resources.files("llm_serving") / "data" / "injection_rules.yaml"
    return parse(yaml.safe_load(resource.read_text(encoding="utf-8")))


RULES: tuple[Rule, ...] = load_default()
# Families whose hits are weak evidence on their own; all others count at full weight.
FAMILIES = tuple(sorted({rule.family for rule in RULES}))
CASE_SENSITIVE_DAN = re.compile(r"\bDAN\b")
"""The jailbreak persona's name in capitals, on the prompt before it is lower-cased."""
DAN_NAME_WEIGHT = 0.35
