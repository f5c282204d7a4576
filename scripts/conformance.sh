#!/usr/bin/env bash
# Kubernetes' own conformance tests against Jalur: the e2e suite of the cluster's release
# (e2e.test, built by scripts/build-kube.sh from k8s.io/kubernetes/test/e2e), run against
# the cluster of scripts/cluster.sh, which it brings up when none is up (and then removes
# again at the end, unless --keep).
#
#   sudo ./scripts/conformance.sh                       # every [sig-network] [Conformance] spec
#   sudo ./scripts/conformance.sh --focus 'Granular Checks: Pods'
#   sudo ./scripts/conformance.sh --focus REGEX --skip REGEX [--keep]
#
# Prints the suite's own summary (ran, passed, failed, skipped), the name of each failure,
# and exits non-zero when a spec fails. The JUnit report and the full log are kept in
# /var/tmp/jalur-conformance/.
set -euo pipefail
cd "$(dirname "$0")/.."
REPO=$PWD
source scripts/lib/cluster-lib.sh

FOCUS='\[sig-network\].*\[Conformance\]'
SKIP=''
KEEP=0
while [ $# -gt 0 ]; do
  case "$1" in
    --focus) FOCUS=$2; shift 2 ;;
    --skip) SKIP=$2; shift 2 ;;
    --keep) KEEP=1; shift ;;
    *) sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2 ;;
  esac
done
if [ "$(id -u)" -ne 0 ]; then
  echo "scripts/conformance.sh needs root (it runs the cluster of scripts/cluster.sh)" >&2
  exit 1
fi

brought_up=0
if [ ! -f "$PKI/admin.kubeconfig" ]; then
  "$REPO/scripts/cluster.sh" up
  brought_up=1
fi
# shellcheck disable=SC2317 # (run by the EXIT trap)
cleanup() {
  if [ "$brought_up" = 1 ] && [ "$KEEP" = 0 ]; then "$REPO/scripts/cluster.sh" down; fi
}
trap cleanup EXIT

out=/var/tmp/jalur-conformance
rm -rf "$out"
mkdir -p "$out"
bin=$(kube_bin)
echo "== e2e.test $KUBE_VERSION: focus $FOCUS${SKIP:+, skip $SKIP}"
# The suite runs where kubectl does: on the control plane node (node1's network namespace),
# as a conformance runner on a control-plane host does.
# --provider=local: a cluster with no cloud; the suite then skips what needs a cloud.
status=0
in_control "$bin/e2e.test" \
  --kubeconfig="$PKI/admin.kubeconfig" --kubectl-path="$bin/kubectl" \
  --provider=local --report-dir="$out" --num-nodes=${#NODES[@]} \
  --ginkgo.focus="$FOCUS" ${SKIP:+--ginkgo.skip="$SKIP"} \
  --ginkgo.timeout=3h --ginkgo.no-color \
  >"$out/e2e.log" 2>&1 || status=$?

# The suite's own summary, and each failure by name.
grep -E '^(Ran [0-9]+ of [0-9]+ Specs|SUCCESS!|FAIL!|PASS|FAIL)' "$out/e2e.log" || true
if [ -s "$out/junit_01.xml" ]; then
  # Specs the focus left out are "skipped" with no reason; a spec that ran and skipped
  # itself (a cluster without what it needs) gives its reason.
  python3 - "$out/junit_01.xml" <<'EOF'
import sys, xml.etree.ElementTree as ET
root = ET.parse(sys.argv[1]).getroot()
cases = [c for c in root.iter("testcase") if c.get("name", "").startswith("[It]")]
def reason(c):
    s = c.find("skipped")
    return None if s is None else s.get("message", "")
passed = [c for c in cases if c.get("status") == "passed"]
failed = [c for c in cases if c.get("status") in ("failed", "panicked", "interrupted", "timedout")]
skipped = [c for c in cases if c.get("status") == "skipped" and reason(c) not in ("", "skipped")]
print(f"conformance: ran {len(passed) + len(failed)}, passed {len(passed)}, "
      f"failed {len(failed)}, skipped {len(skipped)}")
for c in failed:
    print(f"FAILED: {c.get('name')}")
for c in skipped:
    print(f"SKIPPED: {c.get('name')}: {reason(c)}")
EOF
fi
echo "== log and JUnit report: $out/"
if [ "$status" -ne 0 ]; then
  echo "== the suite failed (exit $status); last lines of its log:"
  tail -n 40 "$out/e2e.log"
fi
exit "$status"
