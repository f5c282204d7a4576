#!/usr/bin/env bash
# Benchmark of the node agent: time from start until the kernel holds every peer route
# (1000 and 5000 peers, on-link/direct and off-link/VXLAN), the agent's resident memory, the
# time from one NodeList change to its route, and iperf3 throughput pod-to-pod (direct and
# VXLAN) beside node-to-node on the underlay, with the underlay shaped like a NIC and
# unshaped. Prints numbers beside the project's targets; it asserts nothing about speed.
#
#   sudo ./scripts/bench-agent.sh                     # full run (about three minutes)
#   sudo ./scripts/bench-agent.sh --quick             # 200 peers, 5 changes, 1 s iperf3: a smoke run
#   sudo ./scripts/bench-agent.sh --throughput-only   # only the iperf3 comparison
#
# Needs root (it makes network namespaces; it never touches the root namespace's network)
# and iperf3 (Debian iperf3; without it the throughput part is skipped). It makes namespaces
# jt<pid>-*, runs jalur-agent and iperf3 only inside them, keeps its files under
# /var/tmp/jalur-agent-bench-<pid>/, and removes all of it at the end, also when the bench
# fails or is interrupted.
set -euo pipefail
cd "$(dirname "$0")/.."

# shellcheck source=scripts/lib/bench-run.sh
. scripts/lib/bench-run.sh
bench_build jalur-node-agent jalur-cni-plugin jalur-tests
run_bench jalur-agent-bench "$@"
