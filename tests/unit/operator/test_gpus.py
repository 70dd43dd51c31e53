"""The GPU catalog, gpuType resolution and the compatibility matrix."""

from __future__ import annotations

from typing import Any

import pydantic
import pytest

from llm_operator.api import v1alpha1
from llm_operator.builders import children, deployment
from llm_operator.builders import common as builders_common
from llm_operator.planning import gpus, quantization
from llm_serving import policy
from tests.support.devcluster import model as cluster_model
from tests.support.devcluster import nodes

REQUIRED = {
    # short name: (product label, compute capability)
    "T4": ("Tesla-T4", "7.5"),
    "L4": ("NVIDIA-L4", "8.9"),
    "A10G": ("NVIDIA-A10G", "8.6"),
    "L40S": ("NVIDIA-L40S", "8.9"),
    "A100-40GB": ("NVIDIA-A100-SXM4-40GB", "8.0"),
    "A100-80GB": ("NVIDIA-A100-SXM4-80GB", "8.0"),
    "H100-80GB": ("NVIDIA-H100-80GB-HBM3", "9.0"),
    "H200": ("NVIDIA-H200", "9.0"),
    "B200": ("NVIDIA-B200", "10.0"),
}


@pytest.mark.parametrize("name", sorted(REQUIRED))
def test_catalog_has_the_common_datacenter_gpus(name: str) -> None:
    gpu = gpus.resolve(name)
    assert gpu is not None
    assert (gpu.product_label, gpu.compute_capability) == REQUIRED[name]
    assert gpus.resolve(gpu.product_label) is gpu
    assert gpus.resolve(name.lower()) is gpu
    assert gpu.memory_gib > 14


def test_memory_is_what_the_devices_report() -> None:
    assert gpus.resolve("H100-80GB").memory_mib == 81559  # type: ignore[union-attr]
    assert gpus.resolve("L4").memory_mib == 23034  # type: ignore[union-attr]
    assert gpus.resolve("A100-40GB").memory_mib == 40960  # type: ignore[union-attr]


def test_dev_cluster_nodes_label_memory_from_the_catalog() -> None:
    config = cluster_model.ClusterConfig(gpu_product="NVIDIA-L40S")
    labels = nodes.manifest(config, 0)["metadata"]["labels"]
    assert labels["nvidia.com/gpu.memory"] == "46068"


def _target(resources: dict[str, Any], **spec: Any) -> builders_common.Target:
    obj = {
        "metadata": {"name": "m", "namespace": "ns", "uid": "u"},
        "spec": {"model": {"uri": "hf://org/model"}, "resources": resources, **spec},
    }
    return children.target_from_object(obj)


@pytest.mark.parametrize(
    ("gpu_type", "label"),
    [
        ("H100-80GB", "NVIDIA-H100-80GB-HBM3"),
        ("h100", "NVIDIA-H100-80GB-HBM3"),
        ("L4", "NVIDIA-L4"),
        ("NVIDIA-A100-SXM4-80GB", "NVIDIA-A100-SXM4-80GB"),
        ("nvidia-l40s", "NVIDIA-L40S"),
        ("NVIDIA-RTX-PRO-6000", "NVIDIA-RTX-PRO-6000"),  # not in the catalog: as written
    ],
)
def test_node_selector_is_the_product_label(gpu_type: str, label: str) -> None:
    pod = deployment.pod_spec(_target({"gpuType": gpu_type}), builders_common.Options())
    assert pod["nodeSelector"] == {"nvidia.com/gpu.product": label}


@pytest.mark.parametrize("gpu_type", ["H100x", "a100", "80GB", "nvidia h100"])
def test_unknown_gpu_types_that_are_no_product_label_are_refused(gpu_type: str) -> None:
    with pytest.raises(pydantic.ValidationError) as info:
        v1alpha1.parse_spec({"model": {"uri": "hf://o/m"}, "resources": {"gpuType": gpu_type}})
    (line,) = policy.error_lines(info.value, prefix="spec")
    assert line.startswith("spec.resources.gpuType: ")
    assert "H100-80GB" in line


@pytest.mark.parametrize(
    ("method", "dtype", "gpu", "path", "fragment"),
    [
        ("fp8", "auto", "V100-16GB", "quantization.method", "fp8 needs compute capability 7.5"),
        ("awq", "auto", "V100-16GB", "quantization.method", "awq needs compute capability 7.5"),
        ("modelopt", "auto", "T4", "quantization.method", "modelopt needs compute capability 8.0"),
        ("mxfp4", "auto", "T4", "quantization.method", "mxfp4 needs compute capability 8.0"),
        ("fp_quant", "auto", "H100-80GB", "quantization.method", "capability 10.0"),
        ("none", "bfloat16", "T4", "engine.dtype", "bfloat16 needs compute capability 8.0"),
    ],
)
def test_compatibility_refusals_carry_the_numbers(
    method: str, dtype: str, gpu: str, path: str, fragment: str
) -> None:
    found = gpus.resolve(gpu)
    assert found is not None
    refusals = quantization.compatibility(method, dtype, found).refusals
    assert refusals, (method, gpu)
    (where, message), *_ = refusals
    assert where == path
    assert fragment in message
    assert f"has {found.compute_capability}" in message
    assert "vLLM 0.32.0" in message
    with pytest.raises(pydantic.ValidationError) as info:
        v1alpha1.parse_spec(
            {
                "model": {"uri": "hf://o/m"},
                "quantization": {"method": method},
                "engine": {"dtype": dtype},
                "resources": {"gpuType": gpu},
            }
        )
    assert policy.error_lines(info.value, prefix="spec")[0].startswith(f"spec.{path}: ")


@pytest.mark.parametrize(
    ("method", "gpu"),
    [
        ("fp8", "H100-80GB"),
        ("fp8", "L4"),
        ("awq", "T4"),
        ("gptq", "V100-16GB"),
        ("fp_quant", "B200"),
    ],
)
def test_what_vllm_runs_is_not_refused(method: str, gpu: str) -> None:
    found = gpus.resolve(gpu)
    assert found is not None
    assert quantization.compatibility(method, "auto", found).refusals == ()


def test_fp8_below_89_runs_on_the_marlin_fallback_and_says_so() -> None:
    a100 = gpus.resolve("A100-80GB")
    assert a100 is not None
    found = quantization.compatibility("fp8", "auto", a100)
    assert found.refusals == ()
    (note,) = found.notes
    assert "weight-only" in note
    assert "8.9" in note
    h100 = gpus.resolve("H100-80GB")
    assert h100 is not None
    assert quantization.compatibility("fp8", "auto", h100).notes == ()
