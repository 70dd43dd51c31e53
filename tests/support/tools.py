"""The project's own command-line tools (kubectl, helm, prometheus, promtool) for tests and scripts.

`make tools` (`hack/tools/build.sh`) builds each one pinned from the Go module proxy,
caches it under `~/.cache/llm-operator/bin/<tool>-<version>/` and links it into `bin/`
of the checkout. `path("helm")` returns the cached binary that `build.sh --paths`
names, so a test never runs a tool found on PATH; when the binary is missing it
raises `ToolMissingError` saying to run `make tools` (the integration tier turns that
into a failure with the reason, never a skip).
"""

from __future__ import annotations

import functools
import os
import subprocess
from pathlib import Path
from typing import Final

ROOT: Final = Path(__file__).resolve().parents[2]
BUILD_SCRIPT: Final = ROOT / "hack" / "tools" / "build.sh"
TOOLS: Final = ("kubectl", "helm", "prometheus", "promtool")


class ToolMissingError(RuntimeError):
    """A tool the project builds is not in the cache yet."""


@functools.cache
def paths() -> dict[str, str]:
    """Every KEY=VALUE line of `hack/tools/build.sh --paths` (versions and paths)."""
    result = subprocess.run(  # noqa: S603 - our own script, fixed arguments
        ["bash", str(BUILD_SCRIPT), "--paths"],  # noqa: S607 - bash from PATH
        capture_output=True,
        text=True,
        env=dict(os.environ),
        check=False,
    )
    if result.returncode != 0:
        raise ToolMissingError(f"{BUILD_SCRIPT} --paths failed: {result.stderr.strip()}")
    return dict(line.split("=", 1) for line in result.stdout.splitlines() if "=" in line)


def path(name: str) -> Path:
    """The cached executable of one of TOOLS; raises ToolMissingError when not built."""
    if name not in TOOLS:
        raise ValueError(f"unknown tool {name!r}; the project builds {', '.join(TOOLS)}")
    binary = Path(paths()[name])
    if not (binary.is_file() and os.access(binary, os.X_OK)):
        raise ToolMissingError(f"{binary} is missing: run `make tools` to build {name}")
    return binary


def version(name: str) -> str:
    """The pinned version of a tool, as build.sh names it (kubectl: the Kubernetes one)."""
    key = "kubernetes_version" if name == "kubectl" else f"{name}_version"
    if name == "promtool":
        key = "prometheus_version"
    return paths()[key]
