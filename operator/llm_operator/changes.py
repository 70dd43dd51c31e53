"""What one reconcile pass changes, as a value: the children to apply and those to prune.

`plan` compares the desired children with the children the LLMDeployment owns now
(listed per kind; a kind whose CRD is missing has no entry) and returns a
`ChangeSet`. It is pure, so the prune decision is tested without a cluster;
`reconcile` carries it out.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

from llm_operator.builders import children


@dataclasses.dataclass(frozen=True)
class Prune:
    """An owned child that is no longer wanted."""

    kind: children.ChildKind
    name: str

    def __str__(self) -> str:
        return f"{self.kind.kind}/{self.name}"


@dataclasses.dataclass(frozen=True)
class ChangeSet:
    """Apply every desired child (server-side apply is idempotent), then prune."""

    apply: tuple[dict[str, Any], ...]
    prune: tuple[Prune, ...]


def _key(api_version: str, kind: str, name: str) -> tuple[str, str, str]:
    return (api_version, kind, name)


def plan(
    desired: Sequence[dict[str, Any]],
    owned: Mapping[children.ChildKind, Sequence[dict[str, Any]]],
) -> ChangeSet:
    """The changes that bring the owned children to the desired set. Pure."""
    wanted = {
        _key(child["apiVersion"], child["kind"], child["metadata"]["name"]) for child in desired
    }
    prune = [
        Prune(kind, item["metadata"]["name"])
        for kind in children.CHILD_KINDS
        for item in owned.get(kind, ())
        if _key(kind.api_version, kind.kind, item["metadata"]["name"]) not in wanted
    ]
    return ChangeSet(apply=tuple(desired), prune=tuple(prune))
