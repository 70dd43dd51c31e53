# Shared by the build scripts under hack/ (sourced, not run): the tool cache
# under ${LLM_OPERATOR_CACHE:-$HOME/.cache/llm-operator}, entries keyed by
# version, each built in a temporary directory next to its final place and
# renamed into place, so an interrupted or concurrent build never leaves half an
# entry. The sourcing script sets LOG_PREFIX before calling log/die.
#
# Functions: log, die, all_present, lock_cache, new_tmp, publish, module_time,
# module_dir (the last two need TMPWORK, a scratch directory from new_tmp).

CACHE=${LLM_OPERATOR_CACHE:-$HOME/.cache/llm-operator}
BIN=$CACHE/bin
CRDS=$CACHE/crds

log() { printf '[%s] %s\n' "${LOG_PREFIX:-build}" "$*" >&2; }
die() {
  log "error: $*"
  exit 1
}

# all_present DIR FILE... : true when every FILE exists (non-empty) under DIR.
all_present() {
  local dir=$1 f
  shift
  for f in "$@"; do
    [[ -s $dir/$f ]] || return 1
  done
}

TMPDIRS=()
_cleanup_tmpdirs() {
  local d
  for d in "${TMPDIRS[@]}"; do rm -rf "$d"; done
}

# lock_cache : take the cache's build lock (one build at a time per cache: two
# test sessions may start together), remove what a killed build left behind,
# and install the traps that remove this build's temporary directories.
lock_cache() {
  mkdir -p "$BIN" "$CRDS"
  exec 9>"$CACHE/.build.lock"
  flock 9
  # Leftovers of a build killed before its EXIT trap could run; safe to remove
  # while we hold the lock.
  rm -rf "$BIN"/.*.tmp.* "$CRDS"/.*.tmp.* "$CACHE"/.work.tmp.*
  trap _cleanup_tmpdirs EXIT
  trap 'exit 130' INT
  trap 'exit 143' TERM
}

# new_tmp PARENT NAME : set $tmp to a fresh temporary directory next to its
# final place (same file system, so the final rename is atomic). Not used in
# $(...), so that the EXIT trap knows every directory to remove.
new_tmp() {
  tmp=$(mktemp -d "$1/.$2.tmp.XXXXXX")
  chmod 0755 "$tmp"
  TMPDIRS+=("$tmp")
}

# publish TMP DEST : atomically move a finished build into place.
publish() {
  local tmp=$1 dest=$2
  if [[ -e $dest ]]; then
    # An incomplete entry (files deleted by hand): replace it.
    rm -rf "$dest"
  fi
  mv -T "$tmp" "$dest"
}

# module_dir MODULE@VERSION : download a module and print its directory.
module_dir() {
  local dir
  dir=$(cd "$TMPWORK" && go mod download -json "$1" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",\{0,1\}$/\1/p')
  [[ -n $dir && -d $dir ]] || die "go mod download $1 gave no directory"
  echo "$dir"
}

# module_time MODULE@VERSION : the module version's publication time (RFC 3339).
module_time() {
  (cd "$TMPWORK" && go list -m -f '{{.Time.UTC.Format "2006-01-02T15:04:05Z"}}' "$1")
}
