#!/usr/bin/env bash
# Installs what the tests need (on a Debian machine), builds once, and runs every test:
# unit tests, kernel tests in private network namespaces, the podman runtime test, and the
# real cluster: Kubernetes built from its Go sources (cached in /var/cache/jalur), three
# namespaced nodes with Jalur installed from its manifest, the cluster tests, and
# Kubernetes' own "Networking Granular Checks: Pods" conformance specs.
# Needs root: the tests make network namespaces, veths, routes, cgroups and mounts (only
# inside namespaces and cgroups they create themselves).
#
#   sudo ./scripts/test.sh               # everything
#   sudo ./scripts/test.sh --no-deps     # skip the package check
#   sudo ./scripts/test.sh --no-cluster  # everything but the real cluster
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "$(id -u)" -ne 0 ]; then
  echo "scripts/test.sh needs root (network namespaces): run it with sudo" >&2
  exit 1
fi

# Debian packages the tests drive: ip, traceroute, ping, nft/iptables (portmap), the
# reference CNI plugins (ptp, host-local, portmap) for comparison and chaining, podman with
# runc and busybox-static for the runtime test, socat as a TCP probe.
# The real cluster: containerd and runc run its pods, conntrack serves kube-proxy, openssl
# makes its certificates, mmdebstrap the Debian rootfs of its test image, curl its probes.
# (Go and gcc, which build Kubernetes' components and the pause image, come with the machine.)
PACKAGES=(iproute2 traceroute iputils-ping iperf3 nftables iptables containernetworking-plugins
          podman runc busybox-static socat procps python3 python3-pip jq shellcheck
          containerd conntrack openssl mmdebstrap curl)
NO_DEPS=0 NO_CLUSTER=0
for arg in "$@"; do
  case "$arg" in
    --no-deps) NO_DEPS=1 ;;
    --no-cluster) NO_CLUSTER=1 ;;
    *) echo "usage: $0 [--no-deps] [--no-cluster]" >&2; exit 2 ;;
  esac
done
if [ "$NO_DEPS" = 0 ]; then
  missing=()
  for p in "${PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  if [ ${#missing[@]} -gt 0 ]; then
    echo "== installing: ${missing[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  fi
  # kubernetes-validate: the manifest's strict schema check (tests/tests/manifest_schema.rs runs it).
  # The package carries the Kubernetes JSON schemas, so it runs offline once installed.
  if ! python3 -c 'import kubernetes_validate' 2>/dev/null; then
    echo "== installing: kubernetes-validate (pip)"
    python3 -m pip install --quiet kubernetes-validate 2>/dev/null \
      || python3 -m pip install --quiet --break-system-packages kubernetes-validate
  fi
fi

# One build profile for everything (release: the podman test and the benchmark use the
# same binaries). The Rust tests run binaries built with their test-only hooks
# (JALUR_TEST_CRASH_AT, JALUR_TEST_FAIL); everything after them runs the binaries a node
# gets, built again without (cargo keeps both, so switching back and forth is only a link).
HOOKS=(--features jalur-tests/test-hooks)
echo "== build (with the test-only hooks)"
cargo build --release --locked --workspace --all-targets "${HOOKS[@]}"

log=$(mktemp)
trap 'rm -f "$log"' EXIT
status=0

echo "== unit and kernel tests"
cargo test --release --locked --workspace "${HOOKS[@]}" -- --include-ignored 2>&1 | tee "$log" || status=1

echo "== build (the binaries a node gets: no test-only hooks)"
cargo build --release --locked -p jalur-cni-plugin -p jalur-node-agent

echo "== runtime test: podman drives jalur"
podman_passed=0
# shellcheck source=scripts/lib/target-dir.sh
. scripts/lib/target-dir.sh
if PLUGIN=jalur JALUR_BIN_DIR="$(release_dir "$PWD")" tests/runtime/podman.sh 2>&1 | tee -a "$log"; then
  podman_passed=1
else
  status=1
fi

cluster_passed=0 cluster_failed=0
if [ "$NO_CLUSTER" = 0 ]; then
  # The cluster tests leave the cluster up (KEEP=1) for the conformance specs; the trap
  # removes it whatever happens.
  trap 'rm -f "$log"; ./scripts/cluster.sh down >/dev/null 2>&1 || true' EXIT
  echo "== real cluster: Kubernetes components (built once, cached), images, three nodes"
  ./scripts/build-kube.sh >/dev/null
  clog=$(mktemp)
  KEEP=1 tests/cluster/cluster-test.sh 2>&1 | tee "$clog" || status=1
  cluster_passed=$(grep -oE '^cluster tests: [0-9]+ passed' "$clog" | awk '{print $3}')
  cluster_failed=$(grep -oE '^cluster tests: [0-9]+ passed, [0-9]+ failed' "$clog" | awk '{print $5}')
  [ -n "$cluster_failed" ] || cluster_failed=1
  echo "== Kubernetes' conformance specs: Networking Granular Checks: Pods"
  if ./scripts/conformance.sh --focus 'Networking Granular Checks: Pods.*\[Conformance\]' \
      2>&1 | tee "$clog"; then :; else status=1; fi
  c_passed=$(grep -oE '^conformance: ran [0-9]+, passed [0-9]+, failed [0-9]+' "$clog" | awk '{print $5}' | tr -d ,)
  c_failed=$(grep -oE '^conformance: ran [0-9]+, passed [0-9]+, failed [0-9]+' "$clog" | awk '{print $7}')
  # Four specs must have run and passed; anything less is a failure.
  if [ "${c_passed:-0}" -lt 4 ]; then c_failed=$((${c_failed:-0} + 1)); status=1; fi
  cluster_passed=$((cluster_passed + ${c_passed:-0}))
  cluster_failed=$((cluster_failed + ${c_failed:-0}))
  ./scripts/cluster.sh down
  rm -f "$clog"
fi

passed=$(grep -oE 'test result: [a-zA-Z]+\. [0-9]+ passed' "$log" | awk '{s+=$4} END {print s+0}')
failed=$(grep -oE '[0-9]+ failed;' "$log" | awk '{s+=$1} END {print s+0}')
passed=$((passed + podman_passed + cluster_passed))
failed=$((failed + cluster_failed))
[ "$podman_passed" -eq 1 ] || failed=$((failed + 1))
echo
echo "scripts/test.sh: $passed passed, $failed failed"
exit $status
