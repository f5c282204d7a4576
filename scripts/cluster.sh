#!/usr/bin/env bash
# A real Kubernetes cluster on this one machine, with Jalur as its pod network: Kubernetes'
# own components built from their Go sources (scripts/build-kube.sh), three nodes, each a
# network + mount + UTS namespace with its own containerd, kubelet and kube-proxy, and Jalur
# installed from deploy/jalur.yaml exactly as on any cluster.
#
#   sudo ./scripts/cluster.sh up            # build what is missing, start, wait until Ready
#   eval "$(sudo ./scripts/cluster.sh env)" # kubectl for this cluster, in this shell
#   sudo ./scripts/cluster.sh status        # nodes, pod CIDRs, Jalur's pods
#   sudo ./scripts/cluster.sh load IMAGE.tar  # an OCI or docker archive, into every node
#   sudo ./scripts/cluster.sh down          # remove everything it made
#
# The picture (namespaces are named jk-*; state in /var/lib/jalur-cluster):
#
#   subnet A 192.168.30.0/24 (jk-bridge-a)             subnet B 192.168.31.0/24 (jk-bridge-b)
#     node1 .11   node2 .12   --- .1 jk-router .1 ---   node3 .13
#     node1 is also the control plane (etcd, kube-apiserver :6443, controller-manager,
#     scheduler in its network namespace), as on kubeadm or minikube.
#   Nodes get spec.podCIDRs from 10.244.0.0/16 (controller-manager, /24 each); Services
#   10.96.0.0/12, the API server behind 10.96.0.1, CoreDNS behind kube-dns 10.96.0.10.
#   node1 and node2 route each other's pods directly, node3 is reached over Jalur's VXLAN.
#
# Nothing touches the machine's own network: every address, route and link lives in the
# jk-* namespaces. `kubectl` from `env` enters node1's network namespace to reach the API
# server. Every process the cluster starts (and its children: containerd's shims, the
# containers) runs in a cgroup under /jalur-cluster, which is how `down` finds them.
set -euo pipefail
cd "$(dirname "$0")/.."
REPO=$PWD
source scripts/lib/cluster-lib.sh

usage() {
  sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//' >&2
  exit 2
}
[ $# -ge 1 ] || usage
if [ "$(id -u)" -ne 0 ]; then
  echo "scripts/cluster.sh needs root (namespaces, cgroups, mounts): run it with sudo" >&2
  exit 1
fi

case "$1" in
  up) cluster_up ;;
  down) cluster_down ;;
  env) cluster_env ;;
  status) cluster_status ;;
  load)
    [ $# -eq 2 ] || usage
    cluster_load "$2"
    ;;
  *) usage ;;
esac
