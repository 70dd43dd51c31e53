"""The `llm-serving` command: `gateway` (the guardrail sidecar) and `sim` (the engine simulator)."""

from __future__ import annotations

import sys

_USAGE = """usage: llm-serving {gateway,sim} [options]

  gateway   the guardrail gateway sidecar in front of vLLM (llm-serving gateway --help)
  sim       a vLLM-compatible engine simulator for tests and demos (llm-serving sim --help)
"""


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `llm-serving` console script."""
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help"):
        sys.stdout.write(_USAGE)
        return 0 if args else 2
    command, rest = args[0], args[1:]
    if command == "gateway":
        from llm_serving import gateway  # imported here: each command loads only its own stack

        return gateway.main(rest)
    if command == "sim":
        from llm_serving.sim import cli as sim_cli

        return sim_cli.main(rest)
    sys.stderr.write(f"llm-serving: unknown command {command!r}\n{_USAGE}")
    return 2


if __name__ == "__main__":
    sys.exit(main())
