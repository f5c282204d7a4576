#!/usr/bin/env bash
# Builds the test cluster's images as OCI archives, with no registry and no image builder:
#   pause      registry.k8s.io/pause            Kubernetes' pause.c, static (gcc)
#   coredns    registry.k8s.io/coredns/coredns  the CoreDNS built by scripts/build-kube.sh
#   nettools   jalur-nettools:bookworm          Debian (mmdebstrap) with nginx, curl,
#                                               traceroute, ping, netstat/ifconfig, dig/
#                                               nslookup, nc, ip: for people and tests
#   jalur      jalur:0.1.0                      this workspace's jalur-agent and plugins, in
#                                               deploy/Dockerfile's layout
# The first three are cached by version under $KUBE_CACHE/images; jalur is packed anew from
# the binaries cargo just built (pass their directory). Prints the directory of archives.
#
#   ./scripts/build-images.sh TARGET_RELEASE_DIR OUT_DIR
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib/kube-versions.sh
source scripts/lib/oci-image.sh
bin_dir=$1 out=$2
cache=$KUBE_CACHE/images
mkdir -p "$cache" "$out"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

if [ ! -s "$cache/pause.tar" ]; then
  echo "== image $PAUSE_IMAGE" >&2
  mkdir -p "$work/pause"
  gcc -Os -static -DVERSION="$PAUSE_VERSION" -o "$work/pause/pause" \
    "$(go env GOMODCACHE)/k8s.io/kubernetes@$KUBE_VERSION/build/pause/linux/pause.c"
  strip "$work/pause/pause"
  rootfs_layer "$work/pause" "$work/pause.layer"
  oci_archive "$PAUSE_IMAGE" "$work/pause.layer" "$cache/pause.tar" '["/pause"]'
fi

if [ ! -s "$cache/coredns.tar" ]; then
  echo "== image $COREDNS_IMAGE" >&2
  mkdir -p "$work/coredns"
  install -m 0755 "$KUBE_CACHE/bin/coredns" "$work/coredns/coredns"
  rootfs_layer "$work/coredns" "$work/coredns.layer"
  oci_archive "$COREDNS_IMAGE" "$work/coredns.layer" "$cache/coredns.tar" '["/coredns"]'
fi

if [ ! -s "$cache/nettools.tar" ]; then
  echo "== image $NETTOOLS_IMAGE (mmdebstrap: a minute or two)" >&2
  # nginx answers every request with who it is and who asked (the client's address as the
  # server sees it: a pod's own address when nothing NATs), and logs to stdout.
  # shellcheck disable=SC2016 # ($1 is mmdebstrap's, expanded by its hook shell)
  mmdebstrap --quiet --variant=essential --mode=root \
    --include=nginx-light,curl,traceroute,iputils-ping,net-tools,dnsutils,netcat-openbsd,iproute2,procps,iperf3 \
    --dpkgopt='path-exclude=/usr/share/man/*' --dpkgopt='path-exclude=/usr/share/doc/*' \
    --dpkgopt='path-exclude=/usr/share/locale/*' \
    --customize-hook='ln -sf /dev/stdout "$1/var/log/nginx/access.log"' \
    --customize-hook='ln -sf /dev/stderr "$1/var/log/nginx/error.log"' \
    --customize-hook='rm -f "$1/etc/nginx/sites-enabled/default"' \
    --customize-hook='copy-in tests/cluster/nettools-nginx.conf /etc/nginx/conf.d' \
    --customize-hook='rm -rf "$1/var/cache/apt" "$1/var/lib/apt/lists"; mkdir -p "$1/var/cache/apt" "$1/var/lib/apt/lists"' \
    bookworm "$work/nettools.tar" >&2
  oci_archive "$NETTOOLS_IMAGE" "$work/nettools.tar" "$cache/nettools.tar" \
    '["nginx", "-g", "daemon off;"]'
fi
cp "$cache/pause.tar" "$cache/coredns.tar" "$cache/nettools.tar" "$out/"

echo "== image $JALUR_IMAGE from $bin_dir" >&2
root=$work/jalur
copy_with_libs "$bin_dir/jalur-agent" "$root" /usr/local/bin/jalur-agent
copy_with_libs "$bin_dir/jalur" "$root" /usr/local/lib/jalur/cni/jalur
copy_with_libs "$bin_dir/jalur-ipam" "$root" /usr/local/lib/jalur/cni/jalur-ipam
mkdir -p "$root/tmp"
rootfs_layer "$root" "$work/jalur.layer"
oci_archive "$JALUR_IMAGE" "$work/jalur.layer" "$out/jalur.tar" '["/usr/local/bin/jalur-agent"]'
echo "$out"
