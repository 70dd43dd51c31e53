#!/usr/bin/env bash
# Builds, from the Go module proxy, the binaries of the local Kubernetes
# control plane used by `llm-operator dev` and the integration tests, and
# caches them keyed by version:
#
#   $CACHE/bin/kubernetes-$KUBERNETES_VERSION/{kube-apiserver,kube-controller-manager,kube-scheduler}
#   $CACHE/bin/kubectl-$KUBERNETES_VERSION/kubectl   (same module, same version ldflags)
#   $CACHE/bin/etcd-$ETCD_VERSION/etcd
#   $CACHE/bin/kwok-$KWOK_VERSION/{kwok,stages/*.yaml}
#   $CACHE/crds/keda-$KEDA_VERSION/*.yaml
#   $CACHE/crds/prometheus-operator-$PROMETHEUS_OPERATOR_VERSION/*.yaml
#
# with CACHE=${LLM_OPERATOR_CACHE:-$HOME/.cache/llm-operator}. Each entry is
# built in a temporary directory and renamed into place, so an interrupted run
# never leaves a half-built entry; a second run finds everything and does
# nothing but print "cached". Prints the cache path at the end. The cache and
# lock helpers are in hack/lib/cache.sh; `make tools` (hack/tools/build.sh)
# runs this script first, then builds helm and Prometheus.
#
# Usage: hack/controlplane/build.sh [--paths]
#   --paths  print KEY=VALUE lines (versions and cache paths) and build nothing;
#            tests.support.devcluster reads them to find the binaries.
set -euo pipefail

# Versions. The Kubernetes and etcd versions are also pinned in the wrapper
# modules next to this script (kubernetes/go.mod, etcd/go.mod); the script
# refuses to run if they disagree.
KUBERNETES_VERSION=v1.34.10
ETCD_VERSION=v3.6.16
KWOK_VERSION=v0.7.0
KEDA_VERSION=v2.21.0
PROMETHEUS_OPERATOR_VERSION=v0.91.0

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
LOG_PREFIX=controlplane
# shellcheck source=../lib/cache.sh
source "$HERE/../lib/cache.sh"

K8S_DIR=$BIN/kubernetes-$KUBERNETES_VERSION
KUBECTL_DIR=$BIN/kubectl-$KUBERNETES_VERSION
ETCD_DIR=$BIN/etcd-$ETCD_VERSION
KWOK_DIR=$BIN/kwok-$KWOK_VERSION
KEDA_DIR=$CRDS/keda-$KEDA_VERSION
PROM_DIR=$CRDS/prometheus-operator-$PROMETHEUS_OPERATOR_VERSION

K8S_BINARIES=(kube-apiserver kube-controller-manager kube-scheduler)
KWOK_STAGES=(
  node/fast/node-initialize.yaml
  node/heartbeat-with-lease/node-heartbeat-with-lease.yaml
  pod/fast/pod-ready.yaml
  pod/fast/pod-complete.yaml
  pod/fast/pod-delete.yaml
)
KEDA_CRDS=(
  keda.sh_scaledobjects.yaml
  keda.sh_scaledjobs.yaml
  keda.sh_triggerauthentications.yaml
  keda.sh_clustertriggerauthentications.yaml
)
PROM_CRDS=(
  monitoring.coreos.com_servicemonitors.yaml
  monitoring.coreos.com_podmonitors.yaml
  monitoring.coreos.com_prometheusrules.yaml
)

if [[ ${1:-} == --paths ]]; then
  cat <<EOF
cache=$CACHE
kubernetes_version=$KUBERNETES_VERSION
kubernetes_dir=$K8S_DIR
kubectl_dir=$KUBECTL_DIR
etcd_version=$ETCD_VERSION
etcd_dir=$ETCD_DIR
kwok_version=$KWOK_VERSION
kwok_dir=$KWOK_DIR
keda_version=$KEDA_VERSION
keda_crds_dir=$KEDA_DIR
prometheus_operator_version=$PROMETHEUS_OPERATOR_VERSION
prometheus_operator_crds_dir=$PROM_DIR
EOF
  exit 0
elif [[ $# -gt 0 ]]; then
  echo "usage: $0 [--paths]" >&2
  exit 2
fi

cached_kubernetes() { all_present "$K8S_DIR" "${K8S_BINARIES[@]}"; }
cached_kubectl() { all_present "$KUBECTL_DIR" kubectl; }
cached_etcd() { all_present "$ETCD_DIR" etcd; }
cached_kwok() {
  local stages=("${KWOK_STAGES[@]##*/}")
  all_present "$KWOK_DIR" kwok "${stages[@]/#/stages/}"
}
cached_keda() { all_present "$KEDA_DIR" "${KEDA_CRDS[@]}"; }
cached_prom() { all_present "$PROM_DIR" "${PROM_CRDS[@]}"; }

if cached_kubernetes && cached_kubectl && cached_etcd && cached_kwok && cached_keda && cached_prom; then
  log "kubernetes $KUBERNETES_VERSION (with kubectl), etcd $ETCD_VERSION, kwok $KWOK_VERSION, KEDA CRDs $KEDA_VERSION, Prometheus Operator CRDs $PROMETHEUS_OPERATOR_VERSION: cached"
  echo "$CACHE"
  exit 0
fi

command -v go >/dev/null || die "go is not on PATH (Go 1.24 or newer is needed)"

lock_cache

check_pin() {
  local gomod=$1 module=$2 version=$3
  grep -Eq "^(require)?[[:space:]]*$module $version([[:space:]]|$)" "$gomod" \
    || die "$gomod does not require $module $version (update the version at the top of $0 and the wrapper module together)"
}

export CGO_ENABLED=0
export GOFLAGS="-mod=readonly -buildvcs=false"
new_tmp "$CACHE" work
TMPWORK=$tmp

start=$(date +%s)

# The version ldflags, so `kube-apiserver --version`, `/version` and `kubectl
# version` say $KUBERNETES_VERSION, tree state clean.
kubernetes_ldflags() {
  local minor major build_date ldflags pkg
  minor=${KUBERNETES_VERSION#v}
  major=${minor%%.*}
  minor=${minor#*.}
  minor=${minor%%.*}
  build_date=$(module_time "k8s.io/kubernetes@$KUBERNETES_VERSION")
  ldflags="-s -w"
  for pkg in k8s.io/client-go/pkg/version k8s.io/component-base/version; do
    ldflags+=" -X $pkg.gitVersion=$KUBERNETES_VERSION"
    ldflags+=" -X $pkg.gitMajor=$major -X $pkg.gitMinor=$minor"
    ldflags+=" -X $pkg.gitTreeState=clean -X $pkg.buildDate=$build_date"
  done
  echo "$ldflags"
}

if cached_kubernetes; then
  log "kubernetes $KUBERNETES_VERSION: cached"
else
  check_pin "$HERE/kubernetes/go.mod" k8s.io/kubernetes "$KUBERNETES_VERSION"
  ldflags=$(kubernetes_ldflags)
  new_tmp "$BIN" "kubernetes-$KUBERNETES_VERSION"
  log "building kubernetes $KUBERNETES_VERSION (${K8S_BINARIES[*]}); a cold build takes a while"
  # One invocation for the three commands: they share most packages.
  (cd "$HERE/kubernetes" && go build -trimpath -ldflags "$ldflags" -o "$tmp/" \
    "${K8S_BINARIES[@]/#/k8s.io/kubernetes/cmd/}")
  all_present "$tmp" "${K8S_BINARIES[@]}" || die "kubernetes build produced no binaries"
  publish "$tmp" "$K8S_DIR"
  log "kubernetes $KUBERNETES_VERSION: built ($(($(date +%s) - start))s so far)"
fi

if cached_kubectl; then
  log "kubectl $KUBERNETES_VERSION: cached"
else
  check_pin "$HERE/kubernetes/go.mod" k8s.io/kubernetes "$KUBERNETES_VERSION"
  ldflags=$(kubernetes_ldflags)
  new_tmp "$BIN" "kubectl-$KUBERNETES_VERSION"
  log "building kubectl $KUBERNETES_VERSION"
  (cd "$HERE/kubernetes" && go build -trimpath -ldflags "$ldflags" -o "$tmp/kubectl" \
    k8s.io/kubernetes/cmd/kubectl)
  publish "$tmp" "$KUBECTL_DIR"
  log "kubectl $KUBERNETES_VERSION: built ($(($(date +%s) - start))s so far)"
fi

if cached_etcd; then
  log "etcd $ETCD_VERSION: cached"
else
  check_pin "$HERE/etcd/go.mod" go.etcd.io/etcd/server/v3 "$ETCD_VERSION"
  new_tmp "$BIN" "etcd-$ETCD_VERSION"
  log "building etcd $ETCD_VERSION"
  (cd "$HERE/etcd" && go build -trimpath -ldflags "-s -w" -o "$tmp/etcd" .)
  publish "$tmp" "$ETCD_DIR"
  log "etcd $ETCD_VERSION: built ($(($(date +%s) - start))s so far)"
fi

if cached_kwok; then
  log "kwok $KWOK_VERSION: cached"
else
  new_tmp "$BIN" "kwok-$KWOK_VERSION"
  log "building kwok $KWOK_VERSION"
  (cd "$TMPWORK" && GOFLAGS=-buildvcs=false GOBIN="$tmp" \
    go install -trimpath -ldflags "-s -w" "sigs.k8s.io/kwok/cmd/kwok@$KWOK_VERSION")
  src=$(module_dir "sigs.k8s.io/kwok@$KWOK_VERSION")/kustomize/stage
  mkdir -p "$tmp/stages"
  for stage in "${KWOK_STAGES[@]}"; do
    install -m 0644 "$src/$stage" "$tmp/stages/"
  done
  publish "$tmp" "$KWOK_DIR"
  log "kwok $KWOK_VERSION: built ($(($(date +%s) - start))s so far)"
fi

if cached_keda; then
  log "KEDA CRDs $KEDA_VERSION: cached"
else
  new_tmp "$CRDS" "keda-$KEDA_VERSION"
  src=$(module_dir "github.com/kedacore/keda/v2@$KEDA_VERSION")/config/crd/bases
  for crd in "${KEDA_CRDS[@]}"; do install -m 0644 "$src/$crd" "$tmp/"; done
  publish "$tmp" "$KEDA_DIR"
  log "KEDA CRDs $KEDA_VERSION: copied"
fi

if cached_prom; then
  log "Prometheus Operator CRDs $PROMETHEUS_OPERATOR_VERSION: cached"
else
  new_tmp "$CRDS" "prometheus-operator-$PROMETHEUS_OPERATOR_VERSION"
  src=$(module_dir "github.com/prometheus-operator/prometheus-operator@$PROMETHEUS_OPERATOR_VERSION")/example/prometheus-operator-crd
  for crd in "${PROM_CRDS[@]}"; do install -m 0644 "$src/$crd" "$tmp/"; done
  publish "$tmp" "$PROM_DIR"
  log "Prometheus Operator CRDs $PROMETHEUS_OPERATOR_VERSION: copied"
fi

log "done in $(($(date +%s) - start))s; cache: $CACHE"
echo "$CACHE"
