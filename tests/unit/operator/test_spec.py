"""Spec validation: the examples parse, every bad spec names its field."""

from __future__ import annotations

import pathlib

import pydantic
import pytest

from llm_operator.api import v1alpha1
from llm_serving import policy
from tests.unit.operator import conftest


def test_examples_parse(example: pathlib.Path) -> None:
    doc = conftest.load(example)
    spec = v1alpha1.parse_spec(doc["spec"])  # type: ignore[arg-type]
    assert spec.model.uri


@pytest.mark.parametrize("path", conftest.INVALID, ids=[p.stem for p in conftest.INVALID])
def test_invalid_specs_name_the_field(path: pathlib.Path) -> None:
    doc = conftest.load(path)
    with pytest.raises(pydantic.ValidationError) as info:
        v1alpha1.parse_spec(doc["spec"])  # type: ignore[arg-type]
    lines = policy.error_lines(info.value, prefix="spec")
    expected = conftest.expected_path(path)
    assert any(line.startswith(expected + ":") for line in lines), lines


def test_defaults_are_applied() -> None:
    spec = v1alpha1.parse_spec({"model": {"uri": "hf://org/model"}})
    assert spec.replicas == 1
    assert spec.resources.gpus == 1
    assert spec.engine.tensor_parallel_size is None
    assert spec.engine.pipeline_parallel_size == 1
    assert spec.engine.gpu_memory_utilization == 0.9
    assert spec.guardrails.enabled is False
    assert spec.guardrails.input.pii.action is policy.Action.REDACT
    assert spec.scheduling.tolerations[0].key == "nvidia.com/gpu"


def test_nested_models_refuse_unknown_fields() -> None:
    with pytest.raises(pydantic.ValidationError) as info:
        v1alpha1.parse_spec(
            {"model": {"uri": "hf://org/model"}, "guardrails": {"output": {"toxic": {}}}}
        )
    assert policy.error_lines(info.value, prefix="spec") == [
        "spec.guardrails.output.toxic: Extra inputs are not permitted"
    ]


@pytest.mark.parametrize(
    "uri",
    [
        "hf://meta-llama/Llama-3.1-8B-Instruct",
        "hf://Qwen/Qwen2.5-7B@refs/pr/1",
        "s3://bucket/path/to/model",
        "gs://bucket",
        "pvc://models/llama/8b",
    ],
)
def test_model_uris_accepted(uri: str) -> None:
    assert v1alpha1.parse_spec({"model": {"uri": uri}}).model.uri == uri


@pytest.mark.parametrize(
    "uri", ["http://x/y", "hf://no-org", "pvc://Bad_Claim/x", "s3:/bucket", "file:///models"]
)
def test_model_uris_refused(uri: str) -> None:
    with pytest.raises(pydantic.ValidationError):
        v1alpha1.parse_spec({"model": {"uri": uri}})


def test_invalid_regex_is_refused_with_its_index() -> None:
    with pytest.raises(pydantic.ValidationError) as info:
        v1alpha1.parse_spec(
            {
                "model": {"uri": "hf://org/model"},
                "guardrails": {"input": {"denyPatterns": {"patterns": ["ok", "(unclosed"]}}},
            }
        )
    (line,) = policy.error_lines(info.value, prefix="spec")
    assert line.startswith("spec.guardrails.input.denyPatterns.patterns: patterns[1]")


def test_policy_document_round_trips() -> None:
    spec = v1alpha1.parse_spec(
        {"model": {"uri": "hf://org/model"}, "guardrails": {"enabled": True}}
    )
    document = spec.guardrails.model_dump(by_alias=True, mode="json")
    assert policy.GuardrailPolicy.model_validate(document) == spec.guardrails
