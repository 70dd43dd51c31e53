"""The Deployment: the vLLM container, the optional guardrail gateway sidecar, volumes.

Choices a reader may want explained:
- vLLM is started as `python3 -m vllm.entrypoints.openai.api_server`, which every
  vLLM OpenAI image has, rather than relying on the image's entrypoint.
- With guardrails on, vLLM binds 127.0.0.1, so nothing reaches it except through
  the gateway. Kubelet probes connect to the Pod IP, so the engine's probes are
  then `exec` probes that call 127.0.0.1 from inside the container; the gateway's
  own readiness (`/ready`) also requires the engine to answer.
- The startup probe allows 30 minutes: downloading and loading weights takes
  minutes, and liveness must not kill a replica that is still loading.
- The guardrail policy is hot-reloaded by the gateway, so a policy change does not
  restart GPU Pods (no checksum annotation on the template).
- Both containers run with the restricted Pod Security profile. vLLM keeps a
  writable root filesystem (compilers and caches write under it); the gateway's is
  read-only.
"""

from __future__ import annotations

from typing import Any

from llm_operator.builders import common
from llm_operator.planning import gpus, quantization

_HEALTH_SCRIPT = (
    "import sys, urllib.request; "
    "sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:{port}/health', timeout=4)"
    ".status == 200 else 1)"
)


def model_args(target: common.Target) -> list[str]:
    """`--model` and friends for the model URI."""
    uri = target.spec.model.uri
    scheme, _, rest = uri.partition("://")
    if scheme == "hf":
        repo, _, revision = rest.partition("@")
        args = ["--model", repo]
        if revision:
            args += ["--revision", revision]
        return args
    if scheme in ("s3", "gs"):
        # vLLM streams safetensors straight from object storage with the Run:ai loader.
        return ["--model", uri, "--load-format", "runai_streamer"]
    # pvc://claim/path: the claim is mounted read-only at PVC_MODEL_DIR.
    _, _, path = rest.partition("/")
    return ["--model", f"{common.PVC_MODEL_DIR}/{path}".rstrip("/")]


def engine_args(target: common.Target) -> list[str]:
    """Command-line flags of the vLLM OpenAI server."""
    spec = target.spec
    engine = spec.engine
    args = model_args(target)
    args += [
        "--served-model-name",
        target.served_name,
        "--host",
        "127.0.0.1" if target.gateway_enabled else "0.0.0.0",  # noqa: S104 - Pod network
        "--port",
        str(common.ENGINE_PORT),
        "--tensor-parallel-size",
        str(target.tensor_parallel_size),
        "--gpu-memory-utilization",
        f"{engine.gpu_memory_utilization:g}",
    ]
    if engine.pipeline_parallel_size > 1:
        args += ["--pipeline-parallel-size", str(engine.pipeline_parallel_size)]
    if engine.max_model_len is not None:
        args += ["--max-model-len", str(engine.max_model_len)]
    if engine.max_num_seqs is not None:
        args += ["--max-num-seqs", str(engine.max_num_seqs)]
    args += quantization.engine_flags(spec.quantization.method, spec.quantization.kv_cache_dtype)
    if engine.dtype != "auto":
        args += ["--dtype", engine.dtype]
    if engine.enable_prefix_caching is True:
        args.append("--enable-prefix-caching")
    elif engine.enable_prefix_caching is False:
        args.append("--no-enable-prefix-caching")
    if spec.model.trust_remote_code:
        args.append("--trust-remote-code")
    args += list(engine.extra_args)
    return args


def _engine_env(target: common.Target) -> list[dict[str, Any]]:
    spec = target.spec
    env: list[dict[str, Any]] = [
        {"name": "HOME", "value": "/tmp"},  # noqa: S108 - an emptyDir
        {"name": "HF_HOME", "value": common.MODEL_CACHE_DIR},
        {"name": "VLLM_CACHE_ROOT", "value": f"{common.MODEL_CACHE_DIR}/vllm"},
        {"name": "VLLM_NO_USAGE_STATS", "value": "1"},
        {"name": "DO_NOT_TRACK", "value": "1"},
    ]
    if spec.model.token_secret_ref is not None:
        ref = spec.model.token_secret_ref
        env.append(
            {
                "name": "HF_TOKEN",
                "valueFrom": {"secretKeyRef": {"name": ref.name, "key": ref.key}},
            }
        )
    for var in spec.engine.env:
        item: dict[str, Any] = {"name": var.name}
        if var.value is not None:
            item["value"] = var.value
        if var.value_from is not None:
            item["valueFrom"] = var.value_from
        env.append(item)
    return env


def _restricted(read_only_root: bool, user: int) -> dict[str, Any]:
    return {
        "allowPrivilegeEscalation": False,
        "capabilities": {"drop": ["ALL"]},
        "readOnlyRootFilesystem": read_only_root,
        "runAsNonRoot": True,
        "runAsUser": user,
        "runAsGroup": user,
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def _engine_probes(target: common.Target) -> dict[str, Any]:
    if target.gateway_enabled:
        script = _HEALTH_SCRIPT.format(port=common.ENGINE_PORT)
        action: dict[str, Any] = {"exec": {"command": ["python3", "-c", script]}}
    else:
        action = {"httpGet": {"path": "/health", "port": "http"}}
    return {
        "startupProbe": {
            **action,
            "periodSeconds": 10,
            "timeoutSeconds": 5,
            "failureThreshold": 180,
        },
        "livenessProbe": {
            **action,
            "periodSeconds": 15,
            "timeoutSeconds": 5,
            "failureThreshold": 4,
        },
        "readinessProbe": {
            **action,
            "periodSeconds": 5,
            "timeoutSeconds": 4,
            "failureThreshold": 3,
        },
    }


def engine_container(target: common.Target) -> dict[str, Any]:
    """The vLLM container."""
    spec = target.spec
    res = spec.resources
    gpu = {res.gpu_resource_name: str(target.gpus)}
    port_name = "engine" if target.gateway_enabled else "http"
    mounts: list[dict[str, Any]] = [
        {"name": "dshm", "mountPath": "/dev/shm"},  # noqa: S108 - a memory emptyDir
        {"name": "tmp", "mountPath": "/tmp"},  # noqa: S108 - an emptyDir
        {"name": "model-cache", "mountPath": common.MODEL_CACHE_DIR},
    ]
    if spec.model.uri.startswith("pvc://"):
        mounts.append({"name": "model", "mountPath": common.PVC_MODEL_DIR, "readOnly": True})
    return {
        "name": "vllm",
        "image": spec.engine.image,
        "imagePullPolicy": spec.engine.image_pull_policy,
        "command": ["python3", "-m", "vllm.entrypoints.openai.api_server"],
        "args": engine_args(target),
        "env": _engine_env(target),
        "ports": [{"name": port_name, "containerPort": common.ENGINE_PORT, "protocol": "TCP"}],
        "resources": {
            "requests": {"cpu": res.cpu, "memory": res.memory, **gpu},
            "limits": {"cpu": res.cpu, "memory": res.memory, **gpu},
        },
        **_engine_probes(target),
        "securityContext": _restricted(read_only_root=False, user=1000),
        "volumeMounts": mounts,
        "terminationMessagePolicy": "FallbackToLogsOnError",
    }


def gateway_container(target: common.Target, options: common.Options) -> dict[str, Any]:
    """The guardrail gateway sidecar in front of vLLM."""
    spec = target.spec
    gateway = spec.gateway
    args = [
        "--host",
        "0.0.0.0",  # noqa: S104 - Pod network
        "--port",
        str(common.GATEWAY_PORT),
        "--upstream",
        f"http://127.0.0.1:{common.ENGINE_PORT}",
        "--policy-file",
        f"{common.POLICY_DIR}/{common.POLICY_FILE}",
        "--model-name",
        target.served_name,
    ]
    mounts = [
        {"name": "guardrails-policy", "mountPath": common.POLICY_DIR, "readOnly": True},
        {"name": "gateway-tmp", "mountPath": "/tmp"},  # noqa: S108 - an emptyDir
    ]
    if spec.guardrails.api_keys.enabled:
        args += ["--api-keys-dir", common.API_KEYS_DIR]
        mounts.append({"name": "api-keys", "mountPath": common.API_KEYS_DIR, "readOnly": True})
    return {
        "name": "gateway",
        "image": gateway.image or options.gateway_image,
        "imagePullPolicy": "IfNotPresent",
        "command": ["llm-serving", "gateway"],
        "args": args,
        "env": [{"name": "LOG_LEVEL", "value": gateway.log_level}],
        "ports": [{"name": "http", "containerPort": common.GATEWAY_PORT, "protocol": "TCP"}],
        "resources": {
            "requests": {"cpu": gateway.cpu, "memory": gateway.memory},
            "limits": {"cpu": gateway.cpu, "memory": gateway.memory},
        },
        "startupProbe": {
            "httpGet": {"path": "/health", "port": "http"},
            "periodSeconds": 2,
            "failureThreshold": 30,
        },
        "livenessProbe": {
            "httpGet": {"path": "/health", "port": "http"},
            "periodSeconds": 10,
            "timeoutSeconds": 3,
            "failureThreshold": 3,
        },
        "readinessProbe": {
            "httpGet": {"path": "/ready", "port": "http"},
            "periodSeconds": 5,
            "timeoutSeconds": 3,
            "failureThreshold": 3,
        },
        "securityContext": _restricted(read_only_root=True, user=65532),
        "volumeMounts": mounts,
        "terminationMessagePolicy": "FallbackToLogsOnError",
    }


def _volumes(target: common.Target) -> list[dict[str, Any]]:
    spec = target.spec
    volumes: list[dict[str, Any]] = [
        {"name": "dshm", "emptyDir": {"medium": "Memory", "sizeLimit": spec.resources.shm_size}},
        {"name": "tmp", "emptyDir": {}},
    ]
    cache = spec.model_cache
    if cache.enabled:
        claim = cache.existing_claim or common.model_cache_claim_name(target)
        volumes.append({"name": "model-cache", "persistentVolumeClaim": {"claimName": claim}})
    else:
        volumes.append({"name": "model-cache", "emptyDir": {}})
    if spec.model.uri.startswith("pvc://"):
        claim = spec.model.uri.removeprefix("pvc://").split("/", 1)[0]
        volumes.append(
            {"name": "model", "persistentVolumeClaim": {"claimName": claim, "readOnly": True}}
        )
    if target.gateway_enabled:
        volumes.append(
            {
                "name": "guardrails-policy",
                "configMap": {"name": common.policy_configmap_name(target)},
            }
        )
        volumes.append({"name": "gateway-tmp", "emptyDir": {"sizeLimit": "64Mi"}})
        if spec.guardrails.api_keys.enabled:
            volumes.append(
                {
                    "name": "api-keys",
                    "secret": {"secretName": spec.guardrails.api_keys.secret_name},
                }
            )
    return volumes


def pod_annotations(target: common.Target) -> dict[str, str]:
    """Prometheus scrape annotations for the front container's /metrics."""
    if not target.spec.observability.scrape_annotations:
        return {}
    port = common.GATEWAY_PORT if target.gateway_enabled else common.ENGINE_PORT
    return {
        "prometheus.io/scrape": "true",
        "prometheus.io/port": str(port),
        "prometheus.io/path": "/metrics",
    }


def _node_selector(target: common.Target) -> dict[str, str]:
    selector = dict(target.spec.scheduling.node_selector)
    if target.spec.resources.gpu_type:
        selector.setdefault(
            "nvidia.com/gpu.product", gpus.node_label(target.spec.resources.gpu_type)
        )
    return selector


def pod_spec(target: common.Target, options: common.Options) -> dict[str, Any]:
    """The Pod template's spec."""
    spec = target.spec
    containers = [engine_container(target)]
    if target.gateway_enabled:
        containers.insert(0, gateway_container(target, options))
    pod: dict[str, Any] = {
        "serviceAccountName": target.name,
        "automountServiceAccountToken": False,
        "enableServiceLinks": False,
        "terminationGracePeriodSeconds": 60,
        "securityContext": {
            "runAsNonRoot": True,
            "seccompProfile": {"type": "RuntimeDefault"},
            "fsGroup": 1000,
        },
        "containers": containers,
        "volumes": _volumes(target),
        "tolerations": [
            t.model_dump(by_alias=True, exclude_none=True, mode="json")
            for t in spec.scheduling.tolerations
        ],
        "topologySpreadConstraints": [
            {
                "maxSkew": 1,
                "topologyKey": "kubernetes.io/hostname",
                "whenUnsatisfiable": "ScheduleAnyway",
                "labelSelector": {"matchLabels": common.selector_labels(target)},
            }
        ],
    }
    node_selector = _node_selector(target)
    if node_selector:
        pod["nodeSelector"] = node_selector
    if spec.scheduling.affinity is not None:
        pod["affinity"] = spec.scheduling.affinity
    if spec.scheduling.priority_class_name:
        pod["priorityClassName"] = spec.scheduling.priority_class_name
    if spec.scheduling.runtime_class_name:
        pod["runtimeClassName"] = spec.scheduling.runtime_class_name
    return pod


def build(target: common.Target, options: common.Options) -> dict[str, Any]:
    """The apps/v1 Deployment."""
    spec = target.spec
    template_meta: dict[str, Any] = {"labels": common.labels(target, "model-server")}
    annotations = pod_annotations(target)
    if annotations:
        template_meta["annotations"] = annotations
    deployment_spec: dict[str, Any] = {}
    if target.replicas is not None:
        deployment_spec["replicas"] = target.replicas
    deployment_spec.update(
        {
            "selector": {"matchLabels": common.selector_labels(target)},
            "revisionHistoryLimit": 3,
            "progressDeadlineSeconds": spec.rollout.progress_deadline_seconds,
            "strategy": {
                "type": "RollingUpdate",
                "rollingUpdate": {
                    "maxSurge": spec.rollout.max_surge,
                    "maxUnavailable": spec.rollout.max_unavailable,
                },
            },
            "template": {"metadata": template_meta, "spec": pod_spec(target, options)},
        }
    )
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": common.metadata(target, target.name, "model-server"),
        "spec": deployment_spec,
    }
