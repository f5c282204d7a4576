#!/usr/bin/env bash
# The real-cluster tests: Jalur in a Kubernetes cluster built from Kubernetes' own sources
# (scripts/cluster.sh), driven by real kubelets, containerd and kube-proxy. Brings the
# cluster up, checks what the README promises of it, and tears it down again, also when a
# check fails. Prints one "ok"/"not ok" line per check and "N passed, N failed" at the end.
#
#   sudo tests/cluster/cluster-test.sh           # up, test, down
#   KEEP=1 sudo tests/cluster/cluster-test.sh    # leave the cluster up afterwards
#   REUSE=1 KEEP=1 sudo tests/cluster/cluster-test.sh  # test the cluster that is up (it
#                                                      # deletes and re-registers node3)
set -uo pipefail
cd "$(dirname "$0")/../.." || exit 1
REPO=$PWD
source scripts/lib/cluster-lib.sh

PASSED=0 FAILED=0
# check NAME COMMAND...: one check; its output is shown only when it fails.
check() {
  local name=$1 out; shift
  if out=$("$@" 2>&1); then
    echo "ok - $name"
    PASSED=$((PASSED + 1))
  else
    echo "not ok - $name"
    tail -n 20 <<<"$out" | sed 's/^/    /'
    FAILED=$((FAILED + 1))
  fi
}
finish() {
  if [ "${KEEP:-0}" != 1 ]; then "$REPO/scripts/cluster.sh" down >/dev/null 2>&1; fi
  echo
  echo "cluster tests: $PASSED passed, $FAILED failed"
  [ "$FAILED" -eq 0 ]
}
trap 'finish; exit $?' EXIT

if [ "${REUSE:-0}" = 1 ] && [ -f "$PKI/admin.kubeconfig" ]; then
  echo "# REUSE=1: testing the cluster that is up"
elif [ -e "$STATE" ] && ! "$REPO/scripts/cluster.sh" down >/dev/null 2>&1; then
  echo "not ok - a leftover cluster could not be removed"
  FAILED=$((FAILED + 1))
  exit 1
elif ! "$REPO/scripts/cluster.sh" up >/tmp/jalur-cluster-up.log 2>&1; then
  echo "not ok - the cluster comes up from the built components"
  tail -n 30 /tmp/jalur-cluster-up.log | sed 's/^/    /'
  echo "    logs: /tmp/jalur-cluster-logs/"
  FAILED=$((FAILED + 1))
  exit 1
fi

# --- helpers -------------------------------------------------------------------------------
pod_ip() { k get pod "$1" -o jsonpath='{.status.podIP}'; }
pod_node() { k get pod "$1" -o jsonpath='{.spec.nodeName}'; }
node_cidr() { k get node "$1" -o jsonpath='{.spec.podCIDR}'; }
node_ip() { k get node "$1" -o jsonpath='{.status.addresses[?(@.type=="InternalIP")].address}'; }
in_cidr() { python3 -c 'import ipaddress,sys; sys.exit(ipaddress.ip_address(sys.argv[1]) not in ipaddress.ip_network(sys.argv[2]))' "$1" "$2"; }
hops() { # hops POD DST: the addresses traceroute shows from POD to DST
  k exec "$1" -c main -- traceroute -n -q 1 -w 2 -m 6 "$2" | tail -n +2 | awk '{print $2}' | tr '\n' ' ' | sed 's/ $//'
}
expect_eq() { # expect_eq WHAT GOT WANT
  [ "$2" = "$3" ] || { echo "$1: got '$2', want '$3'"; return 1; }
}

# --- the cluster -----------------------------------------------------------------------------
versions_are_real() {
  local v
  v=$(k get nodes -o jsonpath='{range .items[*]}{.status.nodeInfo.kubeletVersion}{"\n"}{end}' | sort -u)
  expect_eq "kubelet versions" "$v" "$KUBE_VERSION" || return 1
  k version -o json | jq -e --arg v "$KUBE_VERSION" '.serverVersion.gitVersion == $v' >/dev/null
}
check "every component reports the pinned release $KUBE_VERSION" versions_are_real

notready_until_jalur() {
  # cluster.sh recorded each node's Ready condition before it applied deploy/jalur.yaml.
  local f=$STATE/before-jalur.txt
  [ -s "$f" ] || { echo "no record $f"; return 1; }
  cat "$f"
  [ "$(grep -ci 'False.*network' "$f")" -eq ${#NODES[@]} ] || return 1
  all_nodes_ready
}
check "nodes are NotReady (no network) until Jalur's agent writes the config, then Ready" notready_until_jalur

check "every kube-system pod is Ready (Jalur on every node, CoreDNS)" kube_system_ready

# --- pods --------------------------------------------------------------------------------------
# web-1a, web-1b and client on node1, web-2 on node2, web-3 on node3 (behind the router).
pods_manifest() {
  local name node
  for spec in web-1a:node1 web-1b:node1 web-2:node2 web-3:node3; do
    name=${spec%%:*} node=${spec#*:}
    cat <<EOF
---
apiVersion: v1
kind: Pod
metadata: {name: $name, labels: {app: web}}
spec:
  nodeSelector: {kubernetes.io/hostname: $node}
  containers:
    - {name: main, image: $NETTOOLS_IMAGE, imagePullPolicy: Never}
EOF
  done
  cat <<EOF
---
apiVersion: v1
kind: Pod
metadata: {name: client}
spec:
  nodeSelector: {kubernetes.io/hostname: node1}
  containers:
    - {name: main, image: $NETTOOLS_IMAGE, imagePullPolicy: Never}
    - {name: sidecar, image: $NETTOOLS_IMAGE, imagePullPolicy: Never, command: [sleep, infinity]}
---
apiVersion: v1
kind: Service
metadata: {name: web}
spec:
  selector: {app: web}
  ports: [{port: 80}]
---
apiVersion: v1
kind: Service
metadata: {name: web-np}
spec:
  type: NodePort
  selector: {app: web}
  ports: [{port: 80}]
EOF
}
start_pods() {
  pods_manifest | k apply -f - >/dev/null &&
    k wait --for=condition=Ready pod --all --timeout=120s
}
check "pods start on every node (one with two containers)" start_pods

addresses_from_node_cidr() {
  local p ip node cidr
  for p in web-1a web-1b web-2 web-3 client; do
    ip=$(pod_ip "$p") node=$(pod_node "$p") cidr=$(node_cidr "$node")
    echo "$p on $node: $ip in $cidr"
    in_cidr "$ip" "$cidr" || return 1
  done
}
check "each pod's address is from its node's pod CIDR" addresses_from_node_cidr

reach() {
  local p
  for p in web-1b web-2 web-3; do
    k exec client -c main -- ping -c 2 -W 2 "$(pod_ip "$p")" || return 1
  done
}
check "a pod reaches pods on its own node, a direct peer and an overlay peer (ping)" reach

traceroute_hops() {
  local n1 n2 tunnel3 ip
  n1=$(node_ip node1) n2=$(node_ip node2)
  tunnel3=$(node_cidr node3); tunnel3=${tunnel3%/*}
  ip=$(pod_ip web-1b); expect_eq "same node" "$(hops client "$ip")" "$n1 $ip" || return 1
  ip=$(pod_ip web-2); expect_eq "direct peer" "$(hops client "$ip")" "$n1 $n2 $ip" || return 1
  ip=$(pod_ip web-3); expect_eq "overlay peer" "$(hops client "$ip")" "$n1 $tunnel3 $ip"
}
check "traceroute: node then pod; node, peer node, pod; node, peer's tunnel address, pod" traceroute_hops

shared_netns() {
  local a b
  a=$(k exec client -c main -- ip -o -4 addr show eth0) || return 1
  b=$(k exec client -c sidecar -- ip -o -4 addr show eth0) || return 1
  expect_eq "eth0 of both containers" "$b" "$a" || return 1
  grep -q "$(pod_ip client)/32" <<<"$a" || { echo "eth0: $a"; return 1; }
  # nginx in the main container listens on :80, seen from the sidecar too.
  k exec client -c sidecar -- netstat -tln | grep -q ':80 '
}
check "a pod's two containers share one network namespace, the pod's address on eth0" shared_netns

# curl_web CLIENT URL TIMES: the distinct answers to TIMES requests.
curl_web() {
  local i
  for ((i = 0; i < $3; i++)); do
    k exec "$1" -c main -- curl -s --max-time 3 "$2"
  done | sort -u
}
service_by_dns() {
  local out backends
  out=$(curl_web client http://web.default.svc.cluster.local/ 12)
  echo "$out"
  backends=$(awk '{print $1}' <<<"$out" | sort -u | wc -l)
  [ "$backends" -ge 2 ] || return 1
  # Every answer names the client pod's own address: no NAT between pods.
  ! grep -qv "hello $(pod_ip client)\$" <<<"$out"
}
check "a ClusterIP Service by DNS name answers from several backends, seeing the client pod's own address" service_by_dns

endpoints_list() {
  k get endpointslices -l kubernetes.io/service-name=web -o jsonpath='{..addresses}' | grep -q "\"$1\""
}
endpoints_follow_pods() {
  local old new eps
  old=$(pod_ip web-2)
  k delete pod web-2 --wait=true >/dev/null || return 1
  pods_manifest | k apply -f - >/dev/null || return 1
  k wait --for=condition=Ready pod/web-2 --timeout=60s >/dev/null || return 1
  new=$(pod_ip web-2)
  wait_for 30 "endpoints to list web-2's new address" endpoints_list "$new" || return 1
  eps=$(k get endpointslices -l kubernetes.io/service-name=web -o jsonpath='{..addresses}')
  echo "old $old, new $new, endpoints $eps"
  [ "$old" = "$new" ] || ! grep -q "\"$old\"" <<<"$eps"
}
check "the Service's endpoints follow a pod that is deleted and recreated" endpoints_follow_pods

nodeport_everywhere() {
  local port i out
  port=$(k get svc web-np -o jsonpath='{.spec.ports[0].nodePort}')
  for i in "${!NODES[@]}"; do
    # From the router: a host on the underlay that is not a node.
    out=$(ip netns exec jk-router curl -s --max-time 3 "http://${NODE_IP[i]}:$port/") || { echo "no answer from ${NODE_IP[i]}:$port"; return 1; }
    echo "${NODE_IP[i]}:$port -> $out"
  done
}
check "the Service as NodePort answers on every node" nodeport_everywhere

# --- the agent under Kubernetes ----------------------------------------------------------------
ping_through_restart() {
  local ip sent=0 got=0 out end tx rx
  ip=$(pod_ip web-3)
  k -n kube-system rollout restart daemonset/jalur >/dev/null || return 1
  end=$((SECONDS + 180))
  # Short pings back to back for as long as the rollout runs (bounded).
  while [ $SECONDS -lt $end ]; do
    out=$(k exec client -c main -- ping -c 10 -i 0.2 -W 1 "$ip" 2>&1)
    tx=$(grep -oE '[0-9]+ packets transmitted' <<<"$out" | cut -d' ' -f1)
    rx=$(grep -oE '[0-9]+ received' <<<"$out" | cut -d' ' -f1)
    sent=$((sent + ${tx:-0})) got=$((got + ${rx:-0}))
    k -n kube-system rollout status daemonset/jalur --timeout=1s >/dev/null 2>&1 && break
  done
  k -n kube-system rollout status daemonset/jalur --timeout=60s >/dev/null || return 1
  echo "pings sent $sent, answered $got"
  [ "$sent" -gt 0 ] && [ "$sent" -eq "$got" ]
}
check "kubectl rollout restart daemonset/jalur loses no ping between pods" ping_through_restart

route_to() { # route_to NODE CIDR: NODE has a Jalur route to CIDR
  [ -n "$(ip -n "jk-$1" route show "$2" proto 74 2>/dev/null)" ]
}
no_route_on_1_2() { ! route_to node1 "$1" && ! route_to node2 "$1"; }
route_on_1_2() { route_to node1 "$1" && route_to node2 "$1"; }
gone() { ! kill -0 "$1" 2>/dev/null; }
has_cidr() { [ -n "$(node_cidr "$1")" ]; }
node_delete_and_return() {
  local cidr pid
  cidr=$(node_cidr node3)
  k delete node node3 >/dev/null || return 1
  wait_for 30 "node1 and node2 to drop the route to $cidr" no_route_on_1_2 "$cidr" || return 1
  echo "deleted node3 ($cidr): routes gone from node1 and node2"
  # The node registers again when its kubelet restarts.
  pid=$(awk '$2 == "node3-kubelet" {print $1}' "$STATE/pids" | tail -n 1)
  kill "$pid" && wait_for 30 "node3's kubelet to stop" gone "$pid"
  node_kubelet node3 "${NODE_IP[2]}"
  wait_for 120 "node3 to register again" k get node node3 || return 1
  wait_for 60 "node3's pod CIDR" has_cidr node3 || return 1
  cidr=$(node_cidr node3)
  wait_for 60 "node1 and node2 to route $cidr again" route_on_1_2 "$cidr" || return 1
  echo "node3 is back with $cidr: routed again"
  wait_for 180 "node3 to be Ready" all_nodes_ready || return 1
  # What node3 itself sends over the overlay leaves from its new tunnel address: it
  # reaches a pod on node1, and its NodePort reaches every backend (all on other nodes
  # now: node3's own pod went with its Node).
  in_node node3 curl -s --max-time 3 "http://$(pod_ip web-1a)/" || return 1
  local port i
  port=$(k get svc web-np -o jsonpath='{.spec.ports[0].nodePort}')
  for i in 1 2 3 4 5 6; do
    ip netns exec jk-router curl -s --max-time 3 "http://${NODE_IP[2]}:$port/" || return 1
  done
}
check "kubectl delete node removes its routes on the others; a node that registers again is routed" node_delete_and_return

no_pods() { [ -z "$(k get pods -o name)" ]; }
no_leftovers() {
  k delete pod web-1a web-1b web-2 web-3 client --wait=true --timeout=90s >/dev/null || return 1
  wait_for 60 "every test pod to be gone" no_pods || return 1
  local i node booked links pods
  for i in "${!NODES[@]}"; do
    node=${NODES[i]}
    # What remains booked, and the host ends that remain, belong to pods still on the node
    # (CoreDNS).
    pods=$(k get pods -A --field-selector "spec.nodeName=$node" -o json |
      jq '[.items[] | select(.spec.hostNetwork != true) | select(.status.podIP != null)] | length')
    booked=$(cat "$STATE/nodes/$node/root/var-lib-jalur/ipam"/*/allocations.json 2>/dev/null |
      jq -s '[.[] | (.allocations // []) | length] | add // 0')
    links=$(ip -n "jk-$node" -o link show | grep -c ': jl' || true)
    echo "$node: $pods pods with an address, $booked addresses booked, $links jl* links"
    [ "$booked" -eq "$pods" ] && [ "$links" -eq "$pods" ] || return 1
  done
}
check "deleting every pod leaves no booked address and no jl* interface on any node" no_leftovers
