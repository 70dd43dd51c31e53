#!/usr/bin/env bash
# `make demo-down`: stop the demo's operator and control plane; nothing is left running.
set -euo pipefail
cd "$(dirname "$0")/.."
CACHE="${LLM_OPERATOR_CACHE:-$HOME/.cache/llm-operator}"
NAME="${DEMO_CLUSTER:-demo}"
PID_FILE="$CACHE/dev/$NAME/operator.pid"
if [[ -f "$PID_FILE" ]]; then
  pid="$(cat "$PID_FILE")"
  if kill -0 "$pid" 2>/dev/null; then
    kill "$pid"
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
    kill -9 "$pid" 2>/dev/null || true
  fi
  rm -f "$PID_FILE"
  echo "operator stopped"
fi
.venv/bin/llm-operator dev down --name "$NAME"
