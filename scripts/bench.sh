#!/usr/bin/env bash
# Benchmark: ADD and DEL latency (sequential 50 and 200 pods, 50 in parallel) of jalur, of
# the reference ptp + host-local, and of the kernel's floor (the same netlink work, in
# process), each on a fresh simulated node (network namespaces). Prints a table and the
# project's target ratios; it asserts nothing about speed.
#
#   sudo ./scripts/bench.sh           # full run (a couple of minutes)
#   sudo ./scripts/bench.sh --quick   # 20 sequential + 20 parallel, a smoke run
#
# Needs root (it makes network namespaces; it never touches the root namespace's network).
# It makes namespaces jt<pid>-* and files under /var/tmp/jalur-bench-<pid>/ and removes them
# at the end, also when the bench fails or is interrupted.
set -euo pipefail
cd "$(dirname "$0")/.."

# shellcheck source=scripts/lib/bench-run.sh
. scripts/lib/bench-run.sh
bench_build jalur-cni-plugin jalur-tests
run_bench jalur-bench "$@"
