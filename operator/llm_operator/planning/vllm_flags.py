"""vLLM's command-line flags, as its own parser defines them, and a parser rebuilt from them.

`data/vllm-flags.json` is written by `make vllm-catalog` from vLLM's own parser (see
`tests/support/vllm_catalog.py`; a conformance test checks the file still equals what
that parser says). This module loads it and rebuilds an equivalent standard-library
`argparse` parser: the same option strings, abbreviations allowed as vLLM's parser
allows them, the same number of values, the same choices and a converter per kind of
value. `parse` first rewrites the arguments the way vLLM's `FlexibleArgumentParser`
does before its `argparse` runs (underscores in flag names become dashes, `-O3` is
`--optimization-level 3`, dotted `--x.y value` arguments are merged into one JSON
value for `--x`), so every spelling vLLM accepts resolves to the same destination
here: `-tp 2`, `--tensor_parallel_size=2` and `--tensor-parallel 2` all name
`tensor_parallel_size`. Hand-written rather than importing vLLM's parser, because the
operator cannot carry vLLM: the conformance tier's vLLM CPU install with its torch is
6.0 GB, and building vLLM's parser takes about 20 s on this project's 2-core machine
against 17 ms for this one; the conformance tier runs both parsers on the same
arguments and checks they agree.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import json
import re
from collections.abc import Callable, Sequence
from typing import Any, Literal

import pydantic

from llm_operator import planning
from llm_serving import policy

CATALOG_FILE = "vllm-flags.json"

ActionKind = Literal[
    "store", "append", "true", "false", "const", "boolean", "count", "help", "version", "positional"
]
TypeKind = Literal[
    "str",
    "int",
    "float",
    "json",
    "config",
    "str-or-json",
    "human-int",
    "human-int-or-auto",
    "lower-snake",
    "csv",
    "optional-str",
    "optional-int",
    "optional-float",
    "optional-json",
    "optional-config",
    "optional-human-int",
]
Choice = str | int | float | None


class Argument(policy.Model):
    """One argument of vLLM's OpenAI server."""

    flags: list[str] = pydantic.Field(description="Every option string; empty for a positional.")
    dest: str = pydantic.Field(description="The destination the value is stored under.")
    kind: ActionKind = pydantic.Field(description="How the parser treats the flag.")
    nargs: int | str | None = pydantic.Field(description="Number of values (argparse nargs).")
    type: TypeKind | None = pydantic.Field(description="Kind of value, for flags that take one.")
    choices: list[Choice] | None = pydantic.Field(description="Allowed values, if limited.")
    deprecated: bool = pydantic.Field(description="vLLM warns that the flag is deprecated.")


class QuantizationMethod(policy.Model):
    """One `--quantization` method vLLM registers."""

    name: str = pydantic.Field(description="The value of --quantization.")
    config: str = pydantic.Field(description="vLLM's config class for the method.")
    min_capability: int = pydantic.Field(
        description="Lowest CUDA compute capability the method runs on, times ten (75 = 7.5)."
    )
    deprecated: bool = pydantic.Field(
        description="vLLM refuses it unless --allow-deprecated-quantization is given."
    )


class Catalog(policy.Model):
    """The whole catalog of one vLLM version."""

    vllm_version: str = pydantic.Field(description="vLLM version the catalog was made from.")
    parser: str = pydantic.Field(description="The parser it was read from.")
    allow_abbrev: bool = pydantic.Field(description="Whether unique prefixes of flags work.")
    arguments: list[Argument] = pydantic.Field(description="Every argument, in parser order.")
    quantization_methods: list[QuantizationMethod] = pydantic.Field(
        description="Every --quantization method, in vLLM's order."
    )

    @pydantic.model_validator(mode="after")
    def _unique(self) -> Catalog:
        seen: set[str] = set()
        for argument in self.arguments:
            for flag in argument.flags:
                if flag in seen:
                    raise ValueError(f"flag {flag} appears twice")
                seen.add(flag)
        return self

    def argument(self, dest: str) -> Argument:
        """The argument stored under `dest`."""
        for argument in self.arguments:
            if argument.dest == dest:
                return argument
        raise KeyError(dest)

    def method(self, name: str) -> QuantizationMethod | None:
        """The quantization method called `name`, if vLLM has it."""
        return next((m for m in self.quantization_methods if m.name == name), None)


@functools.cache
def catalog() -> Catalog:
    """The checked-in catalog, validated once."""
    return Catalog.model_validate(planning.load_data(CATALOG_FILE))


class FlagError(ValueError):
    """Arguments vLLM's parser would refuse; the message names the flag."""


@dataclasses.dataclass(frozen=True)
class Use:
    """One argument as parsed: which destination, spelled how, with which values."""

    dest: str
    spelling: str
    values: Any


# --- converters: one per kind of value, each refusing what vLLM's converter refuses ---

_HUMAN_INT = re.compile(r"(\d+(?:\.\d+)?)([kKmMgGtT])")
_DECIMAL = {"k": 10**3, "m": 10**6, "g": 10**9, "t": 10**12}
_BINARY = {"K": 2**10, "M": 2**20, "G": 2**30, "T": 2**40}
_BARE_NUMBER = re.compile(r"\b\d+(?:\.\d+)?[kKmMgGtT]\b")
_QUOTED = re.compile(r'("(?:[^"\\]|\\.)*")')
_JSON_OBJECT = re.compile(r"(?s)^\s*{.*}\s*$")


def human_int(value: str) -> int:
    """`1k` is 1000, `1K` is 1024, `2.5m` is 2500000; binary suffixes take no decimals."""
    value = value.strip()
    match = _HUMAN_INT.fullmatch(value)
    if match:
        number, suffix = match.groups()
        if suffix in _DECIMAL:
            return int(float(number) * _DECIMAL[suffix])
        if "." in number:
            raise argparse.ArgumentTypeError(f"decimals are not allowed with {suffix}")
        return int(number) * _BINARY[suffix]
    return int(value)


def _human_int_or_auto(value: str) -> int:
    if value.strip() == "-1" or value.strip().lower() == "auto":
        return -1
    return human_int(value)


def _config(value: str) -> Any:
    # vLLM expands bare 80m-style numbers outside JSON strings, then validates the JSON
    # against its config class; the class's own fields are left for vLLM to check.
    parts = _QUOTED.split(value)
    for index in range(0, len(parts), 2):
        parts[index] = _BARE_NUMBER.sub(lambda m: str(human_int(m.group())), parts[index])
    return json.loads("".join(parts))


def _str_or_json(value: str) -> Any:
    return json.loads(value) if _JSON_OBJECT.match(value) else value


def _optional(convert: Callable[[str], Any]) -> Callable[[str], Any]:
    def optional(value: str) -> Any:
        return None if value in ("", "None") else convert(value)

    return optional


_CONVERTERS: dict[str, Callable[[str], Any]] = {
    "str": str,
    "int": int,
    "float": float,
    "json": json.loads,
    "config": _config,
    "str-or-json": _str_or_json,
    "human-int": human_int,
    "human-int-or-auto": _human_int_or_auto,
    "lower-snake": lambda value: value.lower().replace("-", "_"),
    "csv": lambda value: [part.strip() for part in value.split(",")],
}


def converter(kind: str) -> Callable[[str], Any]:
    """The converter for a kind of value, named as in the catalog (e.g. `optional-int`)."""
    base = _CONVERTERS[kind.removeprefix("optional-")]
    convert = _optional(base) if kind.startswith("optional-") else base

    def named(value: str) -> Any:
        return convert(value)

    # argparse names the type in its refusal: "invalid optional-int value: 'x'".
    named.__name__ = kind
    return named


# --- the rebuilt parser ---


class _Refusing(argparse.ArgumentParser):
    def error(self, message: str) -> Any:  # argparse calls this instead of raising
        raise FlagError(message)


class _Record(argparse.Action):
    """Stores nothing but the use itself, so every spelling and repetition is seen."""

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: Any,
        option_string: str | None = None,
    ) -> None:
        if values is _ABSENT:
            return
        uses: list[Use] = namespace.uses
        uses.append(Use(self.dest, option_string or self.dest, values))


_ABSENT = object()


@functools.cache
def _parser() -> _Refusing:
    data = catalog()
    parser = _Refusing(prog="vllm", add_help=False, allow_abbrev=data.allow_abbrev)
    for argument in data.arguments:
        options: dict[str, Any] = {"action": _Record, "default": argparse.SUPPRESS}
        if argument.kind == "positional":
            options.update(nargs=argument.nargs, default=_ABSENT)
            parser.add_argument(argument.dest, **options)
            continue
        if argument.kind in ("store", "append"):
            options["nargs"] = argument.nargs
            options["type"] = converter(argument.type or "str")
            if argument.choices is not None:
                options["choices"] = argument.choices
        else:
            options["nargs"] = 0
        parser.add_argument(*argument.flags, dest=argument.dest, **options)
    return parser


_UNDERSCORES = re.compile(r"(?<=--)[^.]*")


def _normalise_one(arg: str) -> list[str]:
    if arg.startswith("--help="):
        return ["--help"]
    if arg.startswith("--"):
        key, sep, value = arg.partition("=")
        key = _UNDERSCORES.sub(lambda m: m.group(0).replace("_", "-"), key, count=1)
        return [key + sep + value]
    if arg.startswith("-O") and arg != "-O":
        level = arg[3:] if arg[2] == "=" else arg[2:]
        return ["--optimization-level", level]
    return [arg]


def _dotted_value(text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        try:
            return human_int(text)
        except (ValueError, argparse.ArgumentTypeError):
            return text


def _merge(into: dict[str, Any], update: dict[str, Any]) -> None:
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(into.get(key), dict):
            _merge(into[key], value)
        elif isinstance(value, list) and isinstance(into.get(key), list):
            into[key] += value
        else:
            into[key] = value


def normalise(args: Sequence[str]) -> list[str]:
    """The arguments as vLLM's FlexibleArgumentParser hands them to argparse."""
    processed: list[str] = []
    for index, arg in enumerate(args):
        if arg == "-O" and index + 1 < len(args) and args[index + 1] in {"0", "1", "2", "3"}:
            processed.append("--optimization-level")
        else:
            processed += _normalise_one(arg)
    out: list[str] = []
    dotted: dict[str, dict[str, Any]] = {}
    skip = False
    for index, arg in enumerate(processed):
        if skip:
            skip = False
            continue
        if not arg.startswith("-") or "." not in arg:
            out.append(arg)
            continue
        name, sep, text = arg.partition("=")
        if sep and "." not in name:
            out.append(arg)  # the dot was in the value only
            continue
        if not sep:
            if index + 1 >= len(processed):
                raise FlagError(f"argument {arg}: expected one argument")
            text, skip = processed[index + 1], True
        if name.endswith("+"):
            name, text = name[:-1], json.dumps(text.split(","))
        key, *path = name.split(".")
        nested: Any = _dotted_value(text)
        for part in reversed(path):
            nested = {part: nested}
        _merge(dotted.setdefault(key, {}), nested)
    for key, value in dotted.items():
        out += [key, json.dumps(value)]
    return out


def parse(args: Sequence[str]) -> list[Use]:
    """Every argument vLLM would parse from `args`. Raises FlagError for what it refuses."""
    namespace = argparse.Namespace(uses=[])
    _parser().parse_args(normalise(args), namespace)
    uses: list[Use] = namespace.uses
    return uses
