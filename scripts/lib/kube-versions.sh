# The pinned versions of the real test cluster, and where their builds are cached.
# Sourced by scripts/build-kube.sh, scripts/cluster.sh and the image builders.
KUBE_VERSION=v1.34.4              # keep in step with tests/kube/go.mod
KUBE_MAJOR=1
KUBE_MINOR=34
KUBE_GIT_COMMIT=v1.34.4           # the module proxy carries no commit hash: the tag stands in
KUBE_BUILD_DATE=2026-01-01T00:00:00Z
COREDNS_VERSION=v1.12.1
ETCD_VERSION=v3.6.4               # what k8s.io/kubernetes v1.34.4 requires (tests/kube/go.sum)
PAUSE_VERSION=3.10.1              # test/utils/image/manifest.go of the release
JALUR_CACHE=${JALUR_CACHE:-/var/cache/jalur}
KUBE_CACHE="$JALUR_CACHE/kube-$KUBE_VERSION"

# The images the cluster runs, under the exact names the manifests and kubelet ask for.
PAUSE_IMAGE=registry.k8s.io/pause:$PAUSE_VERSION
COREDNS_IMAGE=registry.k8s.io/coredns/coredns:$COREDNS_VERSION
JALUR_IMAGE=docker.io/library/jalur:0.1.0          # deploy/jalur.yaml's jalur:0.1.0
NETTOOLS_IMAGE=docker.io/library/jalur-nettools:bookworm
# The images Kubernetes' e2e suite of the release asks for (test/utils/image/manifest.go),
# built here: agnhost from the release's own sources on the nettools rootfs (it execs sh,
# curl and nc), jessie-dnsutils as the nettools rootfs (dig, getent), busybox from Debian's
# busybox-static.
AGNHOST_IMAGE=registry.k8s.io/e2e-test-images/agnhost:2.56
DNSUTILS_IMAGE=registry.k8s.io/e2e-test-images/jessie-dnsutils:1.7
BUSYBOX_IMAGE=registry.k8s.io/e2e-test-images/busybox:1.37.0-1
