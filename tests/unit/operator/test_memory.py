"""The memory planner against published figures, its choice of TP size and its refusals."""

from __future__ import annotations

from typing import Any

import pytest

from llm_operator.api import v1alpha1
from llm_operator.planning import families, gpus, memory

GB = 1e9
GIB = 1024**3
LLAMA_8B = "hf://meta-llama/Llama-3.1-8B-Instruct"
LLAMA_70B = "hf://meta-llama/Llama-3.3-70B-Instruct"


def spec(uri: str = LLAMA_8B, **fields: Any) -> v1alpha1.LLMDeploymentSpec:
    return v1alpha1.parse_spec({"model": {"uri": uri}, **fields})


def planned(s: v1alpha1.LLMDeploymentSpec, gpu: str | None = None) -> memory.Plan:
    outcome = memory.plan_spec(s, gpus.resolve(gpu) if gpu else None)
    assert outcome.plan is not None, outcome.reason
    return outcome.plan


def test_llama_31_8b_in_bf16_needs_about_16_gb_of_weights() -> None:
    plan = planned(spec(resources={"gpuType": "H100-80GB"}))
    assert plan.weights_total * GIB / GB == pytest.approx(16.06, abs=0.1)


def test_llama_70b_in_4_bit_awq_needs_35_to_40_gb() -> None:
    plan = planned(
        spec(
            "hf://hugging-quants/Meta-Llama-3.1-70B-Instruct-AWQ-INT4",
            quantization={"method": "awq_marlin"},
            resources={"gpuType": "H100-80GB"},
        )
    )
    assert 35 <= plan.weights_total * GIB / GB <= 40
    assert plan.enforced


def test_against_vllms_own_memory_profile_of_llama_3_8b_on_an_h100() -> None:
    # vLLM's profile (vllm-project/vllm pull request 10511): weights 14.96 GiB, 7.48 GiB per
    # GPU at TP 2; 53.29 GiB left for the KV cache at TP 1 and utilization 0.9 (of the
    # 79.22 GiB CUDA reports; the catalog holds nvidia-smi's 79.65 GiB, 0.5% more).
    one = planned(spec("hf://meta-llama/Meta-Llama-3-8B", resources={"gpuType": "H100-80GB"}))
    assert one.weights == pytest.approx(14.96, abs=0.01)
    assert one.kv_cache == pytest.approx(53.29, rel=0.02)
    two = planned(
        spec(
            "hf://meta-llama/Meta-Llama-3-8B",
            engine={"tensorParallelSize": 2},
            resources={"gpus": 2, "gpuType": "H100-80GB"},
        )
    )
    assert two.weights == pytest.approx(7.48, abs=0.01)
    assert two.reserved == pytest.approx(3.58 + 1.26)


@pytest.mark.parametrize(
    ("uri", "kv_dtype", "bytes_per_element"),
    [
        (LLAMA_8B, "auto", 2),
        (LLAMA_70B, "auto", 2),
        (LLAMA_70B, "fp8", 1),
        ("hf://Qwen/Qwen2.5-7B-Instruct", "auto", 2),
        ("hf://mistralai/Mistral-7B-Instruct-v0.3", "fp8_e5m2", 1),
    ],
)
def test_kv_cache_per_token_is_2_x_layers_x_kv_heads_x_head_size_x_bytes(
    uri: str, kv_dtype: str, bytes_per_element: int
) -> None:
    family = families.find(uri)
    assert family is not None
    plan = planned(spec(uri, quantization={"kvCacheDtype": kv_dtype}), "H100-80GB")
    expected = 2 * family.layers * family.kv_heads * family.head_dim * bytes_per_element
    assert plan.kv_bytes_per_token == expected
    assert plan.sequence == pytest.approx(expected * family.context_length / GIB)


def test_tensor_parallelism_splits_weights_and_kv_heads() -> None:
    one = planned(spec(LLAMA_70B, engine={"tensorParallelSize": 1}), "H100-80GB")
    four = planned(
        spec(LLAMA_70B, engine={"tensorParallelSize": 4}, resources={"gpus": 4}), "H100-80GB"
    )
    assert four.weights == pytest.approx(one.weights / 4)
    assert four.kv_bytes_per_token == (one.kv_bytes_per_token or 0) / 4
    # Qwen2.5 7B has 4 KV heads: at TP 8 each GPU keeps one (vLLM replicates them).
    qwen = planned(
        spec(
            "hf://Qwen/Qwen2.5-7B-Instruct",
            engine={"tensorParallelSize": 8},
            resources={"gpus": 8},
        ),
        "L4",
    )
    assert qwen.kv_bytes_per_token == 2 * 28 * 1 * 128 * 2


def test_pipeline_parallelism_splits_layers() -> None:
    plan = planned(
        spec(
            LLAMA_70B,
            engine={"tensorParallelSize": 2, "pipelineParallelSize": 2},
            resources={"gpus": 4},
        ),
        "H100-80GB",
    )
    assert plan.kv_bytes_per_token == 2 * 40 * 4 * 128 * 2
    assert plan.gpus == 4


def test_unset_tensor_parallel_size_is_the_smallest_that_fits() -> None:
    s = spec(LLAMA_70B, engine={"maxModelLen": 8192}, resources={"gpus": 8, "gpuType": "H100-80GB"})
    outcome = memory.plan_spec(s)
    assert outcome.chosen
    assert outcome.plan is not None
    assert outcome.plan.fits
    tp = outcome.plan.tensor_parallel
    model = memory.model_figures(s)
    assert model is not None
    smaller = memory.plan(s, model, outcome.plan.gpu, tp // 2, 1)
    assert not smaller.fits
    assert memory.parallelism(s) == (tp, 1)
    assert 1 < tp < 8


def test_unset_tensor_parallel_size_without_a_plan_uses_every_gpu_asked_for() -> None:
    s = spec("hf://org/unknown-model", resources={"gpus": 4})
    assert memory.parallelism(s) == (4, 1)
    s = spec("hf://org/unknown-model", engine={"pipelineParallelSize": 2}, resources={"gpus": 4})
    assert memory.parallelism(s) == (2, 2)


def test_70b_in_bf16_on_one_l4_is_refused_with_the_numbers() -> None:
    s = spec(LLAMA_70B, resources={"gpuType": "L4"})
    outcome = memory.plan_spec(s)
    assert outcome.refused
    assert outcome.plan is not None
    (line,) = memory.refusal(s, outcome.plan)
    assert line.startswith("spec.resources.gpus: Llama 3.1/3.3 70B at 16 bits per weight needs ")
    assert f"{outcome.plan.weights_total:.1f} GiB of weights" in line
    assert "L4 (NVIDIA-L4) gives vLLM 20.2 GiB (22.5 GiB x gpuMemoryUtilization 0.9)" in line
    assert "short by" in line
    assert "does not fit on up to 8 L4 GPUs" in line


def test_a_context_too_long_for_the_kv_cache_is_refused_with_what_fits() -> None:
    s = spec(LLAMA_8B, resources={"gpuType": "L4"})
    outcome = memory.plan_spec(s)
    assert outcome.refused
    assert outcome.plan is not None
    (line,) = memory.refusal(s, outcome.plan)
    assert line.startswith("spec.engine.maxModelLen: one full 131072-token sequence needs 16.00")
    assert f"at most {outcome.plan.max_tokens} tokens fit" in line
    shorter = spec(
        LLAMA_8B, engine={"maxModelLen": outcome.plan.max_tokens}, resources={"gpuType": "L4"}
    )
    assert memory.plan_spec(shorter).plan.fits  # type: ignore[union-attr]
    too_long = spec(
        LLAMA_8B,
        engine={"maxModelLen": (outcome.plan.max_tokens or 0) + 64},
        resources={"gpuType": "L4"},
    )
    assert memory.plan_spec(too_long).refused


def test_no_refusal_without_a_gpu_type_or_model_figures() -> None:
    assert memory.plan_spec(spec(LLAMA_70B)).reason == "resources.gpuType is not set"
    unknown = memory.plan_spec(spec("hf://org/mystery", resources={"gpuType": "L4"}))
    assert unknown.plan is None
    assert "set spec.model.parameters" in unknown.reason
    assert not unknown.refused


def test_parameters_and_architecture_from_the_spec() -> None:
    s = spec(
        "hf://org/mystery",
        model={
            "uri": "hf://org/mystery",
            "parameters": "70B",
            "architecture": {"layers": 80, "kvHeads": 8, "headDim": 128, "contextLength": 4096},
        },
        resources={"gpuType": "L4"},
    )
    outcome = memory.plan_spec(s)
    assert outcome.plan is not None
    assert outcome.plan.weights_total * GIB == pytest.approx(70e9 * 2)
    assert outcome.plan.kv_bytes_per_token == 2 * 80 * 8 * 128 * 2
    assert outcome.refused


def test_a_width_the_checkpoint_decides_is_an_estimate_unless_given() -> None:
    guessed = spec(LLAMA_70B, quantization={"method": "gptq"}, resources={"gpuType": "L4"})
    outcome = memory.plan_spec(guessed)
    assert outcome.plan is not None
    assert not outcome.plan.fits
    assert not outcome.plan.enforced
    assert not outcome.refused
    assert "weightBits" in outcome.plan.assumptions[0]
    given = spec(
        LLAMA_70B,
        quantization={"method": "gptq", "weightBits": 4.16},
        resources={"gpuType": "L4"},
    )
    assert memory.plan_spec(given).refused


def test_flags_that_change_memory_use_make_the_plan_an_estimate() -> None:
    s = spec(
        LLAMA_70B, engine={"extraArgs": ["--cpu-offload-gb", "100"]}, resources={"gpuType": "L4"}
    )
    outcome = memory.plan_spec(s)
    assert outcome.plan is not None
    assert not outcome.refused
    assert "--cpu-offload-gb" in outcome.plan.assumptions[0]


def test_quantized_methods_keep_embeddings_at_16_bits() -> None:
    family = families.find(LLAMA_8B)
    assert family is not None
    plan = planned(spec(quantization={"method": "fp8"}), "H100-80GB")
    embeddings = family.vocab_size * family.hidden_size * 2
    body = families.parse_parameters(family.parameters) - embeddings
    assert plan.weights_total * GIB == pytest.approx(body * 1 + embeddings * 2)


@pytest.mark.parametrize(
    ("uri", "name"),
    [
        ("hf://meta-llama/Llama-3.1-8B-Instruct", "Llama 3.1 8B"),
        ("hf://meta-llama/Meta-Llama-3.1-8B-Instruct", "Llama 3.1 8B"),
        ("s3://models/llama-3.1-8b-instruct", "Llama 3.1 8B"),
        ("hf://meta-llama/Meta-Llama-3-8B", "Llama 3 8B"),
        ("hf://meta-llama/Llama-3.3-70B-Instruct@main", "Llama 3.1/3.3 70B"),
        ("hf://hugging-quants/Meta-Llama-3.1-70B-Instruct-AWQ-INT4", "Llama 3.1/3.3 70B"),
        ("hf://meta-llama/Llama-3.2-1B-Instruct", "Llama 3.2 1B"),
        ("hf://Qwen/Qwen2.5-7B-Instruct", "Qwen2.5 7B"),
        ("hf://Qwen/Qwen2.5-72B-Instruct", "Qwen2.5 72B"),
        ("hf://Qwen/Qwen2.5-32B-Instruct-AWQ", "Qwen2.5 32B"),
        ("hf://Qwen/Qwen2.5-0.5B", "Qwen2.5 0.5B"),
        ("pvc://weights/qwen2.5-1.5b", "Qwen2.5 1.5B"),
        ("hf://mistralai/Mistral-7B-Instruct-v0.3", "Mistral 7B v0.3"),
        ("hf://mistralai/Mixtral-8x7B-Instruct-v0.1", "Mixtral 8x7B"),
    ],
)
def test_a_model_uri_finds_exactly_its_family(uri: str, name: str) -> None:
    assert [family.name for family in families.matches(uri)] == [name]


@pytest.mark.parametrize(
    "uri", ["hf://mistralai/Mistral-7B-v0.1", "hf://org/Llama-3.1-80B", "hf://Qwen/Qwen3-8B"]
)
def test_a_model_the_catalog_does_not_know_finds_nothing(uri: str) -> None:
    assert families.find(uri) is None
