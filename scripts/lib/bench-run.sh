#!/usr/bin/env bash
# Shared by bench.sh and bench-agent.sh: run a benchmark binary and, should it be killed
# outright, remove what its run left (its jt<pid>-* namespaces, their processes, its work
# dir /var/tmp/<name>-<pid>). The benches clean up after themselves; this is the backstop.

# shellcheck source=scripts/lib/target-dir.sh
. "$(dirname "${BASH_SOURCE[0]}")/target-dir.sh"

# bench_build PACKAGE...: checks for root and cargo, then builds the packages (release).
bench_build() {
  if [ "$(id -u)" -ne 0 ]; then
    echo "$0 needs root (network namespaces): run it with sudo" >&2
    exit 1
  fi
  if ! command -v cargo >/dev/null; then
    echo "cargo is not on PATH (sudo resets it): try sudo env PATH=\"\$PATH\" $0" >&2
    exit 1
  fi
  local packages=()
  for p in "$@"; do packages+=(-p "$p"); done
  cargo build --release --locked "${packages[@]}"
}

# run_bench NAME [ARGS...]: runs NAME from cargo's release dir (CARGO_TARGET_DIR included),
# exits with its status.
run_bench() {
  local name=$1
  shift
  "$(release_dir "$PWD")/$name" "$@" &
  bench_pid=$!
  bench_name=$name
  trap bench_sweep EXIT
  trap 'kill -TERM "$bench_pid" 2>/dev/null || true' INT TERM
  local status=0
  while :; do
    wait "$bench_pid" && status=0 || status=$?
    kill -0 "$bench_pid" 2>/dev/null || break  # wait returned because of a signal: wait again
  done
  exit "$status"
}

# shellcheck disable=SC2317  # called from the EXIT trap
bench_sweep() {
  local ns p
  for ns in $(ip netns list | awk '{print $1}' | grep "^jt${bench_pid}-" || true); do
    for p in $(ip netns pids "$ns" 2>/dev/null || true); do
      kill -9 "$p" 2>/dev/null || true
    done
    ip netns del "$ns" 2>/dev/null || true
  done
  rm -rf "/var/tmp/${bench_name}-${bench_pid}"
}
