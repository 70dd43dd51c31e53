"""Find every compiled regular expression in the serving package and attack it.

Python's `re` backtracks, so a pattern can take time that grows with the square (or
worse) of its input: a leading unbounded repetition retried from every position of a
long run (``\\w*X``), two unbounded repetitions over the same characters side by side,
or one nested in another. `patterns` walks the modules' globals (and the tuples,
dicts and dataclasses they hold) for compiled patterns; `attacks` builds, from a
pattern's own parse tree, the inputs that drive such backtracking: for every
repetition, the shortest text that reaches it, its body pumped many times, then a
character that makes the rest fail; and plain long runs of each character the pattern
names. `nested_unbounded` is the static half: an unbounded repetition inside another.
"""

from __future__ import annotations

import dataclasses
import importlib
import pkgutil
import re
import re._constants as sre_constants  # type: ignore[import-not-found,unused-ignore]
import re._parser as sre_parse  # type: ignore[import-not-found,unused-ignore]
import time
import types
from collections.abc import Callable, Iterator
from typing import Any

MAXREPEAT = sre_constants.MAXREPEAT
_REPEATS = (sre_constants.MAX_REPEAT, sre_constants.MIN_REPEAT, sre_constants.POSSESSIVE_REPEAT)
# One sample per character category, and characters that end most runs.
_CATEGORY_SAMPLES = {
    sre_constants.CATEGORY_DIGIT: "0",
    sre_constants.CATEGORY_NOT_DIGIT: "a",
    sre_constants.CATEGORY_SPACE: " ",
    sre_constants.CATEGORY_NOT_SPACE: "a",
    sre_constants.CATEGORY_WORD: "a",
    sre_constants.CATEGORY_NOT_WORD: "!",
    sre_constants.CATEGORY_LINEBREAK: "\n",
    sre_constants.CATEGORY_NOT_LINEBREAK: "a",
}
_BREAKERS = ("\x00", "!", " ", "\n", ".")
# Characters of many scripts that long runs are made of.
SCRIPTS = "aA0 .-_'é中あ한яαก١ع😀\u0301+/="
Run = Callable[[], object]
Maker = Callable[[int], Run]
UNBOUNDED = 64
"""A repetition allowing more than this many iterations counts as unbounded."""


def _walk(value: Any, seen: set[int], depth: int) -> Iterator[re.Pattern[str]]:
    if id(value) in seen or depth > 4:
        return
    seen.add(id(value))
    if isinstance(value, re.Pattern):
        if isinstance(value.pattern, str):
            yield value
    elif isinstance(value, tuple | list | set | frozenset):
        for item in value:
            yield from _walk(item, seen, depth + 1)
    elif isinstance(value, dict):
        for item in value.values():
            yield from _walk(item, seen, depth + 1)
    elif dataclasses.is_dataclass(value) and not isinstance(value, type):
        for field in dataclasses.fields(value):
            yield from _walk(getattr(value, field.name), seen, depth + 1)
    elif hasattr(value, "__dict__") and not isinstance(value, type | types.ModuleType):
        for item in vars(value).values():
            yield from _walk(item, seen, depth + 1)


def patterns(package: str, *extra: object) -> dict[str, re.Pattern[str]]:
    """Every compiled `str` pattern in the modules of `package` (and in `extra` objects),
    by ``module.name`` (``module.name[index]`` inside containers)."""
    found: dict[str, re.Pattern[str]] = {}
    seen: set[int] = set()
    root = importlib.import_module(package)
    names = [package] + [
        info.name for info in pkgutil.walk_packages(root.__path__, prefix=package + ".")
    ]
    for name in names:
        try:
            module = importlib.import_module(name)
        except ImportError:  # an optional compiled module
            continue
        for attribute, value in vars(module).items():
            if isinstance(value, types.ModuleType | type) or callable(value):
                continue
            for index, pattern in enumerate(_walk(value, seen, 0)):
                key = f"{name}.{attribute}" + (
                    f"[{index}]" if not isinstance(value, re.Pattern) else ""
                )
                found[key] = pattern
    for number, value in enumerate(extra):
        for index, pattern in enumerate(_walk(value, seen, 0)):
            found[f"extra{number}[{index}]"] = pattern
    return found


# --------------------------------------------------------------------------- examples


def _class_samples(items: list[tuple[Any, Any]]) -> list[str]:
    """Characters an IN node matches (or, negated, does not)."""
    negate = any(op is sre_constants.NEGATE for op, _ in items)
    members: list[str] = []
    for op, av in items:
        if op is sre_constants.LITERAL:
            members.append(chr(av))
        elif op is sre_constants.RANGE:
            members.append(chr(av[0]))
            members.append(chr(av[1]))
        elif op is sre_constants.CATEGORY:
            members.append(_CATEGORY_SAMPLES.get(av, "a"))
    if not negate:
        return members or ["a"]
    outside = [c for c in SCRIPTS + "\x00!#" if not _in_class(c, items)]
    return outside[:4] or ["\x00"]


def _in_class(char: str, items: list[tuple[Any, Any]]) -> bool:
    negate = False
    hit = False
    for op, av in items:
        if op is sre_constants.NEGATE:
            negate = True
        elif op is sre_constants.LITERAL:
            hit |= ord(char) == av
        elif op is sre_constants.RANGE:
            hit |= av[0] <= ord(char) <= av[1]
        elif op is sre_constants.CATEGORY:
            sample = {
                sre_constants.CATEGORY_DIGIT: r"\d",
                sre_constants.CATEGORY_NOT_DIGIT: r"\D",
                sre_constants.CATEGORY_SPACE: r"\s",
                sre_constants.CATEGORY_NOT_SPACE: r"\S",
                sre_constants.CATEGORY_WORD: r"\w",
                sre_constants.CATEGORY_NOT_WORD: r"\W",
            }.get(av)
            if sample is not None:
                hit |= re.fullmatch(sample, char) is not None
    return hit != negate


def _firsts(node: Any) -> list[str]:
    """A few strings, each one way through `node` (a SubPattern or an item list)."""
    results = [""]
    for op, av in node:
        options: list[str]
        if op is sre_constants.LITERAL:
            options = [chr(av)]
        elif op is sre_constants.NOT_LITERAL:
            options = ["a" if av != ord("a") else "b"]
        elif op is sre_constants.ANY:
            options = ["a"]
        elif op is sre_constants.IN:
            options = _class_samples(av)[:3]
        elif op is sre_constants.BRANCH:
            options = [s for branch in av[1] for s in _firsts(branch)[:1]][:6]
        elif op is sre_constants.SUBPATTERN:
            options = _firsts(av[3])[:3]
        elif op is sre_constants.ATOMIC_GROUP:
            options = _firsts(av)[:3]
        elif op in _REPEATS:
            low = av[0]
            options = [s * max(low, 1 if low else 0) for s in _firsts(av[2])[:3]] or [""]
        else:  # AT, ASSERT, ASSERT_NOT, GROUPREF, CATEGORY ...
            options = [""]
        results = [r + o for r in results for o in options][:6]
    return results


def _pumps(pattern: re.Pattern[str]) -> Iterator[tuple[str, str]]:
    """(prefix, pump) for each repetition in `pattern`: the text that leads to it and one
    iteration of its body."""
    tree = sre_parse.parse(pattern.pattern, pattern.flags)

    def visit(node: Any, prefixes: list[str]) -> Iterator[tuple[str, str]]:
        items = list(node)
        for position, (op, av) in enumerate(items):
            before = [p + f for p in prefixes for f in _firsts(items[:position])][:4]
            if op in _REPEATS:
                for body in _firsts(av[2])[:4]:
                    if body:
                        for prefix in before:
                            yield prefix, body
                yield from visit(av[2], before)
            elif op is sre_constants.BRANCH:
                for branch in av[1]:
                    yield from visit(branch, before)
            elif op is sre_constants.SUBPATTERN:
                yield from visit(av[3], before)
            elif op is sre_constants.ATOMIC_GROUP:
                yield from visit(av, before)

    yield from visit(tree, [""])


def attacks(pattern: re.Pattern[str], length: int) -> dict[str, str]:
    """Inputs of about `length` characters likely to make `pattern` backtrack, by label."""
    found: dict[str, str] = {}
    for char in SCRIPTS:
        found[f"run {char!r}"] = char * length
    for prefix, pump in _pumps(pattern):
        count = max(1, (length - len(prefix)) // len(pump))
        # A character that ends the pumped run, and one that ends most others.
        breakers = ["\x00", next(b for b in _BREAKERS[1:] if b != pump[0])]
        for breaker in breakers:
            found[f"{prefix!r}+{pump!r}*n+{breaker!r}"] = prefix + pump * count + breaker
            # The same attack many times over: for repetitions bounded by a few dozen.
            short = prefix + pump * 40 + breaker
            found[f"({prefix!r}+{pump!r}*40+{breaker!r})*n"] = short * max(1, length // len(short))
    unique: dict[str, str] = {}
    seen: set[str] = set()
    for label, text in found.items():
        if text not in seen:
            seen.add(text)
            unique[label] = text
    return unique


def nested_unbounded(pattern: re.Pattern[str]) -> list[str]:
    """Descriptions of unbounded repetitions nested inside unbounded repetitions."""
    problems: list[str] = []

    def visit(node: Any, outer: bool) -> None:
        for op, av in node:
            if op in _REPEATS:
                unbounded = av[1] is MAXREPEAT or av[1] > UNBOUNDED
                if unbounded and outer and op is not sre_constants.POSSESSIVE_REPEAT:
                    problems.append(f"unbounded repetition inside another: {av}")
                visit(av[2], outer or unbounded)
            elif op is sre_constants.BRANCH:
                for branch in av[1]:
                    visit(branch, outer)
            elif op is sre_constants.SUBPATTERN:
                visit(av[3], outer)
            elif op in (sre_constants.ASSERT, sre_constants.ASSERT_NOT):
                visit(av[1], outer)
            elif op is sre_constants.ATOMIC_GROUP:
                visit(av, outer)

    visit(sre_parse.parse(pattern.pattern, pattern.flags), False)
    return problems


# --------------------------------------------------------------------------- timing

# Timings are this thread's CPU time, not wall time: on a loaded machine (other
# processes on the same cores) the thread's waits for a core are not counted, so the
# ratio measures the work the check does, which is what linear time is about.


def seconds(run: Callable[[], object], loops: int) -> float:
    """One timing of `loops` calls of `run`."""
    start = time.thread_time()
    for _ in range(loops):
        run()
    return time.thread_time() - start


def calibrate(run: Callable[[], object], target: float = 0.002) -> int:
    """How many calls of `run` take about `target` seconds (at least one)."""
    start = time.thread_time()
    run()
    once = time.thread_time() - start
    return max(1, min(1000, int(target / max(once, 1e-7))))


FACTOR = 8
"""Inputs grow this many times between the two timings: linear time grows 8 times,
quadratic 64 times, so a limit of 32 leaves linear code a factor of 4 for noise."""


def growth(make: Maker, size: int, factor: int = FACTOR, rounds: int = 5) -> float:
    """time(factor * size) / time(size) for the runs `make` builds: each timed the same
    number of calls, alternately, best of `rounds`, in this process and this moment (a
    ratio, never an absolute time)."""
    small = make(size)
    large = make(size * factor)
    loops = calibrate(small)
    best_small = best_large = float("inf")
    for _ in range(rounds):
        best_small = min(best_small, seconds(small, loops))
        best_large = min(best_large, seconds(large, loops))
    return best_large / max(best_small, 1e-9)


def superlinear(make: Maker, size: int, limit: float, factor: int = FACTOR) -> float | None:
    """The growth ratio when time grows more than `limit` times per `factor` times the
    input, measured twice (at `size` and at twice it) so that one noisy timing on a shared
    machine is not taken for it; None when it does not."""
    first = growth(make, size, factor)
    if first <= limit:
        return None
    second = growth(make, 2 * size, factor)
    return None if second <= limit else max(first, second)
