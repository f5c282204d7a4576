# shellcheck shell=bash
# The test cluster's steps (sourced by scripts/cluster.sh, scripts/conformance.sh and
# tests/cluster/cluster-test.sh): network, control plane, nodes, add-ons, and the removal of
# all of it. Expects REPO; brings the versions, the underlay and the PKI steps along.
# shellcheck source=scripts/lib/kube-versions.sh
source "$REPO/scripts/lib/kube-versions.sh"
# shellcheck source=scripts/lib/underlay.sh
source "$REPO/scripts/lib/underlay.sh"
# shellcheck source=scripts/lib/cluster-pki.sh
source "$REPO/scripts/lib/cluster-pki.sh"

STATE=${JALUR_CLUSTER_STATE:-/var/lib/jalur-cluster}
PKI=$STATE/pki
CGROUP=jalur-cluster
NODES=(node1 node2 node3)
NODE_IP=(192.168.30.11 192.168.30.12 192.168.31.13)
NODE_SUBNET=(a a b)
# The control plane runs on node1, as on a kubeadm or minikube cluster: in node1's network
# namespace, so that the API server reaches pods (its proxy, exec) over Jalur's routes.
CONTROL_NS=jk-node1
APISERVER_IP=192.168.30.11
SERVICE_CIDR=10.96.0.0/12
# shellcheck disable=SC2034 # (used by cluster-pki.sh: the API server certificate names it)
SERVICE_IP=10.96.0.1
DNS_IP=10.96.0.10
CLUSTER_CIDR=10.244.0.0/16
UP_WAIT=${UP_WAIT:-300}   # seconds for the nodes and kube-system pods to be Ready
# The host paths each node sees as its own (scripts/lib/node-init.sh binds over them); made
# on the machine when missing (as empty mount points) and removed again by `down`.
NODE_PATHS=(/var/lib/kubelet /var/lib/containerd /run/containerd /var/log/pods
            /var/log/containers /etc/cni/net.d /opt/cni/bin /var/lib/cni /var/lib/jalur /run/netns)

log() { echo "== $*" >&2; }

# cluster_netns: the cluster's network namespaces (jk-*), this run's or a leftover's.
cluster_netns() {
  local f
  for f in /run/netns/jk-*; do [ -e "$f" ] && echo "${f##*/}"; done
  return 0
}

# wait_for SECONDS WHAT COMMAND...: runs COMMAND every second until it succeeds; fails
# naming WHAT after SECONDS.
wait_for() {
  local secs=$1 what=$2; shift 2
  local end=$((SECONDS + secs))
  until "$@" >/dev/null 2>&1; do
    if [ $SECONDS -ge $end ]; then
      echo "cluster.sh: timed out after ${secs}s waiting for $what" >&2
      return 1
    fi
    sleep 1
  done
}

# kube_bin: where scripts/build-kube.sh put the components (built if missing).
kube_bin() { echo "$KUBE_CACHE/bin"; }

# k ARGS...: kubectl as the cluster's admin, from inside the control plane's network
# namespace.
k() {
  nsenter --net="/run/netns/$CONTROL_NS" "$(kube_bin)/kubectl" --kubeconfig="$PKI/admin.kubeconfig" "$@"
}

# spawn NAME CGROUP COMMAND...: starts COMMAND detached, in its own session and in the cgroup
# /jalur-cluster/CGROUP, logging to STATE/logs/NAME.log.
spawn() {
  local name=$1 cg=$2; shift 2
  mkdir -p "$STATE/logs"
  setsid "$REPO/scripts/lib/in-cgroup" "$CGROUP/$cg" "$@" \
    </dev/null >>"$STATE/logs/$name.log" 2>&1 &
  echo "$! $name" >>"$STATE/pids"
}

# in_node NODE COMMAND...: runs COMMAND in NODE's network, mount and UTS namespaces.
in_node() {
  local node=$1; shift
  nsenter -t "$(cat "$STATE/nodes/$node/anchor.pid")" -m -u -n -- "$@"
}

# in_control COMMAND...: runs COMMAND in the control plane's network namespace.
IN_CONTROL=(nsenter --net="/run/netns/$CONTROL_NS" --)
in_control() { "${IN_CONTROL[@]}" "$@"; }

cluster_network() {
  log "network: two subnets joined by a router, three nodes"
  local i
  underlay_router jk-router
  underlay_subnet jk-bridge-a jk-router leg-a 192.168.30.1/24
  underlay_subnet jk-bridge-b jk-router leg-b 192.168.31.1/24
  for i in "${!NODES[@]}"; do
    underlay_host "jk-${NODES[i]}" "jk-bridge-${NODE_SUBNET[i]}" "${NODES[i]}" \
      "${NODE_IP[i]}/24" "${NODE_IP[i]%.*}.1"
  done
}

cluster_control_plane() {
  local bin
  bin=$(kube_bin)
  log "control plane: etcd, kube-apiserver $KUBE_VERSION, controller-manager, scheduler"
  spawn etcd control "${IN_CONTROL[@]}" "$bin/etcd" --name=control --data-dir="$STATE/etcd" \
    --listen-client-urls=http://127.0.0.1:2379 --advertise-client-urls=http://127.0.0.1:2379 \
    --listen-peer-urls=http://127.0.0.1:2380 --initial-advertise-peer-urls=http://127.0.0.1:2380 \
    --initial-cluster=control=http://127.0.0.1:2380 --unsafe-no-fsync --log-level=warn
  wait_for 60 "etcd" in_control curl -sf http://127.0.0.1:2379/health
  spawn kube-apiserver control "${IN_CONTROL[@]}" "$bin/kube-apiserver" \
    --etcd-servers=http://127.0.0.1:2379 --advertise-address="$APISERVER_IP" \
    --secure-port=6443 --tls-cert-file="$PKI/apiserver.crt" \
    --tls-private-key-file="$PKI/apiserver.key" --client-ca-file="$PKI/ca.crt" \
    --service-account-key-file="$PKI/sa.pub" --service-account-signing-key-file="$PKI/sa.key" \
    --service-account-issuer=https://kubernetes.default.svc.cluster.local \
    --service-cluster-ip-range="$SERVICE_CIDR" --authorization-mode=Node,RBAC \
    --enable-admission-plugins=NodeRestriction --allow-privileged=true \
    --kubelet-client-certificate="$PKI/apiserver-kubelet-client.crt" \
    --kubelet-client-key="$PKI/apiserver-kubelet-client.key" \
    --kubelet-preferred-address-types=InternalIP --profiling=false --v=1
  wait_for 120 "kube-apiserver's /readyz" k get --raw /readyz
  spawn kube-controller-manager control "${IN_CONTROL[@]}" "$bin/kube-controller-manager" \
    --kubeconfig="$PKI/controller-manager.kubeconfig" \
    --authentication-kubeconfig="$PKI/controller-manager.kubeconfig" \
    --authorization-kubeconfig="$PKI/controller-manager.kubeconfig" \
    --leader-elect=false --bind-address=127.0.0.1 --use-service-account-credentials=true \
    --allocate-node-cidrs=true --cluster-cidr="$CLUSTER_CIDR" --node-cidr-mask-size=24 \
    --service-cluster-ip-range="$SERVICE_CIDR" --root-ca-file="$PKI/ca.crt" \
    --service-account-private-key-file="$PKI/sa.key" \
    --cluster-signing-cert-file="$PKI/ca.crt" --cluster-signing-key-file="$PKI/ca.key" --v=1
  spawn kube-scheduler control "${IN_CONTROL[@]}" "$bin/kube-scheduler" \
    --kubeconfig="$PKI/scheduler.kubeconfig" \
    --authentication-kubeconfig="$PKI/scheduler.kubeconfig" \
    --authorization-kubeconfig="$PKI/scheduler.kubeconfig" \
    --leader-elect=false --bind-address=127.0.0.1 --v=1
}

# The node's configuration files: containerd's, kubelet's and kube-proxy's.
node_configs() {
  local node=$1 ip=$2 dir=$STATE/nodes/$1
  mkdir -p "$dir"
  cat >"$dir/containerd.toml" <<EOF
version = 2
root = "/var/lib/containerd"
state = "/run/containerd"
disabled_plugins = ["io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs",
                    "io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.devmapper",
                    "io.containerd.internal.v1.tracing", "io.containerd.tracing.processor.v1.otlp"]
[grpc]
  address = "/run/containerd/containerd.sock"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "$PAUSE_IMAGE"
  # This machine withholds CAP_SYS_RESOURCE even from root, so no process may lower its
  # oom_score_adj: containerd caps what kubelet asks for (-998 for critical pods) at its own.
  restrict_oom_score_adj = true
  stream_server_address = "127.0.0.1"
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/opt/cni/bin"
    conf_dir = "/etc/cni/net.d"
EOF
  # No upstream resolver: nothing here may send traffic outside the cluster's namespaces.
  echo "nameserver 127.0.0.1" >"$dir/resolv.conf"
  cat >"$dir/kubelet.yaml" <<EOF
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: true}
  x509: {clientCAFile: $PKI/ca.crt}
authorization: {mode: Webhook}
cgroupDriver: cgroupfs
cgroupRoot: /$CGROUP/$node
clusterDNS: [$DNS_IP]
clusterDomain: cluster.local
containerRuntimeEndpoint: unix:///run/containerd/containerd.sock
failSwapOn: false
failCgroupV1: false
# Many nodes share one disk here: never evict or collect images for want of space (kind's
# settings for the same situation).
imageGCHighThresholdPercent: 100
evictionHard: {nodefs.available: "0%", nodefs.inodesFree: "0%", imagefs.available: "0%", imagefs.inodesFree: "0%"}
resolvConf: $dir/resolv.conf
serializeImagePulls: false
rotateCertificates: false
EOF
  cat >"$dir/kube-proxy.yaml" <<EOF
apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
mode: nftables
clientConnection: {kubeconfig: $PKI/kube-proxy.kubeconfig}
hostnameOverride: $node
clusterCIDR: $CLUSTER_CIDR
metricsBindAddress: 127.0.0.1:10249
# It cannot raise conntrack sysctls it does not own here (kind's settings).
conntrack:
  maxPerCore: 0
  tcpEstablishedTimeout: 0s
  tcpCloseWaitTimeout: 0s
EOF
}

node_start() {
  local node=$1 ip=$2 bin dir=$STATE/nodes/$1
  bin=$(kube_bin)
  node_configs "$node" "$ip"
  mkdir -p "$dir/root/opt-cni-bin"
  # containerd needs loopback for every pod; portmap lets Jalur's conflist chain hostPorts.
  cp /usr/lib/cni/loopback /usr/lib/cni/portmap "$dir/root/opt-cni-bin/"
  spawn "$node-anchor" "$node/system" nsenter --net="/run/netns/jk-$node" \
    unshare --mount --uts --propagation slave -- "$REPO/scripts/lib/node-init.sh" "$node" "$dir"
  wait_for 10 "$node's namespaces" test -s "$dir/anchor.pid"
  spawn "$node-containerd" "$node/system" nsenter -t "$(cat "$dir/anchor.pid")" -m -u -n -- \
    containerd --config "$dir/containerd.toml"
  wait_for 30 "$node's containerd" test -S "$dir/root/run-containerd/containerd.sock"
}

node_import() {
  local node=$1 archive=$2
  ctr --address "$STATE/nodes/$node/root/run-containerd/containerd.sock" -n k8s.io \
    images import --no-unpack=false "$archive" >/dev/null
}

node_kubelet() {
  local node=$1 ip=$2 bin dir=$STATE/nodes/$1 anchor
  bin=$(kube_bin)
  anchor=$(cat "$dir/anchor.pid")
  spawn "$node-kubelet" "$node/system" nsenter -t "$anchor" -m -u -n -- "$bin/kubelet" \
    --config="$dir/kubelet.yaml" --kubeconfig="$PKI/$node.kubeconfig" \
    --hostname-override="$node" --node-ip="$ip" --v=1
}

node_proxy() {
  local node=$1 bin dir=$STATE/nodes/$1 anchor
  bin=$(kube_bin)
  anchor=$(cat "$dir/anchor.pid")
  spawn "$node-kube-proxy" "$node/system" nsenter -t "$anchor" -m -u -n -- "$bin/kube-proxy" \
    --config="$dir/kube-proxy.yaml" --v=1
}

# The manifest exactly as a user applies it, but for the cluster CIDR in its ConfigMap.
jalur_manifest() {
  sed "s|cluster-cidr: \"10.244.0.0/16\"|cluster-cidr: \"$CLUSTER_CIDR\"|" "$REPO/deploy/jalur.yaml"
}

all_nodes_ready() {
  [ "$(k get nodes -o jsonpath='{range .items[*]}{.status.conditions[?(@.type=="Ready")].status}{"\n"}{end}' | grep -c True)" -eq ${#NODES[@]} ]
}

all_nodes_registered() {
  [ "$(k get nodes -o name | wc -l)" -eq ${#NODES[@]} ]
}

nodes_wait_for_network() {
  [ "$(k get nodes -o jsonpath='{range .items[*]}{.status.conditions[?(@.type=="Ready")].message}{"\n"}{end}' | grep -ci 'network')" -eq ${#NODES[@]} ]
}

kube_system_ready() {
  local out
  out=$(k -n kube-system get pods -o jsonpath='{range .items[*]}{.status.conditions[?(@.type=="Ready")].status}{"\n"}{end}')
  [ -n "$out" ] && ! grep -qv True <<<"$out"
}

# up_failed: on the way out of a failed `up`, keep the logs and remove what was made.
up_failed() {
  local status=$?
  [ $status -ne 0 ] || return 0
  log "up failed: removing what was made (logs kept in /tmp/jalur-cluster-logs)"
  rm -rf /tmp/jalur-cluster-logs
  cp -r "$STATE/logs" /tmp/jalur-cluster-logs 2>/dev/null
  cluster_down
}

cluster_up() {
  if [ -e "$STATE" ] || [ -n "$(cluster_netns)" ]; then
    echo "cluster.sh: a cluster (or a leftover of one) exists: run 'cluster.sh down' first" >&2
    exit 1
  fi
  local missing=() tool
  for tool in ip:iproute2 containerd:containerd runc:runc ctr:containerd nft:nftables \
              conntrack:conntrack openssl:openssl jq:jq curl:curl mmdebstrap:mmdebstrap \
              go:golang cargo:cargo gcc:gcc; do
    command -v "${tool%%:*}" >/dev/null || missing+=("${tool#*:}")
  done
  [ -x /usr/lib/cni/loopback ] || missing+=(containernetworking-plugins)
  if [ ${#missing[@]} -gt 0 ]; then
    echo "cluster.sh: missing tools; install them: apt-get install ${missing[*]}" >&2
    exit 1
  fi
  local started=$SECONDS target
  log "building Jalur (cargo, release) and Kubernetes $KUBE_VERSION (cached in $KUBE_CACHE)"
  cargo build -q --release --locked --bin jalur --bin jalur-ipam --bin jalur-agent
  target=$(cargo metadata --format-version 1 --no-deps | jq -r .target_directory)/release
  "$REPO/scripts/build-kube.sh" >/dev/null
  mkdir -p "$STATE/images"
  "$REPO/scripts/build-images.sh" "$target" "$STATE/images" >/dev/null

  # From here on, a failure removes whatever was made.
  trap up_failed EXIT
  trap 'exit 130' INT
  trap 'exit 143' TERM
  local p top
  for p in "${NODE_PATHS[@]}"; do
    [ -e "$p" ] && continue
    top=$p
    while [ ! -e "$(dirname "$top")" ]; do top=$(dirname "$top"); done
    mkdir -p "$p"
    echo "$top" >>"$STATE/made-paths"
  done
  cluster_network
  pki_make "${NODES[@]}"
  cluster_control_plane
  local i
  log "nodes: containerd, and the images $(cd "$STATE/images" && echo *.tar)"
  for i in "${!NODES[@]}"; do node_start "${NODES[i]}" "${NODE_IP[i]}"; done
  local archive
  for i in "${!NODES[@]}"; do
    for archive in "$STATE"/images/*.tar; do node_import "${NODES[i]}" "$archive"; done
  done
  log "nodes: kubelet and kube-proxy (nftables)"
  for i in "${!NODES[@]}"; do
    node_kubelet "${NODES[i]}" "${NODE_IP[i]}"
    node_proxy "${NODES[i]}"
  done
  wait_for 120 "every Node to register" all_nodes_registered
  # Before Jalur: every node reports its Ready condition, and it is False for want of a
  # network (kept for the tests).
  wait_for 60 "every node to report NotReady for want of a network" nodes_wait_for_network
  k get nodes -o jsonpath='{range .items[*]}{.metadata.name} {.status.conditions[?(@.type=="Ready")].status} {.status.conditions[?(@.type=="Ready")].message}{"\n"}{end}' \
    >"$STATE/before-jalur.txt"
  log "Jalur: kubectl apply -f deploy/jalur.yaml"
  jalur_manifest | k apply -f - >/dev/null
  log "CoreDNS: kube-dns at $DNS_IP"
  sed "s|@COREDNS_IMAGE@|$COREDNS_IMAGE|; s|@DNS_IP@|$DNS_IP|" "$REPO/tests/cluster/coredns.yaml" \
    | k apply -f - >/dev/null
  wait_for "$UP_WAIT" "every node to be Ready" all_nodes_ready
  wait_for "$UP_WAIT" "every kube-system pod to be Ready" kube_system_ready
  trap - EXIT
  log "up in $((SECONDS - started)) s"
  cluster_status
  cat <<EOF

Use it:
  eval "\$(sudo $REPO/scripts/cluster.sh env)"
  kubectl get pods -A -o wide
  kubectl run web --image=jalur-nettools:bookworm
  kubectl exec -it web -- traceroute -n <pod IP>
Remove it:
  sudo $REPO/scripts/cluster.sh down
EOF
}

cluster_env() {
  [ -f "$PKI/admin.kubeconfig" ] || { echo "cluster.sh: no cluster is up" >&2; exit 1; }
  mkdir -p "$STATE/bin"
  # kubectl reaches the API server from inside the control plane's network namespace
  # (node1's): the machine's own network has no route to the cluster's.
  cat >"$STATE/bin/kubectl" <<EOF
#!/bin/sh
# kubectl for Jalur's test cluster (scripts/cluster.sh): entering a network namespace and
# reading the admin key take root, so a user's call goes through sudo.
[ "\$(id -u)" -eq 0 ] || exec sudo "\$0" "\$@"
exec nsenter --net=/run/netns/$CONTROL_NS "$(kube_bin)/kubectl" --kubeconfig="$PKI/admin.kubeconfig" "\$@"
EOF
  chmod +x "$STATE/bin/kubectl"
  echo "export KUBECONFIG=$PKI/admin.kubeconfig"
  echo "export PATH=$STATE/bin:\$PATH"
}

cluster_status() {
  [ -f "$PKI/admin.kubeconfig" ] || { echo "cluster.sh: no cluster is up" >&2; exit 1; }
  k get nodes -o custom-columns='NODE:.metadata.name,READY:.status.conditions[?(@.type=="Ready")].status,INTERNAL-IP:.status.addresses[?(@.type=="InternalIP")].address,POD-CIDRS:.spec.podCIDRs,KUBELET:.status.nodeInfo.kubeletVersion'
  echo
  k -n kube-system get pods -o wide -l 'app.kubernetes.io/name in (jalur)'
}

cluster_load() {
  local archive=$1 node
  [ -f "$archive" ] || { echo "cluster.sh: no such archive: $archive" >&2; exit 1; }
  for node in "${NODES[@]}"; do
    [ -s "$STATE/nodes/$node/anchor.pid" ] || { echo "cluster.sh: no cluster is up" >&2; exit 1; }
    node_import "$node" "$archive"
    echo "loaded $archive into $node"
  done
}

# cgroup_pids: every process in the cluster's cgroups (all of them: the control plane, the
# nodes' daemons, containerd's shims and the containers).
cgroup_pids() {
  find "/sys/fs/cgroup/pids/$CGROUP" -name cgroup.procs -exec cat {} + 2>/dev/null | sort -u
}

cluster_down() {
  local pids p i ns
  # Every process the cluster started, found through its cgroups, then any recorded PID
  # still alive (checked against its cgroup, so a reused PID is left alone).
  for i in 1 2 3 4 5 6 7 8 9 10; do
    pids=$(cgroup_pids)
    [ -n "$pids" ] || break
    # shellcheck disable=SC2086
    if [ "$i" -le 5 ]; then kill -TERM $pids 2>/dev/null || true; else kill -KILL $pids 2>/dev/null || true; fi
    sleep 1
  done
  [ -z "$(cgroup_pids)" ] || echo "cluster.sh: processes left in /$CGROUP: $(cgroup_pids | tr '\n' ' ')" >&2
  # Each node's mounts lived in its own mount namespace and went with its last process.
  for ns in $(cluster_netns); do
    ip netns del "$ns" 2>/dev/null || true
  done
  # The cgroups, deepest first, in every hierarchy.
  while read -r _ dir type _; do
    case "$type" in cgroup | cgroup2) ;; *) continue ;; esac
    [ -d "$dir/$CGROUP" ] && find "$dir/$CGROUP" -depth -type d -exec rmdir {} + 2>/dev/null
  done </proc/mounts
  if [ -f "$STATE/made-paths" ]; then
    # Only the empty directories `up` made, never anything with content.
    while read -r p; do
      if [ -d "$p" ]; then find "$p" -depth -type d -empty -delete 2>/dev/null || true; fi
    done <"$STATE/made-paths"
  fi
  rm -rf "$STATE"
  log "cluster removed"
}

