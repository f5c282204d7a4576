#!/usr/bin/env bash
# Installs what the tests need (on a Debian machine), builds once, and runs every test:
# unit tests, kernel tests in private network namespaces, and the podman runtime test.
# Needs root: the tests make network namespaces, veths and routes (only inside namespaces
# they create themselves).
#
#   sudo ./scripts/test.sh            # everything
#   sudo ./scripts/test.sh --no-deps  # skip the package check
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "$(id -u)" -ne 0 ]; then
  echo "scripts/test.sh needs root (network namespaces): run it with sudo" >&2
  exit 1
fi

# Debian packages the tests drive: ip, traceroute, ping, nft/iptables (portmap), the
# reference CNI plugins (ptp, host-local, portmap) for comparison and chaining, podman with
# runc and busybox-static for the runtime test, socat as a TCP probe.
PACKAGES=(iproute2 traceroute iputils-ping iperf3 nftables iptables containernetworking-plugins
          podman runc busybox-static socat procps python3 python3-pip jq shellcheck)
if [ "${1:-}" != "--no-deps" ]; then
  missing=()
  for p in "${PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  if [ ${#missing[@]} -gt 0 ]; then
    echo "== installing: ${missing[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  fi
  # kubernetes-validate: the manifest's strict schema check (tests/tests/install.rs runs it).
  # The package carries the Kubernetes JSON schemas, so it runs offline once installed.
  if ! python3 -c 'import kubernetes_validate' 2>/dev/null; then
    echo "== installing: kubernetes-validate (pip)"
    python3 -m pip install --quiet kubernetes-validate 2>/dev/null \
      || python3 -m pip install --quiet --break-system-packages kubernetes-validate
  fi
fi

# One build profile for everything (release: the podman test and the benchmark use the
# same binaries).
echo "== build"
cargo build --release --locked --workspace --all-targets

log=$(mktemp)
trap 'rm -f "$log"' EXIT
status=0

echo "== unit and kernel tests"
cargo test --release --locked --workspace 2>&1 | tee "$log" || status=1

echo "== runtime test: podman drives jalur"
podman_passed=0
# shellcheck source=scripts/lib/target-dir.sh
. scripts/lib/target-dir.sh
if PLUGIN=jalur JALUR_BIN_DIR="$(release_dir "$PWD")" tests/runtime/podman.sh 2>&1 | tee -a "$log"; then
  podman_passed=1
else
  status=1
fi

passed=$(grep -oE 'test result: [a-zA-Z]+\. [0-9]+ passed' "$log" | awk '{s+=$4} END {print s+0}')
failed=$(grep -oE '[0-9]+ failed;' "$log" | awk '{s+=$1} END {print s+0}')
passed=$((passed + podman_passed))
[ "$podman_passed" -eq 1 ] || failed=$((failed + 1))
echo
echo "scripts/test.sh: $passed passed, $failed failed"
exit $status
