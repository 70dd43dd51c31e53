"""The vLLM flags catalog and the parser rebuilt from it: every spelling, every refusal."""

from __future__ import annotations

from typing import Any

import pytest

from llm_operator.api import v1alpha1
from llm_operator.planning import engine_args, vllm_flags

# A value each kind of value accepts, for the test that every flag of the catalog parses.
SAMPLES = {
    "str": "x",
    "int": "2",
    "float": "0.5",
    "json": "{}",
    "config": "{}",
    "str-or-json": "x",
    "human-int": "2k",
    "human-int-or-auto": "auto",
    "lower-snake": "x",
    "csv": "0,1",
}


def sample(argument: vllm_flags.Argument) -> list[str]:
    if argument.kind not in ("store", "append"):
        return []
    if argument.choices:
        value = next(c for c in argument.choices if c is not None)
        return [str(value)]
    kind = (argument.type or "str").removeprefix("optional-")
    return [SAMPLES[kind]]


def dests(args: list[str]) -> list[tuple[str, Any]]:
    return [(use.dest, use.values) for use in vllm_flags.parse(args)]


def test_catalog_is_the_default_images_version() -> None:
    catalog = vllm_flags.catalog()
    assert catalog.vllm_version == "0.32.0"
    assert "make_arg_parser" in catalog.parser
    assert engine_args.image_matches_catalog(v1alpha1.Engine().image)
    assert len(catalog.arguments) > 200
    assert catalog.method("awq") is not None


@pytest.mark.parametrize(
    "argument",
    [a for a in vllm_flags.catalog().arguments if a.flags],
    ids=[a.dest for a in vllm_flags.catalog().arguments if a.flags],
)
def test_every_spelling_of_every_flag_parses_to_its_destination(
    argument: vllm_flags.Argument,
) -> None:
    for flag in argument.flags:
        assert [use.dest for use in vllm_flags.parse([flag, *sample(argument)])] == [
            argument.dest
        ], flag


@pytest.mark.parametrize(
    "args",
    [
        ["-tp", "2"],
        ["--tensor-parallel-size", "2"],
        ["--tensor-parallel-size=2"],
        ["--tensor_parallel_size", "2"],
        ["--tensor_parallel_size=2"],
        ["--tensor-parallel", "2"],
        ["-tp=2"],
    ],
)
def test_spellings_vllm_accepts_resolve_to_one_destination(args: list[str]) -> None:
    assert dests(args) == [("tensor_parallel_size", 2)]


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["--enable-turbo-mode"], "unrecognized arguments: --enable-turbo-mode"),
        (["--dtype", "int3"], "invalid choice: 'int3'"),
        (["-tp", "two"], "invalid int value: 'two'"),
        (["--max-num-seqs"], "expected one argument"),
        (["--enable"], "ambiguous option: --enable"),
        (["--enforce-eager=yes"], "ignored explicit argument"),
        (["--max-model-len", "1.5K"], "decimals are not allowed"),
        (["--compilation-config", "{not json"], "invalid config value"),
    ],
)
def test_what_vllms_parser_refuses_is_refused(args: list[str], fragment: str) -> None:
    with pytest.raises(vllm_flags.FlagError) as info:
        vllm_flags.parse(args)
    assert fragment in str(info.value)


def test_optimization_level_shorthands() -> None:
    for args in (["-O3"], ["-O=3"], ["-O", "3"], ["--optimization-level", "3"]):
        assert dests(args) == [("optimization_level", "3")], args


def test_dotted_arguments_merge_into_one_json_value() -> None:
    parsed = dests(
        ["--compilation-config.mode", "3", "--enforce-eager", "--compilation-config.backend=eager"]
    )
    # vLLM appends the merged dotted arguments after the others, one per key as written.
    assert parsed == [
        ("enforce_eager", []),
        ("compilation_config", {"mode": 3, "backend": "eager"}),
    ]


def test_human_readable_integers() -> None:
    assert dests(["--max-model-len", "32k"]) == [("max_model_len", 32000)]
    assert dests(["--max-model-len", "32K"]) == [("max_model_len", 32768)]
    assert dests(["--max-model-len", "auto"]) == [("max_model_len", -1)]


def test_values_are_converted_as_vllm_converts_them() -> None:
    assert dests(["--moe-backend", "Flashinfer-Cutlass"]) == [("moe_backend", "flashinfer_cutlass")]
    assert dests(["--hf-overrides", '{"a": 1}']) == [("hf_overrides", {"a": 1})]
    assert dests(["--hf-overrides", "plain"]) == [("hf_overrides", "plain")]
    assert dests(["--revision", "None"]) == [("revision", None)]


def test_a_bare_word_is_the_model_positional() -> None:
    assert dests(["org/model"]) == [("model_tag", "org/model")]
