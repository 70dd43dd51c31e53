"""The operator image's recipe (operator/Dockerfile) and its pinned dependencies.

No image is built here (no container runtime on these machines); these tests hold the
recipe to what the chart expects of it: a pinned base, a non-root numeric user equal
to the chart's runAsUser, the health and metrics ports, `llm-operator` as entry point,
and constraints that pin every runtime dependency within pyproject's ranges.
"""

from __future__ import annotations

import importlib.metadata
import re
import shlex

import yaml
from packaging.requirements import Requirement
from packaging.version import Version

from tests.unit.operator import conftest

ROOT = conftest.ROOT
DOCKERFILE = ROOT / "operator" / "Dockerfile"
CONSTRAINTS = ROOT / "operator" / "constraints.txt"
VALUES = ROOT / "charts" / "llm-operator" / "values.yaml"


def instructions() -> list[tuple[str, str]]:
    text = DOCKERFILE.read_text(encoding="utf-8").replace("\\\n", " ")
    found = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            found.append((word.upper(), rest.strip()))
    return found


def pins() -> dict[str, str]:
    found = {}
    for line in CONSTRAINTS.read_text(encoding="utf-8").splitlines():
        if line and not line.startswith("#"):
            name, _, version = line.partition("==")
            found[name] = version
    return found


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def test_base_image_is_a_pinned_slim_python() -> None:
    (arg,) = [rest for word, rest in instructions() if word == "ARG"]
    name, _, image = arg.partition("=")
    assert name == "PYTHON_IMAGE"
    repository, _, tag = image.partition(":")
    assert repository == "python"
    assert re.fullmatch(r"3\.\d+\.\d+-slim-\w+", tag), tag
    assert [rest.split()[0] for word, rest in instructions() if word == "FROM"] == [
        "${PYTHON_IMAGE}",
        "${PYTHON_IMAGE}",
    ]


def test_runs_as_the_charts_non_root_user_with_its_ports() -> None:
    values = yaml.safe_load(VALUES.read_text(encoding="utf-8"))
    (user,) = [rest for word, rest in instructions() if word == "USER"]
    uid, _, gid = user.partition(":")
    assert int(uid) == values["podSecurityContext"]["runAsUser"] != 0
    assert int(gid) == values["podSecurityContext"]["runAsGroup"]
    (expose,) = [rest for word, rest in instructions() if word == "EXPOSE"]
    assert {int(p) for p in expose.split()} == {
        values["operator"]["healthPort"],
        values["metrics"]["port"],
    }
    entry = [rest for word, rest in instructions() if word == "ENTRYPOINT"]
    assert entry == ['["llm-operator"]']
    # The final stage installs from the built wheels only, never from the network.
    installs = [rest for word, rest in instructions() if word == "RUN" and "pip install" in rest]
    assert len(installs) == 1
    assert "--no-index" in shlex.split(installs[0])


def test_constraints_pin_every_runtime_dependency_within_range() -> None:
    pinned = pins()
    wanted: dict[str, list[Requirement]] = {}
    todo = ["llm-operator"]
    while todo:
        dist = importlib.metadata.distribution(todo.pop())
        for line in dist.requires or []:
            req = Requirement(line)
            if req.marker is not None and not req.marker.evaluate({"extra": ""}):
                continue
            key = canonical(req.name)
            if key not in wanted:
                todo.append(req.name)
            wanted.setdefault(key, []).append(req)
    missing = sorted(set(wanted) - set(pinned))
    assert not missing, f"run `make constraints`: {missing} are not pinned"
    for key, reqs in wanted.items():
        for req in reqs:
            assert Version(pinned[key]) in req.specifier, f"{key}=={pinned[key]} vs {req}"
