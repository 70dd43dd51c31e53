"""engine.extraArgs against vLLM's flags, and the builders' own args against the catalog."""

from __future__ import annotations

import pathlib
import re
from typing import Any

import pydantic
import pytest

from llm_operator.api import v1alpha1
from llm_operator.builders import children, deployment
from llm_operator.planning import engine_args, quantization, vllm_flags
from llm_serving import policy
from tests.unit.operator import conftest

DEFAULT_IMAGE = v1alpha1.Engine().image
OTHER_IMAGE = "vllm/vllm-openai:v0.9.2"


def refusal(spec: dict[str, Any]) -> str:
    with pytest.raises(pydantic.ValidationError) as info:
        v1alpha1.parse_spec({"model": {"uri": "hf://org/model"}, **spec})
    (line,) = policy.error_lines(info.value, prefix="spec")
    return line


def extra(args: list[str], image: str = DEFAULT_IMAGE) -> str:
    return refusal({"engine": {"extraArgs": args, "image": image}})


@pytest.mark.parametrize(
    ("args", "fragments"),
    [
        (["-tp", "8"], ["-tp sets tensor_parallel_size", "spec.engine.tensorParallelSize"]),
        (["-q", "fp8"], ["-q sets quantization", "spec.quantization.method"]),
        (["--gpu-memory-utilization", "0.5"], ["spec.engine.gpuMemoryUtilization"]),
        (["--device-memory-utilization=0.5"], ["spec.engine.gpuMemoryUtilization"]),
        (["--gpu_memory_utilization=0.5"], ["spec.engine.gpuMemoryUtilization"]),
        (["--tensor-parallel", "2"], ["spec.engine.tensorParallelSize"]),
        (["-pp", "2"], ["spec.engine.pipelineParallelSize"]),
        (["--max-model-len", "4096"], ["spec.engine.maxModelLen"]),
        (["--no-enable-prefix-caching"], ["spec.engine.enablePrefixCaching"]),
        (["--kv-cache-dtype", "fp8"], ["spec.quantization.kvCacheDtype"]),
        (["--served-model-name", "x"], ["spec.model.servedName"]),
        (["org/other-model"], ["positional 'org/other-model'", "spec.model.uri"]),
        (["--port=9000"], ["--port is not allowed", "port 8000"]),
        (["--headless"], ["--headless is not allowed"]),
        (["-dp", "2"], ["-dp is not allowed", "replicas"]),
        (["--help"], ["--help is not allowed"]),
        (["--config", "/etc/vllm.yaml"], ["--config is not allowed"]),
    ],
)
def test_flags_a_typed_field_owns_or_that_break_the_pod_are_refused(
    args: list[str], fragments: list[str]
) -> None:
    line = extra(args)
    assert line.startswith("spec.engine.extraArgs: ")
    for fragment in fragments:
        assert fragment in line


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["--enable-turbo-mode"], "unrecognized arguments: --enable-turbo-mode"),
        (["--runner", "fast"], "--runner: invalid choice: 'fast'"),
        (["--block-size", "lots"], "--block-size: invalid int value: 'lots'"),
    ],
)
def test_what_vllm_refuses_is_refused_naming_the_flag_and_the_version(
    args: list[str], fragment: str
) -> None:
    line = extra(args)
    assert "vLLM 0.32.0 refuses them" in line
    assert fragment in line


def test_a_flag_given_twice_is_refused() -> None:
    line = extra(["--max-num-batched-tokens", "1024", "--max-num-batched-tokens=2048"])
    assert "sets max_num_batched_tokens again (first as --max-num-batched-tokens)" in line


def test_flags_vllm_accepts_pass() -> None:
    args = [
        "--enforce-eager",
        "--max-num-batched-tokens",
        "8k",
        "--compilation-config.mode",
        "3",
        "-O2",
        "--limit-mm-per-prompt",
        '{"image": 2}',
    ]
    spec = v1alpha1.parse_spec({"model": {"uri": "hf://org/model"}, "engine": {"extraArgs": args}})
    assert spec.engine.extra_args == args


def test_another_vllm_image_checks_only_owned_and_forbidden_flags() -> None:
    ok = {"model": {"uri": "hf://org/model"}}
    newer = ["--some-flag-of-another-version", "3"]
    spec = v1alpha1.parse_spec({**ok, "engine": {"extraArgs": newer, "image": OTHER_IMAGE}})
    assert spec.engine.extra_args == newer
    assert "spec.engine.tensorParallelSize" in extra(["-tp", "8"], OTHER_IMAGE)
    assert "spec.engine.gpuMemoryUtilization" in extra(["--gpu_memory_util=0.5"], OTHER_IMAGE)


def test_image_tag_decides() -> None:
    assert engine_args.image_matches_catalog("registry.local:5000/vllm/vllm-openai:v0.32.0")
    assert engine_args.image_matches_catalog("vllm/vllm-openai:0.32.0")
    assert not engine_args.image_matches_catalog("vllm/vllm-openai:v0.31.0")
    assert not engine_args.image_matches_catalog("vllm/vllm-openai@sha256:abc")


def test_flags_the_operator_sets_for_some_specs_only() -> None:
    s3 = refusal(
        {"model": {"uri": "s3://b/m"}, "engine": {"extraArgs": ["--load-format", "safetensors"]}}
    )
    assert s3.startswith("spec.engine.extraArgs: --load-format sets load_format")
    hf = v1alpha1.parse_spec(
        {"model": {"uri": "hf://o/m"}, "engine": {"extraArgs": ["--load-format", "safetensors"]}}
    )
    assert hf.engine.extra_args == ["--load-format", "safetensors"]
    deprecated = refusal(
        {
            "quantization": {"method": "fbgemm_fp8"},
            "engine": {"extraArgs": ["--allow-deprecated-quantization"]},
        }
    )
    assert "fbgemm_fp8 is deprecated" in deprecated


def test_table_names_only_vllm_destinations() -> None:
    flags = engine_args.table()
    known = {a.dest for a in vllm_flags.catalog().arguments}
    assert set(flags.owned) | set(flags.forbidden) | set(flags.unplanned) <= known


def _cel_regex() -> re.Pattern[str]:
    rule = engine_args.cel_rule()["rule"]
    return re.compile(rule.split("a.matches('", 1)[1].rsplit("')", 1)[0])


def test_the_crd_rule_covers_every_written_spelling_of_owned_and_forbidden_flags() -> None:
    pattern = _cel_regex()
    flags = engine_args.table()
    for dest in set(flags.owned) | set(flags.forbidden):
        for flag in vllm_flags.catalog().argument(dest).flags:
            variants = [flag, f"{flag}=1"]
            if flag.startswith("--"):
                variants.append("--" + flag[2:].replace("-", "_"))
            for variant in variants:
                assert pattern.match(variant), variant
    for allowed in ("--enforce-eager", "--model-impl", "--max-num-batched-tokens=8", "8", "-O3"):
        assert not pattern.match(allowed), allowed


SPEC_CORPUS: list[dict[str, Any]] = [
    {"model": {"uri": "s3://bucket/llama"}},
    {"model": {"uri": "pvc://claim/path", "trustRemoteCode": True}},
    {"model": {"uri": "hf://org/m@rev"}, "engine": {"enablePrefixCaching": True}},
    {"model": {"uri": "hf://org/m"}, "engine": {"enablePrefixCaching": False, "dtype": "half"}},
    {
        "model": {"uri": "hf://org/m"},
        "engine": {"pipelineParallelSize": 2, "tensorParallelSize": 2, "maxModelLen": 4096},
        "resources": {"gpus": 4},
    },
    *(
        {"model": {"uri": "hf://org/m"}, "quantization": {"method": m, "kvCacheDtype": "fp8"}}
        for m in quantization.method_names()
    ),
]


def _builder_args() -> list[tuple[str, list[str]]]:
    cases = []
    for path in conftest.EXAMPLES:
        obj = conftest.load(path)
        obj["metadata"] = {**obj["metadata"], "namespace": "ns", "uid": "u"}  # type: ignore[dict-item]
        cases.append((path.stem, deployment.engine_args(children.target_from_object(obj))))
    for index, spec in enumerate(SPEC_CORPUS):
        obj = {"metadata": {"name": "m", "namespace": "ns", "uid": "u"}, "spec": spec}
        cases.append((f"corpus-{index}", deployment.engine_args(children.target_from_object(obj))))
    return cases


BUILDER_ARGS = _builder_args()


@pytest.mark.parametrize(("name", "args"), BUILDER_ARGS, ids=[n for n, _ in BUILDER_ARGS])
def test_every_args_list_the_builders_emit_parses_against_the_catalog(
    name: str, args: list[str]
) -> None:
    uses = vllm_flags.parse(args)
    seen = [use.dest for use in uses]
    assert len(seen) == len(set(seen)), f"{name}: a destination set twice: {seen}"
    # What the operator sets itself is owned by a typed field, or set for some specs only
    # (and then refused in extraArgs by the spec's own check).
    owned = set(engine_args.table().owned) | {"load_format", "allow_deprecated_quantization"}
    owned |= {"host", "port"}
    extra_dests = {use.dest for use in vllm_flags.parse(_extra_args_of(name))}
    assert set(seen) - extra_dests <= owned, name


def _extra_args_of(name: str) -> list[str]:
    for path in conftest.EXAMPLES:
        if path.stem == name:
            engine = conftest.load(path)["spec"].get("engine") or {}  # type: ignore[union-attr]
            return list(engine.get("extraArgs") or [])
    return []


def test_corpus_covers_every_example(example: pathlib.Path) -> None:
    assert example.stem in {name for name, _ in BUILDER_ARGS}
