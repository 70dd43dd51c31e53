"""The `llm-operator` command, run as a user runs it."""

from __future__ import annotations

import pathlib
import subprocess
import sys

import pytest
import yaml

from tests.unit.operator import conftest


def run(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "llm_operator.cli", *args],
        capture_output=True,
        text=True,
        input=stdin,
        timeout=60,
        check=False,
    )


def test_render_prints_children(example: pathlib.Path) -> None:
    result = run("render", "-f", str(example))
    assert result.returncode == 0, result.stderr
    objects = list(yaml.safe_load_all(result.stdout))
    kinds = [o["kind"] for o in objects]
    assert "Deployment" in kinds
    assert "Service" in kinds
    assert all("ownerReferences" not in o["metadata"] for o in objects)


def test_render_owner_uid_adds_references() -> None:
    result = run(
        "render", "-f", str(conftest.ROOT / "examples" / "minimal.yaml"), "--owner-uid", "abc"
    )
    assert result.returncode == 0
    for obj in yaml.safe_load_all(result.stdout):
        assert obj["metadata"]["ownerReferences"][0]["uid"] == "abc"


@pytest.mark.parametrize("path", conftest.INVALID, ids=[p.stem for p in conftest.INVALID])
def test_render_refuses_invalid_file_naming_the_field(path: pathlib.Path) -> None:
    result = run("render", "-f", str(path))
    assert result.returncode != 0
    assert result.stdout == ""
    expected = conftest.expected_path(path)
    lines = result.stderr.strip().splitlines()
    assert any(f": {expected}:" in line for line in lines), result.stderr
    assert "Traceback" not in result.stderr


def test_render_reports_every_error_one_line_each() -> None:
    text = """
apiVersion: llmoperator.io/v1alpha1
kind: LLMDeployment
metadata: {name: x}
spec:
  model: {uri: "nope"}
  replicas: -2
"""
    result = run("render", "-f", "-", stdin=text)
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 2
    assert lines[0].startswith("<stdin>: spec.model.uri:")
    assert lines[1].startswith("<stdin>: spec.replicas:")


def test_render_refuses_other_kinds_and_bad_yaml() -> None:
    wrong = run("render", "-f", "-", stdin="apiVersion: v1\nkind: Pod\nmetadata: {name: p}\n")
    assert wrong.returncode == 1
    assert "kind: must be LLMDeployment" in wrong.stderr
    broken = run("render", "-f", "-", stdin="spec: [unclosed")
    assert broken.returncode == 1
    assert "not valid YAML" in broken.stderr
    missing = run("render", "-f", "/nonexistent.yaml")
    assert missing.returncode == 1
    assert "cannot read" in missing.stderr


def test_crds_command_prints_the_committed_crd() -> None:
    result = run("crds")
    assert result.returncode == 0
    committed = (conftest.ROOT / "crds" / "llmoperator.io_llmdeployments.yaml").read_text()
    assert result.stdout == committed


def test_dev_runs_the_checkouts_cluster_tooling(tmp_path: pathlib.Path) -> None:
    # The development cluster is not shipped; `llm-operator dev` finds it in the checkout.
    result = run("dev", "status", "--name", "never-started", "--cache-dir", str(tmp_path))
    assert result.returncode == 1, result.stderr
    assert "never-started (down)" in result.stdout
    assert "components: none (not started)" in result.stdout


def test_the_operator_package_ships_no_cluster_tooling() -> None:
    import llm_operator

    package = pathlib.Path(llm_operator.__file__).parent
    assert not (package / "devcluster.py").exists()
    assert not list(package.rglob("*devcluster*"))
