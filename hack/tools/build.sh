#!/usr/bin/env bash
# `make tools`: builds every tool the project runs, pinned, from the Go module
# proxy, caches each keyed by version, and links the command-line tools into
# bin/ of this checkout (git-ignored), so the Makefile, hack/, the tests and the
# docs never use a kubectl, helm or prometheus found on PATH:
#
#   control plane and kubectl   hack/controlplane/build.sh (run first)
#   $CACHE/bin/helm-$HELM_VERSION/helm
#   $CACHE/bin/prometheus-$PROMETHEUS_VERSION/{prometheus,promtool}
#   bin/kubectl bin/helm bin/prometheus bin/promtool -> those cache entries
#
# Entries are built in a temporary directory and renamed into place (see
# hack/lib/cache.sh), so an interrupted build leaves nothing half-built; a
# second run only checks the files and the links. Prometheus is built from the
# module github.com/prometheus/prometheus (Prometheus 3.x is published there as
# v0.3xx.y: v0.316.0 is 3.16.0) with the build tag remove_all_sd, which leaves
# out the cloud service-discovery plugins (static, file and HTTP discovery
# stay), and without the web UI's assets (the HTTP API does not need them).
#
# Usage: hack/tools/build.sh [--paths]
#   --paths  print KEY=VALUE lines (versions and paths of every tool, the
#            control plane's included) and build nothing.
set -euo pipefail

HELM_VERSION=v4.3.2
PROMETHEUS_MODULE_VERSION=v0.316.0
PROMETHEUS_VERSION=3.16.0 # the release the module version above publishes
PROMETHEUS_TAGS=remove_all_sd

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
LOG_PREFIX=tools
# shellcheck source=../lib/cache.sh
source "$HERE/../lib/cache.sh"
CONTROLPLANE=$HERE/../controlplane/build.sh
LINKS=$ROOT/bin

HELM_DIR=$BIN/helm-$HELM_VERSION
PROMETHEUS_DIR=$BIN/prometheus-v$PROMETHEUS_VERSION

kubectl_dir() { bash "$CONTROLPLANE" --paths | sed -n 's/^kubectl_dir=//p'; }

if [[ ${1:-} == --paths ]]; then
  bash "$CONTROLPLANE" --paths
  cat <<EOF
helm_version=$HELM_VERSION
helm=$HELM_DIR/helm
prometheus_version=$PROMETHEUS_VERSION
prometheus=$PROMETHEUS_DIR/prometheus
promtool=$PROMETHEUS_DIR/promtool
kubectl=$(kubectl_dir)/kubectl
bin_dir=$LINKS
EOF
  exit 0
elif [[ $# -gt 0 ]]; then
  echo "usage: $0 [--paths]" >&2
  exit 2
fi

cached_helm() { all_present "$HELM_DIR" helm; }
cached_prometheus() { all_present "$PROMETHEUS_DIR" prometheus promtool; }

# link NAME TARGET : bin/NAME -> TARGET, replaced atomically (a temporary link
# renamed over the old one).
link() {
  local name=$1 target=$2
  [[ -x $target ]] || die "$target is missing after the build"
  ln -sfn "$target" "$LINKS/.$name.tmp.$$"
  mv -T "$LINKS/.$name.tmp.$$" "$LINKS/$name"
}

link_all() {
  mkdir -p "$LINKS"
  link kubectl "$(kubectl_dir)/kubectl"
  link helm "$HELM_DIR/helm"
  link prometheus "$PROMETHEUS_DIR/prometheus"
  link promtool "$PROMETHEUS_DIR/promtool"
}

bash "$CONTROLPLANE" >/dev/null

if cached_helm && cached_prometheus; then
  log "helm $HELM_VERSION, prometheus $PROMETHEUS_VERSION: cached"
  link_all
  echo "$LINKS"
  exit 0
fi

command -v go >/dev/null || die "go is not on PATH (Go 1.26.7 or newer is needed for Prometheus $PROMETHEUS_VERSION)"

lock_cache
export CGO_ENABLED=0
export GOFLAGS=-buildvcs=false
new_tmp "$CACHE" work
TMPWORK=$tmp
start=$(date +%s)

if cached_helm; then
  log "helm $HELM_VERSION: cached"
else
  new_tmp "$BIN" "helm-$HELM_VERSION"
  log "building helm $HELM_VERSION (about 5 minutes on 2 cores)"
  # The version ldflags of helm's own Makefile for a tagged release (the module
  # proxy does not say which commit a version is, so gitCommit stays empty).
  ldflags="-s -w -X helm.sh/helm/v4/internal/version.version=$HELM_VERSION"
  ldflags+=" -X helm.sh/helm/v4/internal/version.metadata="
  ldflags+=" -X helm.sh/helm/v4/internal/version.gitTreeState=clean"
  (cd "$TMPWORK" && GOBIN="$tmp" go install -trimpath -ldflags "$ldflags" \
    "helm.sh/helm/v4/cmd/helm@$HELM_VERSION")
  publish "$tmp" "$HELM_DIR"
  log "helm $HELM_VERSION: built ($(($(date +%s) - start))s so far)"
fi

if cached_prometheus; then
  log "prometheus $PROMETHEUS_VERSION: cached"
else
  new_tmp "$BIN" "prometheus-v$PROMETHEUS_VERSION"
  log "building prometheus and promtool $PROMETHEUS_VERSION (tags: $PROMETHEUS_TAGS)"
  pkg=github.com/prometheus/common/version
  ldflags="-s -w -X $pkg.Version=$PROMETHEUS_VERSION -X $pkg.Branch=HEAD"
  ldflags+=" -X $pkg.BuildUser=llm-operator -X $pkg.BuildDate=$(module_time "github.com/prometheus/prometheus@$PROMETHEUS_MODULE_VERSION")"
  (cd "$TMPWORK" && GOBIN="$tmp" go install -trimpath -tags "$PROMETHEUS_TAGS" -ldflags "$ldflags" \
    "github.com/prometheus/prometheus/cmd/prometheus@$PROMETHEUS_MODULE_VERSION" \
    "github.com/prometheus/prometheus/cmd/promtool@$PROMETHEUS_MODULE_VERSION")
  publish "$tmp" "$PROMETHEUS_DIR"
  log "prometheus $PROMETHEUS_VERSION: built ($(($(date +%s) - start))s so far)"
fi

link_all
log "done in $(($(date +%s) - start))s; bin/: kubectl helm prometheus promtool"
echo "$LINKS"
