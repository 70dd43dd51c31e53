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
export KUBECONFIG="$STATE/kubeconfig"
OPERATOR_PID="$STATE/operator.pid"
OPERATOR_LOG="$STATE/logs/operator.log"

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

say "Control plane '$NAME' (etcd, kube-apiserver, controller-manager, scheduler, kwok GPU nodes)"
"$BIN/llm-operator" dev up --name "$NAME"

say "CRDs: LLMDeployment, plus KEDA and Prometheus Operator (from their Go modules)"
kubectl apply --server-side --field-manager=llm-operator-demo -f crds/llmoperator.io_llmdeployments.yaml
for crd in "$CACHE"/crds/*/*.yaml; do
  kubectl apply --server-side --force-conflicts --field-manager=llm-operator-demo -f "$crd" >/dev/null
done
kubectl wait --for=condition=Established crd --all --timeout=60s >/dev/null

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
kubectl apply -f examples/minimal.yaml -f examples/guardrails.yaml

say "Waiting for both LLMDeployments to be Ready"
if ! kubectl wait --for=condition=Ready llmd/llama-8b llmd/assistant --timeout=180s; then
  echo "not Ready in time; the operator's log says:" >&2
  tail -n 40 "$OPERATOR_LOG" >&2
  exit 1
fi

say "kubectl get llmd -o wide"
kubectl get llmd -o wide
say "kubectl get deployments,services,pdb -l llmoperator.io/deployment"
kubectl get deployments,services,pdb -l llmoperator.io/deployment
say "Pods and the simulated GPU nodes they run on"
kubectl get pods -l llmoperator.io/deployment -o wide
kubectl get nodes -L nvidia.com/gpu.product -o custom-columns='NODE:.metadata.name,GPUS:.status.allocatable.nvidia\.com/gpu,PRODUCT:.metadata.labels.nvidia\.com/gpu\.product'
say "Status conditions"
kubectl get llmd -o jsonpath='{range .items[*]}{.metadata.name}{":\n"}{range .status.conditions[*]}{"  "}{.type}{"="}{.status}{" ("}{.reason}{") "}{.message}{"\n"}{end}{end}'

cat <<MSG

Look further:
  export KUBECONFIG=$KUBECONFIG
  kubectl describe llmd assistant                 # conditions and Events
  kubectl get deploy assistant -o yaml            # the gateway sidecar in front of vLLM
  kubectl get configmap assistant-guardrails -o yaml
  kubectl scale llmd llama-8b --replicas=3 && kubectl get llmd -w
  tail -f $OPERATOR_LOG
Stop everything: make demo-down
MSG
