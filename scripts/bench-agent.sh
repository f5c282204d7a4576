#!/usr/bin/env bash
# Benchmark of the node agent: time from start until the kernel holds every peer route
# (1000 and 5000 peers, on-link/direct and off-link/VXLAN), the agent's resident memory, the
# time from one NodeList change to its route, and iperf3 throughput pod-to-pod (direct and
# VXLAN) beside node-to-node on the underlay. Prints numbers beside the project's targets; it
# asserts nothing about speed.
#
#   sudo ./scripts/bench-agent.sh           # full run (about a minute)
#   sudo ./scripts/bench-agent.sh --quick   # 200 peers, 5 changes, 1 s iperf3: a smoke run
#
# Needs root (it makes network namespaces; it never touches the root namespace's network)
# and iperf3 (Debian iperf3; without it the throughput part is skipped). It makes namespaces
# jt<pid>-*, runs jalur-agent and iperf3 only inside them, keeps its files under
# /var/tmp/jalur-agent-bench-<pid>/, and removes all of it at the end, also when the bench
# fails or is interrupted.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "$(id -u)" -ne 0 ]; then
  echo "scripts/bench-agent.sh needs root (network namespaces): run it with sudo" >&2
  exit 1
fi
if ! command -v cargo >/dev/null; then
  echo "cargo is not on PATH (sudo resets it): try sudo env PATH=\"\$PATH\" $0" >&2
  exit 1
fi

cargo build --release --locked -p node-agent -p cni-plugin -p jalur-tests

target/release/jalur-agent-bench "$@" &
pid=$!

# The bench cleans up after itself (drop guards, panic hook, SIGINT/SIGTERM); this is the
# backstop for a bench killed outright: only this run's namespaces, their processes, files.
# shellcheck disable=SC2317  # called from the EXIT trap
sweep() {
  local ns p
  for ns in $(ip netns list | awk '{print $1}' | grep "^jt${pid}-" || true); do
    for p in $(ip netns pids "$ns" 2>/dev/null || true); do
      kill -9 "$p" 2>/dev/null || true
    done
    ip netns del "$ns" 2>/dev/null || true
  done
  rm -rf "/var/tmp/jalur-agent-bench-${pid}"
}
trap sweep EXIT
trap 'kill -TERM "$pid" 2>/dev/null || true' INT TERM

status=0
while :; do
  wait "$pid" && status=0 || status=$?
  kill -0 "$pid" 2>/dev/null || break  # wait returned because of a signal: wait again
done
exit "$status"
