#!/usr/bin/env bash
# Builds the Kubernetes components of the test cluster from their published Go modules
# (tests/kube: one multi-call binary for kube-apiserver, kube-controller-manager,
# kube-scheduler, kubelet, kube-proxy, kubectl and etcd; CoreDNS on its own), with the
# release's real version strings. The result is cached outside the checkout, keyed by
# version, so a second run only checks it:
#
#   $JALUR_CACHE/kube-<version>/bin/{kube,kubelet,...,etcd,coredns}
#
#   ./scripts/build-kube.sh          # build what is missing, print the bin dir
#   JALUR_CACHE=/somewhere ./scripts/build-kube.sh
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib/kube-versions.sh

out="$KUBE_CACHE/bin"
if [ -x "$out/kube" ] && [ -x "$out/coredns" ] && [ -f "$out/.complete" ]; then
  echo "$out"
  exit 0
fi
mkdir -p "$out"
export GOFLAGS=-buildvcs=false GOTOOLCHAIN=local

start=$(date +%s)
# The version strings a release build carries (hack/lib/version.sh): without them every
# component says v0.0.0-master and so does each Node's kubelet version.
ldflags="-s -w"
for pkg in k8s.io/client-go/pkg/version k8s.io/component-base/version; do
  ldflags+=" -X '$pkg.gitVersion=$KUBE_VERSION' -X '$pkg.gitMajor=$KUBE_MAJOR'"
  ldflags+=" -X '$pkg.gitMinor=$KUBE_MINOR' -X '$pkg.gitTreeState=clean'"
  ldflags+=" -X '$pkg.gitCommit=$KUBE_GIT_COMMIT' -X '$pkg.buildDate=$KUBE_BUILD_DATE'"
done
if [ ! -x "$out/kube" ] || [ tests/kube/go.sum -nt "$out/kube" ]; then
  echo "== building Kubernetes $KUBE_VERSION and etcd (one binary; cold: tens of minutes)" >&2
  (cd tests/kube && go build -trimpath -ldflags "$ldflags" -o "$out/kube.tmp" .)
  mv "$out/kube.tmp" "$out/kube"
fi
for c in kube-apiserver kube-controller-manager kube-scheduler kubelet kube-proxy kubectl etcd; do
  ln -sf kube "$out/$c"
done
if [ ! -x "$out/coredns" ]; then
  echo "== building CoreDNS $COREDNS_VERSION" >&2
  gobin=$(mktemp -d)
  GOBIN="$gobin" CGO_ENABLED=0 go install -trimpath -ldflags "-s -w" \
    "github.com/coredns/coredns@$COREDNS_VERSION"
  mv "$gobin/coredns" "$out/coredns"
  rmdir "$gobin"
fi
touch "$out/.complete"
echo "== built in $(( $(date +%s) - start )) s" >&2
echo "$out"
