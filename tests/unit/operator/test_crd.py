"""The generated CRD: committed copy in sync, structural, with the subresources users rely on."""

from __future__ import annotations

import json
from typing import Any

import yaml

from llm_operator.api import crd
from tests.unit.operator import conftest

CRD_FILE = conftest.ROOT / "crds" / "llmoperator.io_llmdeployments.yaml"
CHART_CRD = conftest.ROOT / "charts" / "llm-operator" / "crds" / CRD_FILE.name


def test_committed_crd_matches_the_models() -> None:
    assert CRD_FILE.read_text(encoding="utf-8") == crd.render_yaml(), (
        "crds/ is stale: run `make crds` and commit the result"
    )


def test_chart_copy_matches() -> None:
    assert CHART_CRD.read_text(encoding="utf-8") == CRD_FILE.read_text(encoding="utf-8"), (
        "charts/llm-operator/crds/ is stale: run `make crds` and commit the result"
    )


def _walk(node: Any, path: str, problems: list[str]) -> None:
    if isinstance(node, dict):
        for key in ("$ref", "$defs", "title", "const", "exclusiveMinimum", "exclusiveMaximum"):
            if key in node and not (key.startswith("exclusive") and node[key] is True):
                problems.append(f"{path}: {key}")
        if "anyOf" in node and not node.get("x-kubernetes-int-or-string"):
            problems.append(f"{path}: anyOf outside int-or-string")
        if "properties" in node and node.get("type") != "object":
            problems.append(f"{path}: properties without type object")
        if (
            "type" not in node
            and not node.get("x-kubernetes-int-or-string")
            and not node.get("x-kubernetes-preserve-unknown-fields")
            and path.count(".") > 0
            and not path.endswith(".properties")
        ):
            problems.append(f"{path}: no type")
        for key, value in node.items():
            if key in ("x-kubernetes-validations", "default", "enum", "required"):
                continue
            _walk(value, f"{path}.{key}", problems)
    elif isinstance(node, list):
        for index, item in enumerate(node):
            _walk(item, f"{path}[{index}]", problems)


def test_schema_is_structural() -> None:
    schema = crd.definition()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    problems: list[str] = []
    for name in ("spec", "status"):
        _walk(schema["properties"][name], name, problems)
    assert problems == []


def test_names_subresources_and_columns() -> None:
    definition = yaml.safe_load(crd.render_yaml())
    spec = definition["spec"]
    assert definition["metadata"]["name"] == "llmdeployments.llmoperator.io"
    assert spec["names"]["shortNames"] == ["llmd"]
    version = spec["versions"][0]
    assert version["name"] == "v1alpha1"
    assert version["subresources"]["scale"] == {
        "specReplicasPath": ".spec.replicas",
        "statusReplicasPath": ".status.replicas",
        "labelSelectorPath": ".status.selector",
    }
    columns = [c["name"] for c in version["additionalPrinterColumns"]]
    assert columns[:6] == ["Model", "Quantization", "Ready", "Queue", "Phase", "Age"]


def test_every_field_is_described() -> None:
    schema = crd.definition()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    missing: list[str] = []

    def visit(node: dict[str, Any], path: str) -> None:
        for name, prop in (node.get("properties") or {}).items():
            if not prop.get("description"):
                missing.append(f"{path}.{name}")
            visit(prop, f"{path}.{name}")
            if isinstance(prop.get("items"), dict):
                visit(prop["items"], f"{path}.{name}[]")

    visit(schema["properties"]["spec"], "spec")
    visit(schema["properties"]["status"], "status")
    assert missing == []


def test_cel_rules_present_for_cross_field_checks() -> None:
    text = json.dumps(crd.definition())
    for fragment in (
        "self.minReplicas <= self.maxReplicas",
        "self.resources.gpus == self.engine.tensorParallelSize * self.engine.pipelineParallelSize",
        "self.resources.gpus % self.engine.pipelineParallelSize == 0",
        "self.action != 'redact'",
        "size(self.apiKeys.secretName) > 0",
    ):
        assert fragment in text


def test_defaults_reach_the_schema() -> None:
    spec = crd.definition()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"][
        "spec"
    ]["properties"]
    assert spec["replicas"]["default"] == 1
    assert spec["engine"]["default"] == {}
    assert spec["engine"]["properties"]["gpuMemoryUtilization"]["default"] == 0.9
    assert spec["resources"]["properties"]["gpus"]["default"] == 1
    tolerations = spec["scheduling"]["properties"]["tolerations"]["default"]
    assert tolerations == [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]


def test_committed_reference_matches_the_models() -> None:
    from llm_operator.api import reference

    page = conftest.ROOT / "docs" / "api-reference.md"
    assert page.read_text(encoding="utf-8") == reference.markdown(), (
        "docs/api-reference.md is stale: run `make docs` and commit the result"
    )
