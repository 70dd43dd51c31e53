"""Behaviour of the builders, asserted on the objects they return."""

from __future__ import annotations

import json
from typing import Any

import kubernetes_validate
import pydantic
import pytest

from llm_operator import yamlio
from llm_operator.api import v1alpha1
from llm_operator.builders import autoscaling, children, common, core, deployment, signals
from llm_serving import policy
from tests.unit.operator import conftest

KUBERNETES_VERSION = "1.34.0"


def target(spec: dict[str, Any], name: str = "m", autoscaled: int | None = None) -> common.Target:
    obj = {"metadata": {"name": name, "namespace": "ns", "uid": "uid-1"}, "spec": spec}
    return children.target_from_object(obj, autoscaled=autoscaled)


def by_kind(objects: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {o["kind"]: o for o in objects}


def containers(obj: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {c["name"]: c for c in obj["spec"]["template"]["spec"]["containers"]}


BASE = {"model": {"uri": "hf://org/model"}}


def test_examples_validate_against_kubernetes_schemas(example: Any) -> None:
    doc = conftest.load(example)
    doc["metadata"]["namespace"] = "default"  # type: ignore[index]
    doc["metadata"]["uid"] = "uid-1"  # type: ignore[index]
    built_in = {"v1", "apps/v1", "policy/v1", "autoscaling/v2"}
    checked = 0
    for obj in children.build_all(children.target_from_object(doc), common.Options()):
        if obj["apiVersion"] in built_in:
            kubernetes_validate.validate(obj, KUBERNETES_VERSION, strict=True)
            checked += 1
    assert checked >= 4


def test_minimal_children() -> None:
    objects = children.build_all(target(BASE), common.Options())
    assert [o["kind"] for o in objects] == [
        "ServiceAccount",
        "Deployment",
        "Service",
        "PodDisruptionBudget",
    ]
    for obj in objects:
        meta = obj["metadata"]
        assert meta["labels"][common.LABEL_DEPLOYMENT] == "m"
        assert meta["labels"]["app.kubernetes.io/managed-by"] == "llm-operator"
        (ref,) = meta["ownerReferences"]
        assert ref["uid"] == "uid-1"
        assert ref["controller"] is True
        assert ref["apiVersion"] == "llmoperator.io/v1alpha1"


def test_engine_args_from_spec() -> None:
    t = target(
        {
            "model": {"uri": "hf://org/model@v2", "servedName": "chat", "trustRemoteCode": True},
            "quantization": {"method": "awq", "kvCacheDtype": "fp8"},
            "engine": {
                "maxModelLen": 8192,
                "maxNumSeqs": 32,
                "tensorParallelSize": 2,
                "pipelineParallelSize": 2,
                "enablePrefixCaching": False,
                "extraArgs": ["--enforce-eager"],
            },
            "resources": {"gpus": 4},
        }
    )
    args = deployment.engine_args(t)
    joined = " ".join(args)
    assert joined.startswith("--model org/model --revision v2 --served-model-name chat")
    for expected in (
        "--host 0.0.0.0",
        "--port 8000",
        "--tensor-parallel-size 2",
        "--pipeline-parallel-size 2",
        "--max-model-len 8192",
        "--max-num-seqs 32",
        "--quantization awq",
        "--kv-cache-dtype fp8",
        "--no-enable-prefix-caching",
        "--trust-remote-code",
    ):
        assert expected in joined
    assert args[-1] == "--enforce-eager"


def test_no_quantization_flags_when_none() -> None:
    args = deployment.engine_args(target(BASE))
    assert "--quantization" not in args
    assert "--kv-cache-dtype" not in args
    assert args[args.index("--served-model-name") + 1] == "m"


@pytest.mark.parametrize(
    ("uri", "model_args"),
    [
        ("s3://bucket/llama", ["--model", "s3://bucket/llama", "--load-format", "runai_streamer"]),
        ("pvc://weights/llama/8b", ["--model", "/mnt/models/llama/8b"]),
    ],
)
def test_model_sources(uri: str, model_args: list[str]) -> None:
    t = target({"model": {"uri": uri}})
    assert deployment.model_args(t) == model_args
    if uri.startswith("pvc://"):
        volumes = deployment.build(t, common.Options())["spec"]["template"]["spec"]["volumes"]
        assert {
            "name": "model",
            "persistentVolumeClaim": {"claimName": "weights", "readOnly": True},
        } in volumes


def test_gpu_resources_node_selector_and_tolerations() -> None:
    t = target(
        {
            **BASE,
            "resources": {"gpus": 2, "gpuType": "NVIDIA-A100-SXM4-80GB"},
            "engine": {"tensorParallelSize": 2},
        }
    )
    dep = deployment.build(t, common.Options())
    pod = dep["spec"]["template"]["spec"]
    engine = containers(dep)["vllm"]
    assert engine["resources"]["limits"]["nvidia.com/gpu"] == "2"
    assert engine["resources"]["requests"]["nvidia.com/gpu"] == "2"
    assert pod["nodeSelector"] == {"nvidia.com/gpu.product": "NVIDIA-A100-SXM4-80GB"}
    assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in pod[
        "tolerations"
    ]
    shm = next(v for v in pod["volumes"] if v["name"] == "dshm")
    assert shm["emptyDir"] == {"medium": "Memory", "sizeLimit": "8Gi"}


def test_guardrails_on_adds_sidecar_policy_and_loopback() -> None:
    t = target({**BASE, "guardrails": {"enabled": True}})
    objects = by_kind(children.build_all(t, common.Options(gateway_image="gw:1")))
    assert "ConfigMap" in objects
    policy_text = objects["ConfigMap"]["data"]["policy.json"]
    assert '"enabled": true' in policy_text
    dep = objects["Deployment"]
    cs = containers(dep)
    assert list(cs) == ["gateway", "vllm"]
    assert cs["gateway"]["image"] == "gw:1"
    args = cs["vllm"]["args"]
    assert args[args.index("--host") + 1] == "127.0.0.1"
    # Kubelet cannot reach loopback: the engine's probes run inside the container.
    assert "exec" in cs["vllm"]["startupProbe"]
    assert (
        cs["vllm"]["startupProbe"]["failureThreshold"] * cs["vllm"]["startupProbe"]["periodSeconds"]
        >= 600
    )
    assert cs["gateway"]["readinessProbe"]["httpGet"]["path"] == "/ready"
    assert cs["gateway"]["ports"][0]["name"] == "http"
    assert cs["vllm"]["ports"][0]["name"] == "engine"
    assert cs["gateway"]["securityContext"]["readOnlyRootFilesystem"] is True
    assert objects["Service"]["spec"]["ports"][0]["targetPort"] == "http"


@pytest.mark.parametrize(
    ("engine", "guardrails_input", "expected"),
    [
        ({"maxModelLen": 8192}, {}, 8192),
        ({"maxModelLen": 2048, "extraArgs": ["--enforce-eager"]}, {}, 2048),
        ({"maxModelLen": 8192}, {"maxPromptTokens": 6000}, 6000),
        ({}, {}, None),
    ],
)
def test_max_prompt_tokens_defaults_to_the_engine_context_length(
    engine: dict[str, Any], guardrails_input: dict[str, Any], expected: int | None
) -> None:
    spec = {**BASE, "engine": engine, "guardrails": {"enabled": True, "input": guardrails_input}}
    document = json.loads(core.policy_json(target(spec)))
    assert document["input"]["maxPromptTokens"] == expected
    assert policy.GuardrailPolicy.model_validate(document).input.max_prompt_tokens == expected


def test_context_length_is_stated_only_by_max_model_len() -> None:
    # extraArgs may not carry --max-model-len (engine.maxModelLen owns it, in every spelling),
    # so the typed field is the one place a spec states the engine's context length.
    for args in (["--max-model-len=4096"], ["--enforce-eager", "--max-model-len", "2048"]):
        with pytest.raises(pydantic.ValidationError, match=r"spec\.engine\.maxModelLen owns"):
            v1alpha1.parse_spec({**BASE, "engine": {"extraArgs": args}})


def test_prompt_length_is_an_estimate_in_operator_pods_and_says_so() -> None:
    """The operator mounts no tokenizer, so nothing may claim an exact count."""
    t = target({**BASE, "guardrails": {"enabled": True}})
    gateway = containers(by_kind(children.build_all(t, common.Options()))["Deployment"])["gateway"]
    assert "--tokenizer" not in gateway["args"]
    field = policy.InputGuardrails.model_fields["max_prompt_tokens"]
    assert field.description is not None
    assert "estimate" in field.description
    assert "when mounted" not in field.description
    readme = (conftest.ROOT / "README.md").read_text()
    assert "`tokenizer.json` when mounted" not in readme


def test_guardrails_off_has_no_sidecar_or_configmap() -> None:
    objects = by_kind(children.build_all(target(BASE), common.Options()))
    assert "ConfigMap" not in objects
    cs = containers(objects["Deployment"])
    assert list(cs) == ["vllm"]
    assert cs["vllm"]["startupProbe"]["httpGet"] == {"path": "/health", "port": "http"}


def test_api_keys_secret_is_mounted() -> None:
    t = target(
        {**BASE, "guardrails": {"enabled": True, "apiKeys": {"enabled": True, "secretName": "k"}}}
    )
    dep = deployment.build(t, common.Options())
    volumes = dep["spec"]["template"]["spec"]["volumes"]
    assert {"name": "api-keys", "secret": {"secretName": "k"}} in volumes
    assert "--api-keys-dir" in containers(dep)["gateway"]["args"]


def test_restricted_security_context() -> None:
    dep = deployment.build(target({**BASE, "guardrails": {"enabled": True}}), common.Options())
    pod = dep["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["automountServiceAccountToken"] is False
    for container in pod["containers"]:
        sc = container["securityContext"]
        assert sc["allowPrivilegeEscalation"] is False
        assert sc["capabilities"] == {"drop": ["ALL"]}
        assert sc["seccompProfile"] == {"type": "RuntimeDefault"}


def test_token_secret_becomes_hf_token() -> None:
    t = target({"model": {"uri": "hf://org/m", "tokenSecretRef": {"name": "hf"}}})
    env = containers(deployment.build(t, common.Options()))["vllm"]["env"]
    assert {
        "name": "HF_TOKEN",
        "valueFrom": {"secretKeyRef": {"name": "hf", "key": "token"}},
    } in env


def test_model_cache_claim_created_or_reused() -> None:
    created = by_kind(
        children.build_all(
            target({**BASE, "modelCache": {"enabled": True, "size": "50Gi"}}), common.Options()
        )
    )
    claim = created["PersistentVolumeClaim"]
    assert claim["metadata"]["name"] == "m-model-cache"
    assert claim["spec"]["resources"]["requests"]["storage"] == "50Gi"
    reused = by_kind(
        children.build_all(
            target({**BASE, "modelCache": {"enabled": True, "existingClaim": "shared"}}),
            common.Options(),
        )
    )
    assert "PersistentVolumeClaim" not in reused
    volumes = reused["Deployment"]["spec"]["template"]["spec"]["volumes"]
    assert {"name": "model-cache", "persistentVolumeClaim": {"claimName": "shared"}} in volumes


def test_replicas_writer() -> None:
    assert target({**BASE, "replicas": 3}).replicas == 3
    builtin = {**BASE, "autoscaling": {"enabled": True, "minReplicas": 2, "maxReplicas": 5}}
    assert target(builtin).replicas == 2
    assert target(builtin, autoscaled=9).replicas == 5
    keda = {
        **BASE,
        "autoscaling": {"enabled": True, "provider": "keda", "prometheusUrl": "http://p:9090"},
    }
    t = target(keda)
    assert t.replicas is None
    objects = by_kind(children.build_all(t, common.Options()))
    assert "replicas" not in objects["Deployment"]["spec"]
    scaled = objects["ScaledObject"]["spec"]
    assert scaled["scaleTargetRef"]["name"] == "m"
    assert (
        'max by (pod) (vllm:num_requests_waiting{namespace="ns",llmdeployment="m"})'
        in scaled["triggers"][0]["metadata"]["query"]
    )


def test_hpa_provider() -> None:
    t = target({**BASE, "autoscaling": {"enabled": True, "provider": "hpa"}})
    objects = by_kind(children.build_all(t, common.Options()))
    hpa = objects["HorizontalPodAutoscaler"]
    kubernetes_validate.validate(hpa, KUBERNETES_VERSION, strict=True)
    external = hpa["spec"]["metrics"][0]["external"]
    assert external["target"] == {"type": "AverageValue", "averageValue": "5"}
    assert external["metric"]["name"] == "llmoperator_queue_depth"
    # A Prometheus label (what prometheus-adapter matches), not the Pod label.
    assert external["metric"]["selector"] == {"matchLabels": {"llmdeployment": "m"}}
    assert "replicas" not in objects["Deployment"]["spec"]
    behavior = hpa["spec"]["behavior"]
    assert behavior["scaleDown"]["stabilizationWindowSeconds"] == 300
    assert {"type": "Pods", "value": 4, "periodSeconds": 15} in behavior["scaleUp"]["policies"]


def test_hpa_metric_follows_the_signal() -> None:
    spec = {
        **BASE,
        "guardrails": {"enabled": True},
        "autoscaling": {
            "enabled": True,
            "provider": "hpa",
            "metric": "inflight",
            "targetPerReplica": 32,
        },
    }
    hpa = autoscaling.horizontal_pod_autoscaler(target(spec))
    assert hpa is not None
    external = hpa["spec"]["metrics"][0]["external"]
    assert external["metric"]["name"] == "llmoperator_requests_in_flight"
    assert external["target"]["averageValue"] == "32"


def test_keda_wakes_from_zero_on_the_activation_query() -> None:
    spec = {
        **BASE,
        "autoscaling": {
            "enabled": True,
            "provider": "keda",
            "minReplicas": 0,
            "prometheusUrl": "http://p:9090",
            "activationQuery": 'sum(my_router_queue{model="m"})',
        },
    }
    scaled = autoscaling.scaled_object(target(spec))
    assert scaled is not None
    signal, wake = scaled["spec"]["triggers"]
    assert signal["name"] == "signal"
    assert signal["metadata"]["query"] == signals.query(target(spec))
    assert wake["name"] == "wake"
    assert wake["metadata"]["query"] == 'sum(my_router_queue{model="m"})'
    assert wake["metadata"]["activationThreshold"] == "0"
    assert scaled["spec"]["minReplicaCount"] == 0
    # With replicas, no wake trigger is needed.
    spec["autoscaling"] = {**spec["autoscaling"], "minReplicas": 1, "activationQuery": ""}  # type: ignore[dict-item]
    one = autoscaling.scaled_object(target(spec))
    assert one is not None
    assert [t["name"] for t in one["spec"]["triggers"]] == ["signal"]


@pytest.mark.parametrize(
    ("autoscaling_spec", "expected"),
    [
        ({}, 'sum(max by (pod) (vllm:num_requests_waiting{namespace="ns",llmdeployment="m"}))'),
        (
            {"includeRunning": True, "targetPerReplica": 48},
            "sum(max by (pod, __name__) "
            '({__name__=~"vllm:num_requests_waiting|vllm:num_requests_running",'
            'namespace="ns",llmdeployment="m"}))',
        ),
        (
            {"metric": "kvCacheUsage"},
            'sum(max by (pod) (vllm:kv_cache_usage_perc{namespace="ns",llmdeployment="m"}))',
        ),
        ({"query": "sum(my_queue)"}, "sum(my_queue)"),
    ],
)
def test_signal_queries(autoscaling_spec: dict[str, object], expected: str) -> None:
    spec = {**BASE, "autoscaling": {"enabled": True, **autoscaling_spec}}
    assert signals.query(target(spec)) == expected


def test_prometheus_adapter_rules_serve_every_hpa_metric() -> None:
    rules = signals.prometheus_adapter_rules()["externalRules"]
    names = {rule["name"]["as"] for rule in rules}
    assert names == set(signals.EXTERNAL_METRICS.values())
    for rule in rules:
        assert "<<.LabelMatchers>>" in rule["metricsQuery"]
        assert rule["resources"] == {"overrides": {"namespace": {"resource": "namespace"}}}
        assert 'llmdeployment!=""' in rule["seriesQuery"]


def test_pdb_settings() -> None:
    assert core.pod_disruption_budget(target(BASE))["spec"]["maxUnavailable"] == 1  # type: ignore[index]
    pdb = core.pod_disruption_budget(target({**BASE, "disruption": {"minAvailable": "50%"}}))
    assert pdb is not None
    assert pdb["spec"]["minAvailable"] == "50%"
    assert core.pod_disruption_budget(target({**BASE, "disruption": {"enabled": False}})) is None


def _component(endpoint: dict[str, object]) -> str:
    relabelings = endpoint["relabelings"]
    assert isinstance(relabelings, list)
    (component,) = [r["replacement"] for r in relabelings if r["targetLabel"] == "component"]
    return str(component)


def test_monitoring_objects() -> None:
    t = target(
        {
            **BASE,
            "guardrails": {"enabled": True},
            "observability": {"podMonitor": True, "prometheusRule": True},
        }
    )
    objects = by_kind(children.build_all(t, common.Options()))
    assert "ServiceMonitor" not in objects
    endpoints = objects["PodMonitor"]["spec"]["podMetricsEndpoints"]
    # One target per metrics source of a pod, told apart by `component`.
    assert [(e["path"], _component(e)) for e in endpoints] == [
        ("/metrics", "gateway"),
        ("/metrics/engine", "engine"),
    ]
    for endpoint in endpoints:
        labels = {r["targetLabel"] for r in endpoint["relabelings"]}
        assert {"namespace", "pod", "llmdeployment", "component"} <= labels
    alerts = [r["alert"] for r in objects["PrometheusRule"]["spec"]["groups"][0]["rules"]]
    assert "LLMQueueBacklog" in alerts

    plain = target({**BASE, "observability": {"serviceMonitor": True}})
    objects = by_kind(children.build_all(plain, common.Options()))
    assert "PodMonitor" not in objects
    monitor = objects["ServiceMonitor"]["spec"]
    assert monitor["selector"]["matchLabels"] == {common.LABEL_DEPLOYMENT: "m"}
    assert [(e["path"], _component(e)) for e in monitor["endpoints"]] == [("/metrics", "engine")]


def test_builders_are_deterministic() -> None:
    spec = conftest.load(conftest.ROOT / "examples" / "guardrails.yaml")["spec"]
    first = children.build_all(target(spec), common.Options())  # type: ignore[arg-type]
    second = children.build_all(target(spec), common.Options())  # type: ignore[arg-type]
    assert first == second


def test_every_child_kind_is_known() -> None:
    spec = {
        **BASE,
        "guardrails": {"enabled": True},
        "modelCache": {"enabled": True},
        "autoscaling": {"enabled": True, "provider": "keda", "prometheusUrl": "http://p"},
        "observability": {"podMonitor": True, "prometheusRule": True},
    }
    service_monitor = {**spec, "observability": {"serviceMonitor": True}}
    for obj in [
        *children.build_all(target(spec), common.Options()),
        *children.build_all(target(service_monitor), common.Options()),
    ]:
        assert children.kind_of(obj).kind == obj["kind"]


def test_spec_model_is_parsed_once() -> None:
    t = target(BASE)
    assert isinstance(t.spec, v1alpha1.LLMDeploymentSpec)


def test_docs_show_the_prometheus_adapter_rules_the_builder_makes() -> None:
    page = (conftest.ROOT / "docs" / "autoscaling.md").read_text(encoding="utf-8")
    assert yamlio.dumps([signals.prometheus_adapter_rules()]).strip() in page
