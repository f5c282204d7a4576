#!/usr/bin/env bash
# The local demo: a node (a network namespace on an underlay), two pods wired by the built
# `jalur` plugin exactly as a container runtime would call it, a table of who got which
# address, and the traceroute between the pods (the node, then the pod).
#
#   sudo ./scripts/demo.sh          # build, run, clean up
#   sudo ./scripts/demo.sh --keep   # leave it running and print how to enter a pod
#   sudo ./scripts/demo.sh --clean  # remove a demo left running
#
# Everything lives in namespaces named jdemo-*; nothing touches the host's own network.
set -euo pipefail
cd "$(dirname "$0")/.."

KEEP=0 CLEAN_ONLY=0
case "${1:-}" in
  --keep) KEEP=1 ;;
  --clean) CLEAN_ONLY=1 ;;
  "") ;;
  *) echo "usage: $0 [--keep|--clean]" >&2; exit 2 ;;
esac
if [ "$(id -u)" -ne 0 ]; then
  echo "scripts/demo.sh needs root (network namespaces): run it with sudo" >&2
  exit 1
fi
for tool in ip traceroute ping; do
  command -v "$tool" >/dev/null || { echo "missing $tool: apt-get install iproute2 traceroute iputils-ping" >&2; exit 1; }
done

echo "== building jalur"
cargo build -q --release --locked -p cni-plugin
BIN=$PWD/target/release
STATE=/run/jalur-demo
NODE=jdemo-node UNDERLAY=jdemo-underlay PODS=(jdemo-pod-a jdemo-pod-b)
CONF='{"cniVersion":"1.1.0","name":"jalur-demo","type":"jalur",
       "ipam":{"type":"jalur-ipam","ranges":[[{"subnet":"10.244.1.0/24"}]],"dataDir":"'$STATE'/ipam"}}'

cni() { # cni COMMAND POD
  echo "$CONF" | ip netns exec "$NODE" env -i PATH="$PATH" CNI_COMMAND="$1" CNI_CONTAINERID="$2" \
    CNI_NETNS="/run/netns/$2" CNI_IFNAME=eth0 CNI_PATH="$BIN" "$BIN/jalur"
}

cleanup() {
  for pod in "${PODS[@]}"; do
    ip netns exec "$NODE" true 2>/dev/null && cni DEL "$pod" >/dev/null 2>&1 || true
    ip netns del "$pod" 2>/dev/null || true
  done
  ip netns del "$NODE" 2>/dev/null || true
  ip netns del "$UNDERLAY" 2>/dev/null || true
  rm -rf "$STATE"
}

if [ $CLEAN_ONLY -eq 1 ]; then
  cleanup
  echo "== demo removed"
  exit 0
fi
if ip netns list | grep -q '^jdemo-'; then
  echo "== removing a demo left running earlier"
  cleanup
fi
[ $KEEP -eq 1 ] || trap cleanup EXIT

echo "== node: $NODE at 192.168.100.2 on underlay $UNDERLAY"
ip netns add "$UNDERLAY"; ip netns add "$NODE"
ip -n "$NODE" link add eth0 type veth peer name node0 netns "$UNDERLAY"
ip -n "$NODE" addr add 192.168.100.2/24 dev eth0
ip -n "$UNDERLAY" addr add 192.168.100.1/24 dev node0
ip -n "$NODE" link set lo up; ip -n "$NODE" link set eth0 up; ip -n "$UNDERLAY" link set node0 up
ip -n "$NODE" route add default via 192.168.100.1

echo "== pods: ADD through jalur"
declare -A IP
for pod in "${PODS[@]}"; do
  ip netns add "$pod"
  ip -n "$pod" link set lo up
  result=$(cni ADD "$pod")
  IP[$pod]=$(echo "$result" | sed -E 's/.*"address":"([^/"]+)\/[0-9]+".*/\1/')
done

echo
printf '%-12s %-14s %-14s %s\n' NODE POD ADDRESS "HOST END"
for pod in "${PODS[@]}"; do
  host_end=$(ip -n "$NODE" route show "${IP[$pod]}" | awk '{print $3}')
  printf '%-12s %-14s %-14s %s\n' "$NODE" "$pod" "${IP[$pod]}" "$host_end"
done

echo
echo "== ping ${PODS[0]} -> ${PODS[1]}"
ip netns exec "${PODS[0]}" ping -c 2 -W 2 "${IP[${PODS[1]}]}" | tail -2
echo
echo "== traceroute -n from ${PODS[0]} to ${PODS[1]} (the node, then the pod)"
ip netns exec "${PODS[0]}" traceroute -n -q 1 -w 2 -m 5 "${IP[${PODS[1]}]}"

if [ $KEEP -eq 1 ]; then
  cat <<EOT

The demo keeps running. Enter a pod:   sudo ip netns exec ${PODS[0]} sh
Look at the node's routes:            sudo ip -n $NODE route
Remove it all:                        sudo ./scripts/demo.sh --clean
EOT
fi
