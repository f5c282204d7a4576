#!/usr/bin/env bash
# node-init.sh NAME DIR: the first process of a test-cluster node, run by scripts/cluster.sh
# inside the node's new mount and UTS namespaces (and its network namespace). It binds the
# node's own directories over the default paths, so that containerd, kubelet, the CNI
# plugins and Jalur's DaemonSet (its hostPaths) all keep their defaults and still see only
# this node's files; sets the hostname; records its PID for `nsenter -t`; then sleeps,
# holding the namespaces, until `cluster.sh down` stops it.
set -euo pipefail
name=$1 dir=$2
# Nothing mounted here leaks out to the machine (the namespace was made with
# --propagation slave: the machine's mounts still reach in).
for pair in var-lib-kubelet:/var/lib/kubelet var-lib-containerd:/var/lib/containerd \
            run-containerd:/run/containerd var-log-pods:/var/log/pods \
            var-log-containers:/var/log/containers etc-cni-net.d:/etc/cni/net.d \
            opt-cni-bin:/opt/cni/bin var-lib-cni:/var/lib/cni var-lib-jalur:/var/lib/jalur \
            run-netns:/run/netns; do
  src=$dir/root/${pair%%:*} dst=${pair#*:}
  mkdir -p "$src"
  mount --bind "$src" "$dst"
done
# kubelet's volumes are mounted under /var/lib/kubelet and must reach the containers that
# containerd (in this same namespace) starts.
mount --make-rshared /var/lib/kubelet
hostname "$name"
echo $$ >"$dir/anchor.pid"
exec sleep infinity
