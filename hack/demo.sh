#!/usr/bin/env bash
# `make demo`: a local control plane with simulated GPU nodes, the operator installed with
# `bin/helm install` from charts/llm-operator, and two LLMDeployments (minimal and
# guardrails), then what a user would look at. Only the project's own tools run
# (bin/kubectl, bin/helm from `make tools`), never a kubectl or helm on PATH.
# kwok simulates nodes and runs no containers, so the chart's operator Pods become Ready
# without running; the operator process runs here instead, with the chart's own
# arguments and a token of the chart's ServiceAccount (the RBAC a cluster would give it).
# Safe to run twice: every step reuses what is already there. `make demo-down` stops it all.
set -euo pipefail
cd "$(dirname "$0")/.."

CACHE="${LLM_OPERATOR_CACHE:-$HOME/.cache/llm-operator}"
NAME="${DEMO_CLUSTER:-demo}"
STATE="$CACHE/dev/$NAME"
BIN=.venv/bin
# The project's own tools (`make tools`), never one on PATH.
KUBECTL=bin/kubectl
HELM=bin/helm
for tool in "$KUBECTL" "$HELM"; do
  [[ -x $tool ]] || { echo "$tool is missing: run make tools (make demo does)" >&2; exit 1; }
done
export KUBECONFIG="$STATE/kubeconfig"
# helm's caches stay in the demo's state, not in $HOME.
export HELM_CACHE_HOME="$STATE/helm/cache" HELM_CONFIG_HOME="$STATE/helm/config" HELM_DATA_HOME="$STATE/helm/data"
RELEASE=llm-operator
OPS_NS=llm-system
OPERATOR_PID="$STATE/operator.pid"
OPERATOR_LOG="$STATE/logs/operator.log"
OPERATOR_KUBECONFIG="$STATE/operator.kubeconfig"

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
free_port() { "$BIN/python" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

say "Control plane '$NAME' (etcd, kube-apiserver, controller-manager, scheduler, kwok GPU nodes)"
"$BIN/llm-operator" dev up --name "$NAME"

say "KEDA and Prometheus Operator CRDs (from their Go modules)"
for crd in "$CACHE"/crds/*/*.yaml; do
  "$KUBECTL" apply --server-side --force-conflicts --field-manager=llm-operator-demo -f "$crd" >/dev/null
done
"$KUBECTL" wait --for=condition=Established crd --all --timeout=60s >/dev/null
echo "installed"

say "$HELM upgrade --install $RELEASE charts/llm-operator -n $OPS_NS --wait"
if ! "$KUBECTL" get namespace "$OPS_NS" >/dev/null 2>&1; then
  "$KUBECTL" create namespace "$OPS_NS"
  "$KUBECTL" label namespace "$OPS_NS" pod-security.kubernetes.io/enforce=restricted >/dev/null
fi
# Helm installs crds/ on the first install only; the upgrade policy (docs/helm.md) is to
# apply the chart's CRD before every upgrade, which is a no-op when it is current.
"$HELM" show crds charts/llm-operator | "$KUBECTL" apply --server-side --force-conflicts \
  --field-manager=llm-operator-demo -f - >/dev/null
"$HELM" upgrade --install "$RELEASE" charts/llm-operator -n "$OPS_NS" --wait --timeout 3m
"$KUBECTL" -n "$OPS_NS" get deployment,pods,service,serviceaccount -l app.kubernetes.io/instance="$RELEASE"

say "Operator (a local process with the chart's arguments and ServiceAccount)"
if [[ -f "$OPERATOR_PID" ]] && kill -0 "$(cat "$OPERATOR_PID")" 2>/dev/null; then
  echo "already running (pid $(cat "$OPERATOR_PID")), log: $OPERATOR_LOG"
else
  # A kubeconfig for the chart's ServiceAccount: the API server from the admin
  # kubeconfig, a token from the TokenRequest API.
  server=$("$KUBECTL" config view --raw --minify -o jsonpath='{.clusters[0].cluster.server}')
  "$KUBECTL" config view --raw --minify -o jsonpath='{.clusters[0].cluster.certificate-authority-data}' \
    | base64 -d >"$STATE/ca.crt"
  token=$("$KUBECTL" -n "$OPS_NS" create token "$RELEASE" --duration=24h)
  rm -f "$OPERATOR_KUBECONFIG"
  KUBECONFIG="$OPERATOR_KUBECONFIG" "$KUBECTL" config set-cluster demo --server="$server" \
    --certificate-authority="$STATE/ca.crt" --embed-certs=true >/dev/null
  KUBECONFIG="$OPERATOR_KUBECONFIG" "$KUBECTL" config set-credentials "$RELEASE" --token="$token" >/dev/null
  KUBECONFIG="$OPERATOR_KUBECONFIG" "$KUBECTL" config set-context demo --cluster=demo --user="$RELEASE" >/dev/null
  KUBECONFIG="$OPERATOR_KUBECONFIG" "$KUBECTL" config use-context demo >/dev/null
  chmod 600 "$OPERATOR_KUBECONFIG"
  # The Deployment's own arguments; only the kubeconfig and the local ports differ.
  mapfile -t args < <("$KUBECTL" -n "$OPS_NS" get deployment "$RELEASE" \
    -o jsonpath='{range .spec.template.spec.containers[0].args[*]}{@}{"\n"}{end}')
  health_port=$(free_port)
  metrics_port=$(free_port)
  mkdir -p "$(dirname "$OPERATOR_LOG")"
  nohup "$BIN/llm-operator" "${args[@]}" --kubeconfig "$OPERATOR_KUBECONFIG" \
    --liveness "http://127.0.0.1:$health_port/healthz" \
    --metrics-host 127.0.0.1 --metrics-port "$metrics_port" \
    >"$OPERATOR_LOG" 2>&1 </dev/null &
  echo $! >"$OPERATOR_PID"
  echo "$health_port $metrics_port" >"$STATE/operator.ports"
  cat <<NOTE
started (pid $!), log: $OPERATOR_LOG
  kwok runs no containers, so the chart's two operator Pods are Ready without running;
  this process is the operator instead: the Deployment's arguments (${args[*]}),
  authenticated as ServiceAccount $OPS_NS/$RELEASE with a token from the TokenRequest API,
  so it has exactly the chart's RBAC. Health: http://127.0.0.1:$health_port/healthz,
  metrics: http://127.0.0.1:$metrics_port/metrics
NOTE
fi

say "kubectl apply -f examples/minimal.yaml -f examples/guardrails.yaml"
"$KUBECTL" apply -f examples/minimal.yaml -f examples/guardrails.yaml

say "Waiting for both LLMDeployments to be Ready"
if ! "$KUBECTL" wait --for=condition=Ready llmd/llama-8b llmd/assistant --timeout=180s; then
  echo "not Ready in time; the operator's log says:" >&2
  tail -n 40 "$OPERATOR_LOG" >&2
  exit 1
fi

say "kubectl get llmd -o wide"
"$KUBECTL" get llmd -o wide
say "kubectl get deployments,services,pdb -l llmoperator.io/deployment"
"$KUBECTL" get deployments,services,pdb -l llmoperator.io/deployment
say "Pods and the simulated GPU nodes they run on"
"$KUBECTL" get pods -l llmoperator.io/deployment -o wide
"$KUBECTL" get nodes -L nvidia.com/gpu.product -o custom-columns='NODE:.metadata.name,GPUS:.status.allocatable.nvidia\.com/gpu,PRODUCT:.metadata.labels.nvidia\.com/gpu\.product'
say "Status conditions"
"$KUBECTL" get llmd -o jsonpath='{range .items[*]}{.metadata.name}{":\n"}{range .status.conditions[*]}{"  "}{.type}{"="}{.status}{" ("}{.reason}{") "}{.message}{"\n"}{end}{end}'

cat <<MSG

Look further:
  export KUBECONFIG=$KUBECONFIG
  bin/kubectl describe llmd assistant             # conditions and Events
  bin/kubectl get deploy assistant -o yaml        # the gateway sidecar in front of vLLM
  bin/kubectl get configmap assistant-guardrails -o yaml
  bin/kubectl scale llmd llama-8b --replicas=3 && bin/kubectl get llmd -w
  bin/kubectl -n $OPS_NS get lease $RELEASE-leader -o yaml   # the leader Lease it holds
  bin/helm -n $OPS_NS status $RELEASE                        # the chart's NOTES
  tail -f $OPERATOR_LOG
Stop everything: make demo-down
MSG
