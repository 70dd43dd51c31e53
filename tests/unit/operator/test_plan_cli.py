"""`llm-operator plan` and `render` on the planner's verdicts, run as a user runs them."""

from __future__ import annotations

import pathlib

import yaml

from llm_operator.planning import gpus
from tests.unit.operator import conftest
from tests.unit.operator.test_cli import run

TOO_BIG = """
apiVersion: llmoperator.io/v1alpha1
kind: LLMDeployment
metadata: {name: too-big}
spec:
  model: {uri: hf://meta-llama/Llama-3.3-70B-Instruct}
  resources: {gpuType: L4}
"""


def test_plan_prints_a_table_for_every_example(example: pathlib.Path) -> None:
    result = run("plan", "-f", str(example))
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    name = conftest.load(example)["metadata"]["name"]  # type: ignore[index]
    assert lines[0] == f"{example} {name}:"
    header = next(line for line in lines if line.strip().startswith("GPU"))
    assert header.split() == [
        "GPU",
        "TPxPP",
        "weights",
        "budget",
        "reserved",
        "KV",
        "cache",
        "per",
        "seq",
        "seqs",
        "fits",
    ]
    rows = [line for line in lines[lines.index(header) + 1 :] if "(" in line and "x" in line]
    spec = conftest.load(example)["spec"]
    gpu_type = (spec.get("resources") or {}).get("gpuType")  # type: ignore[union-attr]
    expected = 1 if gpu_type else len(gpus.catalog().gpus)
    assert len([r for r in rows if not r.strip().startswith("note:")]) == expected
    if gpu_type:
        assert rows[0].rstrip().endswith("yes"), rows[0]


def test_plan_of_a_model_too_big_for_its_gpu_says_why_and_exits_1() -> None:
    result = run("plan", "-f", "-", stdin=TOO_BIG)
    assert result.returncode == 1
    assert "no: weights" in result.stdout
    assert "the operator refuses this spec (InsufficientGPUMemory)" in result.stdout
    assert "short by" in result.stdout


def test_render_refuses_what_the_operator_would_refuse() -> None:
    result = run("render", "-f", "-", stdin=TOO_BIG)
    assert result.returncode == 1
    assert result.stdout == ""
    assert result.stderr.startswith("<stdin>: spec.resources.gpus: Llama 3.1/3.3 70B")


def test_render_writes_the_gpus_the_planner_chose() -> None:
    text = TOO_BIG.replace("{gpuType: L4}", "{gpuType: H100-80GB, gpus: 8}")
    text += "  engine: {maxModelLen: 8192}\n"
    result = run("render", "-f", "-", stdin=text)
    assert result.returncode == 0, result.stderr
    (deployment,) = [o for o in yaml.safe_load_all(result.stdout) if o["kind"] == "Deployment"]
    (vllm,) = [
        c for c in deployment["spec"]["template"]["spec"]["containers"] if c["name"] == "vllm"
    ]
    assert vllm["resources"]["limits"]["nvidia.com/gpu"] == "4"
    args = vllm["args"]
    assert args[args.index("--tensor-parallel-size") + 1] == "4"
    assert "--pipeline-parallel-size" not in args
    selector = deployment["spec"]["template"]["spec"]["nodeSelector"]
    assert selector == {"nvidia.com/gpu.product": "NVIDIA-H100-80GB-HBM3"}
