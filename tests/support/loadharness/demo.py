"""`make demo-load`: load on an autoscaled LLMDeployment in the demo cluster, shown as it happens.

Run after `make demo` (the Makefile target runs it first). It starts the load harness
(a real Prometheus, one engine simulator and gateway per Ready Pod, a load generator),
applies `examples/autoscaling-builtin.yaml` with windows short enough to watch (and
`prometheusUrl` pointing at the harness's Prometheus), sends load for a while, then
stops it, and prints every few seconds what `kubectl get llmd -w` shows (replicas,
QUEUE) with the autoscaler's conditions and each new Event explaining a change. It
waits for the scale-down, then stops every process it started; the LLMDeployment
stays (its ScalingActive turns False once the harness's Prometheus is gone, as it
should). `--load-seconds`, `--concurrency` and `--cluster` change the defaults.

    .venv/bin/python -m tests.support.loadharness.demo
"""

from __future__ import annotations

import argparse
import copy
import os
import pathlib
import sys
import time
from typing import Any

import yaml
from kubernetes import client

from tests.support import devcluster
from tests.support.loadharness import harness as harness_module
from tests.support.loadharness import replicas

GROUP, VERSION, PLURAL = "llmoperator.io", "v1alpha1", "llmdeployments"
ROOT = pathlib.Path(__file__).resolve().parents[3]
EXAMPLE = ROOT / "examples" / "autoscaling-builtin.yaml"
ENGINE = replicas.EngineSettings(max_num_seqs=4, decode_tokens_per_s=20.0, output_tokens=24)
#: Short enough to watch: the defaults are explained in docs/autoscaling.md.
DEMO_AUTOSCALING = {
    "targetPerReplica": 3,
    "pollingIntervalSeconds": 2,
    "stableWindowSeconds": 20,
    "panicWindowSeconds": 4,
    "scaleDownStabilizationSeconds": 45,
    "scalePeriodSeconds": 10,
}


def _manifest(prometheus_url: str) -> dict[str, Any]:
    doc: dict[str, Any] = yaml.safe_load(EXAMPLE.read_text(encoding="utf-8"))
    doc = copy.deepcopy(doc)
    doc["metadata"]["namespace"] = "default"
    doc["spec"]["engine"]["maxNumSeqs"] = ENGINE.max_num_seqs
    doc["spec"]["autoscaling"].update(DEMO_AUTOSCALING, prometheusUrl=prometheus_url)
    return doc


def _condition(obj: dict[str, Any], type_: str) -> dict[str, Any]:
    for cond in (obj.get("status") or {}).get("conditions") or []:
        if cond.get("type") == type_:
            return dict(cond)
    return {}


class Watch:
    """Prints the LLMDeployment's row and its new Events."""

    def __init__(self, api: client.ApiClient, name: str) -> None:
        self.objects = client.CustomObjectsApi(api)
        self.core = client.CoreV1Api(api)
        self.name = name
        self.seen: set[str] = set()
        self.started = time.monotonic()
        print(f"{'TIME':>5}  {'REPLICAS':>8}  {'READY':>5}  {'QUEUE':>5}  {'SIGNAL':>6}  SCALING")

    def get(self) -> dict[str, Any]:
        found = self.objects.get_namespaced_custom_object(
            GROUP, VERSION, "default", PLURAL, self.name
        )
        assert isinstance(found, dict)
        return found

    def row(self) -> dict[str, Any]:
        obj = self.get()
        status = obj.get("status") or {}
        autoscaler = status.get("autoscaler") or {}
        active, limited = _condition(obj, "ScalingActive"), _condition(obj, "ScalingLimited")
        queue = status.get("queueDepth")
        signal = autoscaler.get("signal")
        scaling = f"{active.get('reason', '-')}"
        if limited.get("status") == "True":
            scaling += f", limited: {limited.get('reason')}"
        print(
            f"{time.monotonic() - self.started:5.0f}  {status.get('desiredReplicas', '-'):>8}  "
            f"{status.get('readyReplicas', '-'):>5}  "
            f"{'-' if queue is None else f'{queue:g}':>5}  "
            f"{'-' if signal is None else f'{signal:g}':>6}  {scaling}"
        )
        for event in self.core.list_namespaced_event("default").items:
            uid = str(event.metadata.uid) if event.metadata else ""
            if event.involved_object.name != self.name or uid in self.seen:
                continue
            self.seen.add(uid)
            if event.reason in ("ScaledUp", "ScaledDown", "GPUShortage", "SignalRead") or (
                event.type == "Warning"
            ):
                print(f"       event {event.type} {event.reason}: {event.message}")
        return obj


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cluster", default=os.environ.get("DEMO_CLUSTER", "demo"))
    parser.add_argument("--load-seconds", type=float, default=120.0)
    parser.add_argument("--concurrency", type=int, default=12)
    args = parser.parse_args(argv)
    cluster_config = devcluster.ClusterConfig(name=args.cluster)
    if not devcluster.status(cluster_config).up:
        print(
            f"the demo cluster {args.cluster!r} is not up: run `make demo` first", file=sys.stderr
        )
        return 1
    cluster = devcluster.up(cluster_config)  # reuses the running cluster
    state, kubeconfig = cluster.state_dir, cluster.kubeconfig
    configuration = client.Configuration()
    configuration.host = cluster.server
    configuration.ssl_ca_cert = str(cluster.ca_file)
    configuration.cert_file = str(cluster.client_cert)
    configuration.key_file = str(cluster.client_key)
    api = client.ApiClient(configuration)
    with harness_module.Harness(api, state / "loadharness", engine=ENGINE) as running:
        manifest = _manifest(running.prometheus_url)
        name = manifest["metadata"]["name"]
        client.CustomObjectsApi(api).patch_namespaced_custom_object(
            GROUP,
            VERSION,
            "default",
            PLURAL,
            name,
            manifest,
            field_manager="llm-operator-demo",
            force=True,
            _content_type="application/apply-patch+yaml",
        )
        running.serve("default", name)
        print(f"applied examples/autoscaling-builtin.yaml as default/{name} with demo windows")
        print(f"  {DEMO_AUTOSCALING}; Prometheus {running.prometheus_url}")
        print(f"in another terminal: KUBECONFIG={kubeconfig} bin/kubectl get llmd -w\n")
        watch = Watch(api, name)
        while _condition(watch.get(), "Ready").get("status") != "True":
            time.sleep(2)
        print(f"== load: {args.concurrency} clients for {args.load_seconds:.0f}s")
        load = running.load("default", name, concurrency=args.concurrency, max_tokens=24)
        end = time.monotonic() + args.load_seconds
        while time.monotonic() < end:
            watch.row()
            time.sleep(5)
        load.stop()
        print(
            f"== load stopped ({load.stats.answered} answered, {load.stats.failed} failed); "
            "waiting for the scale-down"
        )
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            obj = watch.row()
            if (obj.get("status") or {}).get("desiredReplicas") == 1:
                break
            time.sleep(5)
        watch.row()
    print(f"\nharness stopped; kubectl describe llmd {name} shows the Events again.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
