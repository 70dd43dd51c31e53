"""The check of `engine.extraArgs` against vLLM's own flags.

Every argument is resolved to the destination vLLM's parser stores it under (see
`vllm_flags`), so a flag is recognised in every spelling vLLM accepts. Refused: what
vLLM's parser itself refuses (an unknown flag, a bad choice, a value of the wrong
type, a missing value), a destination a typed field owns (`-tp 8` against
`engine.tensorParallelSize`, `-q fp8` against `quantization.method`, a second
`--gpu-memory-utilization`), one that would break the Pod (`--port`, `--headless`),
and the same destination given twice. Values and unknown flags are checked only when
the engine image is the vLLM version of the catalog (by its tag); with another image
the owned and forbidden flags are still found, in every spelling the catalog knows.
The table of owned, forbidden and unplanned destinations is `data/engine-flags.yaml`.
"""

from __future__ import annotations

import dataclasses
import functools
import re
from collections.abc import Sequence
from typing import Any

import pydantic

from llm_operator import planning
from llm_operator.planning import vllm_flags
from llm_serving import policy

TABLE_FILE = "engine-flags.yaml"
_MAX_MESSAGE = 300


class FlagTable(policy.Model):
    """Destinations extraArgs may not set, or that the memory planner does not model."""

    owned: dict[str, str] = pydantic.Field(description="Destination -> the typed field.")
    forbidden: dict[str, str] = pydantic.Field(description="Destination -> why not.")
    unplanned: dict[str, str] = pydantic.Field(
        description="Destination -> how it changes memory use beyond the planner's model."
    )

    @pydantic.model_validator(mode="after")
    def _known(self) -> FlagTable:
        dests = {argument.dest for argument in vllm_flags.catalog().arguments}
        unknown = sorted((set(self.owned) | set(self.forbidden) | set(self.unplanned)) - dests)
        if unknown:
            raise ValueError(f"not vLLM destinations: {', '.join(unknown)}")
        return self


@functools.cache
def table() -> FlagTable:
    """The checked-in table, validated against the catalog once."""
    return FlagTable.model_validate(planning.load_data(TABLE_FILE))


@dataclasses.dataclass(frozen=True)
class Checked:
    """What extraArgs set, and what is wrong with them."""

    uses: tuple[vllm_flags.Use, ...]
    problems: tuple[str, ...]

    def unplanned(self) -> list[str]:
        """`flag (why)` for each use the memory planner does not model."""
        reasons = table().unplanned
        return [f"{use.spelling} ({reasons[use.dest]})" for use in self.uses if use.dest in reasons]


def image_matches_catalog(image: str) -> bool:
    """Whether the image's tag is the catalog's vLLM version (`...:v0.32.0`)."""
    tag = image.rsplit("/", 1)[-1].partition("@")[0].partition(":")[2]
    return tag.removeprefix("v") == vllm_flags.catalog().vllm_version


def _shorten(message: str) -> str:
    return message if len(message) <= _MAX_MESSAGE else message[: _MAX_MESSAGE - 3] + "..."


def _resolve(token: str) -> vllm_flags.Use | None:
    """The destination of one option token, by exact spelling or unique prefix."""
    name = token.partition("=")[0]
    matches = {
        argument.dest: flag
        for argument in vllm_flags.catalog().arguments
        for flag in argument.flags
        if flag == name
    }
    if not matches and name.startswith("--") and vllm_flags.catalog().allow_abbrev:
        matches = {
            argument.dest: flag
            for argument in vllm_flags.catalog().arguments
            for flag in argument.flags
            if flag.startswith(name)
        }
    if len(matches) != 1:
        return None
    ((dest, flag),) = matches.items()
    return vllm_flags.Use(dest, flag, None)


def _scan(args: Sequence[str]) -> list[vllm_flags.Use]:
    """Option tokens only, for an image whose vLLM version the catalog does not describe."""
    try:
        tokens = vllm_flags.normalise(args)
    except vllm_flags.FlagError:
        tokens = list(args)
    return [use for t in tokens if t.startswith("-") and (use := _resolve(t)) is not None]


def check(args: Sequence[str], image: str) -> Checked:
    """Parse and judge extraArgs for an engine image."""
    version = vllm_flags.catalog().vllm_version
    problems: list[str] = []
    if image_matches_catalog(image):
        try:
            uses = vllm_flags.parse(args)
        except vllm_flags.FlagError as exc:
            return Checked((), (_shorten(f"vLLM {version} refuses them: {exc}"),))
    else:
        uses = _scan(args)
    flags = table()
    seen: dict[str, str] = {}
    for use in uses:
        spelling = use.spelling if use.dest != "model_tag" else f"positional {use.values!r}"
        if use.dest in flags.owned:
            problems.append(
                f"{spelling} sets {use.dest}, which {flags.owned[use.dest]} owns: "
                "set that field instead"
            )
        elif use.dest in flags.forbidden:
            problems.append(f"{spelling} is not allowed: {flags.forbidden[use.dest]}")
        elif use.dest in seen and vllm_flags.catalog().argument(use.dest).kind != "append":
            problems.append(f"{spelling} sets {use.dest} again (first as {seen[use.dest]})")
        seen.setdefault(use.dest, spelling)
    return Checked(tuple(uses), tuple(problems))


def _long_flag_pattern(flag: str) -> str:
    # vLLM turns underscores in a flag's name into dashes before parsing.
    return re.escape(flag[2:]).replace("\\-", "-").replace("-", "[-_]")


def cel_rule() -> dict[str, Any]:
    """The CRD's rule refusing, in extraArgs, the owned and forbidden flags' spellings.

    The API server checks each option exactly as written or as `--flag=value`, with
    dashes or underscores; abbreviations and a bare model name are left to the
    operator's check, which reports them in status.
    """
    flags = table()
    dests = sorted(set(flags.owned) | set(flags.forbidden))
    long_names: list[str] = []
    short_names: list[str] = []
    for dest in dests:
        for flag in vllm_flags.catalog().argument(dest).flags:
            if flag.startswith("--"):
                long_names.append(_long_flag_pattern(flag))
            else:
                short_names.append(re.escape(flag[1:]))
    pattern = f"^(--({'|'.join(long_names)})|-({'|'.join(short_names)}))(=.*)?$"
    return {
        "rule": f"!has(self.extraArgs) || self.extraArgs.all(a, !a.matches('{pattern}'))",
        "message": "extraArgs must not set flags a typed field owns or that would break the "
        "Pod (model, served name, parallelism, memory, context, quantization, dtype, "
        "prefix caching, trust-remote-code, host, port, help, config, data parallelism); "
        "use the typed fields",
        "fieldPath": ".extraArgs",
    }
