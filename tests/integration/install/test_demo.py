"""`make demo` (hack/demo.sh) as a new user runs it, with a kubectl and a helm on PATH that fail.

The demo must install the operator with `bin/helm install` from the chart and bring
both examples to Ready using only the project's own tools: the `kubectl` and `helm`
put first on PATH here exit 99 and say so, and the demo must not call them.
"""

from __future__ import annotations

import os
import pathlib
import secrets
import subprocess

import pytest

from tests.integration.install import conftest as install

pytestmark = pytest.mark.integration


def test_demo_uses_only_the_projects_tools(tmp_path: pathlib.Path) -> None:
    shims = tmp_path / "shims"
    shims.mkdir()
    for tool in ("kubectl", "helm"):
        shim = shims / tool
        shim.write_text(f'#!/bin/sh\necho "{tool} from PATH was called: $*" >&2\nexit 99\n')
        shim.chmod(0o755)
    env = {
        **os.environ,
        "PATH": f"{shims}:{os.environ['PATH']}",
        "DEMO_CLUSTER": f"demo-test-{secrets.token_hex(3)}",
    }
    env.pop("KUBECONFIG", None)
    try:
        out = subprocess.run(
            ["bash", str(install.ROOT / "hack" / "demo.sh")],
            capture_output=True,
            text=True,
            env=env,
            check=False,
            timeout=600,
        )
        text = out.stdout + out.stderr
        assert out.returncode == 0, text[-4000:]
        assert "from PATH was called" not in text
        assert "bin/helm upgrade --install llm-operator charts/llm-operator" in text
        assert "STATUS: deployed" in text
        assert "authenticated as ServiceAccount llm-system/llm-operator" in text
        assert text.count("condition met") == 2
    finally:
        subprocess.run(
            ["bash", str(install.ROOT / "hack" / "demo-down.sh")],
            capture_output=True,
            env=env,
            check=False,
            timeout=120,
        )
