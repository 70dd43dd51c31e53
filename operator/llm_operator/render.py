"""`llm-operator render`: the children of LLMDeployment files, with no cluster.

For previews, reviews and GitOps. Each input document must be an LLMDeployment;
an invalid one yields one line per error, each naming the field path, and no
output; so does one whose model the memory planner finds does not fit its GPUs.
Without `--owner-uid` the rendered objects carry no ownerReferences: a reference to
an object that does not exist would make the garbage collector delete them as soon
as they were applied. `load_targets` parses the documents for `llm-operator plan` too.
"""

from __future__ import annotations

from typing import Any, TextIO

import pydantic
import yaml

from llm_operator import errors, yamlio
from llm_operator.api import v1alpha1
from llm_operator.builders import children, common
from llm_operator.planning import memory
from llm_serving import policy


def load_documents(text: str, source: str) -> list[dict[str, Any]]:
    """YAML documents of a file, skipping empty ones."""
    try:
        documents = [doc for doc in yaml.safe_load_all(text) if doc is not None]
    except yaml.YAMLError as exc:
        raise errors.RenderError([f"{source}: not valid YAML: {exc}"]) from exc
    for index, doc in enumerate(documents):
        if not isinstance(doc, dict):
            raise errors.RenderError([f"{source}: document {index + 1} is not a mapping"])
    return documents


def _check_kind(doc: dict[str, Any], where: str) -> list[str]:
    expected = f"{v1alpha1.API_GROUP}/{v1alpha1.API_VERSION}"
    problems = []
    if doc.get("apiVersion") != expected:
        problems.append(f"{where}apiVersion: must be {expected}, got {doc.get('apiVersion')!r}")
    if doc.get("kind") != v1alpha1.KIND:
        problems.append(f"{where}kind: must be {v1alpha1.KIND}, got {doc.get('kind')!r}")
    name = (doc.get("metadata") or {}).get("name")
    if not isinstance(name, str) or not name:
        problems.append(f"{where}metadata.name: is required")
    if "spec" not in doc:
        problems.append(f"{where}spec: is required")
    return problems


def load_targets(
    documents: list[dict[str, Any]],
    source: str,
    namespace: str = "default",
    owner_uid: str | None = None,
    guardrail_defaults: dict[str, Any] | None = None,
) -> list[tuple[str, common.Target]]:
    """(where, target) of every LLMDeployment document. Raises RenderError listing problems.

    `guardrail_defaults` are the installation's (`llm_operator.guardrail_defaults`).
    """
    targets: list[tuple[str, common.Target]] = []
    problems: list[str] = []
    for index, doc in enumerate(documents):
        where = f"{source}: " if len(documents) == 1 else f"{source} (document {index + 1}): "
        kind_errors = _check_kind(doc, where)
        if kind_errors:
            problems += kind_errors
            continue
        obj = dict(doc)
        meta = dict(obj.get("metadata") or {})
        meta.setdefault("namespace", namespace)
        meta["uid"] = owner_uid or ""
        obj["metadata"] = meta
        try:
            target = children.target_from_object(obj, guardrail_defaults=guardrail_defaults)
            targets.append((where, target))
        except pydantic.ValidationError as exc:
            problems += [where + line for line in policy.error_lines(exc, prefix="spec")]
    if problems:
        raise errors.RenderError(problems)
    return targets


def render_objects(
    documents: list[dict[str, Any]],
    source: str,
    options: common.Options,
    namespace: str = "default",
    owner_uid: str | None = None,
) -> list[dict[str, Any]]:
    """Children of every LLMDeployment document. Raises RenderError listing every problem."""
    rendered: list[dict[str, Any]] = []
    problems: list[str] = []
    targets = load_targets(documents, source, namespace, owner_uid, options.guardrail_defaults)
    for where, target in targets:
        outcome = memory.plan_spec(target.spec)
        if outcome.refused and outcome.plan is not None:
            problems += [where + line for line in memory.refusal(target.spec, outcome.plan)]
            continue
        for child in children.build_all(target, options):
            if owner_uid is None:
                child["metadata"].pop("ownerReferences", None)
            rendered.append(child)
    if problems:
        raise errors.RenderError(problems)
    return rendered


def dump(objects: list[dict[str, Any]], out: TextIO) -> None:
    """Multi-document YAML."""
    out.write(yamlio.dumps(objects))
