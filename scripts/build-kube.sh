#!/usr/bin/env bash
# Builds the Kubernetes components of the test cluster from their published Go modules
# (tests/kube: one multi-call binary for kube-apiserver, kube-controller-manager,
# kube-scheduler, kubelet, kube-proxy, kubectl and etcd; Kubernetes' e2e suite as e2e.test
# and its test server agnhost; CoreDNS on its own), with the release's real version strings. The result is cached outside the checkout, keyed by
# version, so a second run only checks it:
#
#   $JALUR_CACHE/kube-<version>/bin/{kube,kubelet,...,etcd,e2e.test,agnhost,coredns}
#
#   ./scripts/build-kube.sh          # build what is missing, print the bin dir
#   JALUR_CACHE=/somewhere ./scripts/build-kube.sh
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib/kube-versions.sh

out="$KUBE_CACHE/bin"
# The build's key: the Go module's own files. A change to them (a new component, a bumped
# dependency) rebuilds; anything else reuses the cache.
key=$(cat tests/kube/go.mod tests/kube/go.sum tests/kube/main.go tests/kube/e2e/*.go | sha256sum | cut -d' ' -f1)
fresh() { [ "$(cat "$out/.key" 2>/dev/null)" = "$key" ]; }
if fresh && [ -x "$out/kube" ] && [ -x "$out/coredns" ] && [ -x "$out/e2e.test" ] && [ -x "$out/agnhost" ]; then
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
if ! fresh || [ ! -x "$out/kube" ]; then
  echo "== building Kubernetes $KUBE_VERSION and etcd (one binary; cold: about 10 minutes)" >&2
  (cd tests/kube && go build -trimpath -ldflags "$ldflags" -o "$out/kube.tmp" .)
  mv "$out/kube.tmp" "$out/kube"
fi
if ! fresh || [ ! -x "$out/e2e.test" ]; then
  echo "== building Kubernetes' e2e suite (e2e.test) and its test server agnhost" >&2
  (cd tests/kube && go test -c -trimpath -ldflags "$ldflags" -o "$out/e2e.test.tmp" ./e2e)
  mv "$out/e2e.test.tmp" "$out/e2e.test"
fi
if ! fresh || [ ! -x "$out/agnhost" ]; then
  (cd tests/kube && CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o "$out/agnhost.tmp" \
    k8s.io/kubernetes/test/images/agnhost)
  mv "$out/agnhost.tmp" "$out/agnhost"
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
echo "$key" >"$out/.key"
echo "== built in $(( $(date +%s) - start )) s" >&2
echo "$out"
