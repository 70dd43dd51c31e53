#!/usr/bin/env bash
# `make demo`: a local control plane with simulated GPU nodes, the operator, and two
# LLMDeployments (minimal and guardrails), then what a user would look at.
# Safe to run twice: every step reuses what is already there. `make demo-down` stops it all.
set -euo pipefail
cd "$(dirname "$0")/.."

CACHE="${LLM_OPERATOR_CACHE:-$HOME/.cache/llm-operator}"
NAME="${DEMO_CLUSTER:-demo}"
STATE="$CACHE/dev/$NAME"
BIN=.venv/bin
# The project's own kubectl (`make tools`: the API server's Kubernetes version), never one on PATH.
KUBECTL=bin/kubectl
[[ -x $KUBECTL ]] || { echo "$KUBECTL is missing: run make tools (make demo does)" >&2; exit 1; }
export KUBECONFIG="$STATE/kubeconfig"
OPERATOR_PID="$STATE/operator.pid"
OPERATOR_LOG="$STATE/logs/operator.log"

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

say "Control plane '$NAME' (etcd, kube-apiserver, controller-manager, scheduler, kwok GPU nodes)"
"$BIN/llm-operator" dev up --name "$NAME"

say "CRDs: LLMDeployment, plus KEDA and Prometheus Operator (from their Go modules)"
"$KUBECTL" apply --server-side --field-manager=llm-operator-demo -f crds/llmoperator.io_llmdeployments.yaml
for crd in "$CACHE"/crds/*/*.yaml; do
  "$KUBECTL" apply --server-side --force-conflicts --field-manager=llm-operator-demo -f "$crd" >/dev/null
done
"$KUBECTL" wait --for=condition=Established crd --all --timeout=60s >/dev/null

say "Operator"
if [[ -f "$OPERATOR_PID" ]] && kill -0 "$(cat "$OPERATOR_PID")" 2>/dev/null; then
  echo "already running (pid $(cat "$OPERATOR_PID")), log: $OPERATOR_LOG"
else
  mkdir -p "$(dirname "$OPERATOR_LOG")"
  nohup "$BIN/llm-operator" run --kubeconfig "$KUBECONFIG" --liveness "" --resync-seconds 10 \
    >"$OPERATOR_LOG" 2>&1 </dev/null &
  echo $! >"$OPERATOR_PID"
  echo "started (pid $!), log: $OPERATOR_LOG"
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
  tail -f $OPERATOR_LOG
Stop everything: make demo-down
MSG
