"""A real, local Kubernetes control plane for development and integration tests.

`up` starts etcd, kube-apiserver, kube-controller-manager, kube-scheduler and kwok
(which simulates GPU nodes and drives their Pods to Running and Ready) on 127.0.0.1
and free ports, detached, with state, logs and a kubeconfig under
`~/.cache/llm-operator/dev/<name>/`; `down` stops them and removes the state;
`status` reports each component. The binaries come from `hack/controlplane/build.sh`.
It is development tooling, not part of the shipped package: `model` (settings and
cached binaries), `certs` (PKI and kubeconfigs), `procs` (the process supervisor),
`probes` (health checks), `nodes` (simulated GPU nodes), `cluster` (up, down, status).
"""

from tests.support.devcluster.cluster import down, status, up
from tests.support.devcluster.model import (
    COMPONENTS,
    DEFAULT_GPU_PRODUCT,
    DEFAULT_GPUS_PER_NODE,
    DEFAULT_NAME,
    DEFAULT_NODES,
    GPU_RESOURCE,
    Cluster,
    ClusterConfig,
    ClusterError,
    ClusterStatus,
    Components,
    ComponentStatus,
)
from tests.support.devcluster.procs import log_tail

__all__ = [
    "COMPONENTS",
    "DEFAULT_GPUS_PER_NODE",
    "DEFAULT_GPU_PRODUCT",
    "DEFAULT_NAME",
    "DEFAULT_NODES",
    "GPU_RESOURCE",
    "Cluster",
    "ClusterConfig",
    "ClusterError",
    "ClusterStatus",
    "ComponentStatus",
    "Components",
    "down",
    "log_tail",
    "status",
    "up",
]
