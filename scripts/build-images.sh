#!/usr/bin/env bash
# Builds the test cluster's images as OCI archives, with no registry and no image builder:
#   pause      registry.k8s.io/pause            Kubernetes' pause.c, static (gcc)
#   coredns    registry.k8s.io/coredns/coredns  the CoreDNS built by scripts/build-kube.sh
#   nettools   jalur-nettools:bookworm          Debian (mmdebstrap) with nginx, curl,
#                                               traceroute, ping, netstat/ifconfig, dig/
#                                               nslookup, nc, ip: for people and tests
#   jalur      jalur:0.1.0                      this workspace's jalur-agent and plugins, in
#                                               deploy/Dockerfile's layout
#   the e2e suite's: agnhost (built from the release), jessie-dnsutils, busybox
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
  oci_archive "$PAUSE_IMAGE" "$cache/pause.tar" '["/pause"]' null "$work/pause.layer"
fi

if [ ! -s "$cache/coredns.tar" ]; then
  echo "== image $COREDNS_IMAGE" >&2
  mkdir -p "$work/coredns"
  install -m 0755 "$KUBE_CACHE/bin/coredns" "$work/coredns/coredns"
  rootfs_layer "$work/coredns" "$work/coredns.layer"
  oci_archive "$COREDNS_IMAGE" "$cache/coredns.tar" '["/coredns"]' null "$work/coredns.layer"
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
  cp "$work/nettools.tar" "$cache/nettools.layer"
  oci_archive "$NETTOOLS_IMAGE" "$cache/nettools.tar" '["nginx", "-g", "daemon off;"]' null \
    "$cache/nettools.layer"
fi
if [ ! -s "$cache/agnhost.tar" ] || [ "$KUBE_CACHE/bin/agnhost" -nt "$cache/agnhost.tar" ]; then
  echo "== images for Kubernetes' e2e suite: agnhost, jessie-dnsutils, busybox" >&2
  # agnhost's own image (test/images/agnhost/Dockerfile): /agnhost (also as agnhost-2),
  # /uploads, porter's test certificate, and a user defined in the image.
  src=$(go env GOMODCACHE)/k8s.io/kubernetes@$KUBE_VERSION/test/images/agnhost
  mkdir -p "$work/agnhost/uploads" "$work/agnhost/etc"
  install -m 0755 "$KUBE_CACHE/bin/agnhost" "$work/agnhost/agnhost"
  ln -s agnhost "$work/agnhost/agnhost-2"
  install -m 0644 "$src/porter/localhost.crt" "$src/porter/localhost.key" "$work/agnhost/"
  tar -xOf "$cache/nettools.layer" ./etc/passwd >"$work/agnhost/etc/passwd"
  tar -xOf "$cache/nettools.layer" ./etc/group >"$work/agnhost/etc/group"
  echo "user-defined-in-image:x:1000:1000::/home/user-defined-in-image:/bin/sh" >>"$work/agnhost/etc/passwd"
  printf '%s\n' "user-defined-in-image:x:1000:" "group-defined-in-image:x:50000:user-defined-in-image" \
    >>"$work/agnhost/etc/group"
  rootfs_layer "$work/agnhost" "$work/agnhost.layer"
  oci_archive "$AGNHOST_IMAGE" "$cache/agnhost.tar" '["/agnhost"]' '["pause"]' \
    "$cache/nettools.layer" "$work/agnhost.layer"
  oci_archive "$DNSUTILS_IMAGE" "$cache/dnsutils.tar" null null "$cache/nettools.layer"
  mkdir -p "$work/busybox/bin"
  install -m 0755 /bin/busybox "$work/busybox/bin/busybox"
  for applet in $(/bin/busybox --list); do ln -sf busybox "$work/busybox/bin/$applet"; done
  rootfs_layer "$work/busybox" "$work/busybox.layer"
  oci_archive "$BUSYBOX_IMAGE" "$cache/busybox.tar" null '["sh"]' "$work/busybox.layer"
fi
cp "$cache/pause.tar" "$cache/coredns.tar" "$cache/nettools.tar" "$cache/agnhost.tar" \
  "$cache/dnsutils.tar" "$cache/busybox.tar" "$out/"

echo "== image $JALUR_IMAGE from $bin_dir" >&2
root=$work/jalur
copy_with_libs "$bin_dir/jalur-agent" "$root" /usr/local/bin/jalur-agent
copy_with_libs "$bin_dir/jalur" "$root" /usr/local/lib/jalur/cni/jalur
copy_with_libs "$bin_dir/jalur-ipam" "$root" /usr/local/lib/jalur/cni/jalur-ipam
mkdir -p "$root/tmp"
rootfs_layer "$root" "$work/jalur.layer"
oci_archive "$JALUR_IMAGE" "$out/jalur.tar" '["/usr/local/bin/jalur-agent"]' null "$work/jalur.layer"
echo "$out"
