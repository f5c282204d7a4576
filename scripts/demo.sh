#!/usr/bin/env bash
# The local demo: a simulated cluster of three nodes, each a network namespace running
# jalur-agent (reading the nodes from a NodeList file). node1 and node2 share one L2 subnet;
# node3 sits on another subnet behind a router. Each agent writes its node's CNI config; two
# pods per node are then made from that config exactly as a container runtime would. It
# prints who got which address, how node1 routes to each pod (local, direct or VXLAN), the
# traceroute from a pod on node1 to a pod on each node, and a ping between every pair of pods.
#
#   sudo ./scripts/demo.sh          # build, run, clean up
#   sudo ./scripts/demo.sh --keep   # leave it running and print how to look around
#   sudo ./scripts/demo.sh --clean  # remove a demo left running
#
# Everything lives in namespaces named jdemo-* and in /run/jalur-demo; nothing touches the
# host's own network, and all traffic stays between the demo's namespaces.
#
#   subnet A 192.168.10.0/24 (jdemo-bridge-a)        subnet B 192.168.20.0/24 (jdemo-bridge-b)
#     node1 .2   node2 .3  ---  .1 jdemo-router .1  ---  node3 .4
#   pods: node N owns 10.244.N.0/24
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/lib/demo-lib.sh
source scripts/lib/demo-lib.sh
# shellcheck source=scripts/lib/underlay.sh
source scripts/lib/underlay.sh
# shellcheck source=scripts/lib/target-dir.sh
source scripts/lib/target-dir.sh

MODE=run
case "${1:-}" in
  --keep) MODE=keep ;;
  --clean) MODE=clean ;;
  "") ;;
  *) echo "usage: $0 [--keep|--clean]" >&2; exit 2 ;;
esac
if [ "$(id -u)" -ne 0 ]; then
  echo "scripts/demo.sh needs root (it makes network namespaces): run it with sudo" >&2
  exit 1
fi
missing=()
for tool in ip:iproute2 traceroute:traceroute ping:iputils-ping jq:jq; do
  command -v "${tool%%:*}" >/dev/null || missing+=("${tool#*:}")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "missing tools; install them with:  sudo apt-get install ${missing[*]}" >&2
  exit 1
fi

BIN=$(release_dir "$PWD")   # where cargo puts the binaries, CARGO_TARGET_DIR included
STATE=/run/jalur-demo
CNI_PATH=$BIN:/usr/lib/cni:/opt/cni/bin
NODES=(node1 node2 node3)
NODE_IP=(192.168.10.2 192.168.10.3 192.168.20.4)
GATEWAY=(192.168.10.1 192.168.10.1 192.168.20.1)
BRIDGE=(jdemo-bridge-a jdemo-bridge-a jdemo-bridge-b)
ROUTER=jdemo-router
AGENT_WAIT=30   # seconds for each agent to write its CNI config
ROUTE_WAIT=15   # seconds for every node to have routes to every other node's pods

if [ "$MODE" = clean ]; then
  if [ -z "$(demo_namespaces)" ] && [ ! -e "$STATE" ]; then
    echo "== no demo to remove"
  else
    remove_demo
    echo "== demo removed"
  fi
  exit 0
fi
if [ -n "$(demo_namespaces)" ] || [ -e "$STATE" ]; then
  echo "== removing a demo left from an earlier run"
  remove_demo
fi

# From here on, any exit (success, failure, Ctrl-C, kill) removes the demo, except a
# successful --keep.
FAILED_AT=""
exec 3>&1 4>&2   # the terminal, for on_exit (a signal can land while stdout is redirected)
on_exit() {
  local status=$?
  set +e
  trap '' INT TERM   # let the cleanup finish
  exec 1>&3 2>&4
  if [ "$MODE" = keep ] && [ $status -eq 0 ]; then return; fi
  if [ $status -ne 0 ]; then
    echo
    if [ $status -ge 128 ]; then
      echo "== interrupted"
    else
      echo "== the demo failed${FAILED_AT:+ at $FAILED_AT}"
      for log in "$STATE"/node*/agent.log; do
        [ -s "$log" ] && { echo "-- last lines of $log"; tail -n 15 "$log" | sed 's/\x1b\[[0-9;]*m//g'; }
      done
    fi
  fi
  echo "== cleaning up"
  remove_demo
  [ -z "$(demo_namespaces)" ] && echo "   no jdemo-* namespace left"
}
set -E
trap 'FAILED_AT="line $LINENO: $BASH_COMMAND"' ERR
trap on_exit EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

echo "== building jalur and jalur-agent (release; the first build takes a few minutes)"
if command -v cargo >/dev/null; then
  cargo build -q --release --locked -p jalur-cni-plugin -p jalur-node-agent
elif [ -x "$BIN/jalur" ] && [ -x "$BIN/jalur-agent" ]; then
  echo "   cargo is not on root's PATH: using the binaries already in $BIN"
else
  echo "cargo is not on root's PATH. Build first as yourself, then run the demo:" >&2
  echo "  cargo build --release --locked -p jalur-cni-plugin -p jalur-node-agent && sudo $0 $*" >&2
  exit 1
fi

echo "== cluster: two subnets joined by a router, three nodes"
mkdir -p "$STATE/pods"
underlay_router "$ROUTER"
for side in a b; do
  br=jdemo-bridge-$side net=$([ $side = a ] && echo 10 || echo 20)
  underlay_subnet "$br" "$ROUTER" "leg-$side" "192.168.$net.1/24"
  echo "   subnet 192.168.$net.0/24 (a bridge in $br), router $ROUTER at 192.168.$net.1"
done
for i in 0 1 2; do
  ns=jdemo-${NODES[i]}
  underlay_host "$ns" "${BRIDGE[i]}" "${NODES[i]}" "${NODE_IP[i]}/24" "${GATEWAY[i]}"
  echo "   ${NODES[i]}: namespace $ns, ${NODE_IP[i]}, pods 10.244.$((i + 1)).0/24"
done

# The NodeList the agents read instead of the Kubernetes API (as `kubectl get nodes -o json`
# would print it), written atomically.
for i in 0 1 2; do
  jq -n --arg name "${NODES[i]}" --arg ip "${NODE_IP[i]}" --arg cidr "10.244.$((i + 1)).0/24" \
    '{apiVersion: "v1", kind: "Node", metadata: {name: $name},
      spec: {podCIDR: $cidr, podCIDRs: [$cidr]},
      status: {addresses: [{type: "InternalIP", address: $ip}, {type: "Hostname", address: $name}]}}'
done | jq -s '{apiVersion: "v1", kind: "NodeList", items: .}' >"$STATE/.nodes.json.tmp"
mv "$STATE/.nodes.json.tmp" "$STATE/nodes.json"

echo "== agents: jalur-agent in each node (file mode; logs in $STATE/<node>/agent.log)"
AGENT_PID=()
for i in 0 1 2; do
  node=${NODES[i]} dir=$STATE/${NODES[i]}
  mkdir -p "$dir"
  # setsid: its own session, so the agent outlives the terminal with --keep.
  NO_COLOR=1 setsid ip netns exec "jdemo-$node" "$BIN/jalur-agent" --node-name "$node" \
    --nodes-file "$STATE/nodes.json" --cni-conf-dir "$dir/net.d" --state-dir "$dir/state" \
    --cni-bin-dir /usr/lib/cni --metrics-addr 127.0.0.1:9644 \
    </dev/null >/dev/null 2>"$dir/agent.log" &
  AGENT_PID+=($!)
  echo $! >>"$STATE/agents.pid"
done
agent_ready() { # agent_ready INDEX: node INDEX has its conflist and readiness mark
  [ -f "$STATE/${NODES[$1]}/net.d/10-jalur.conflist" ] && [ -f "$STATE/${NODES[$1]}/state/ready" ]
}
agent_ready_or_gone() { agent_ready "$1" || ! alive "${AGENT_PID[$1]}"; }
for i in 0 1 2; do
  wait_until "$AGENT_WAIT" agent_ready_or_gone "$i" || true
  if ! agent_ready "$i"; then
    alive "${AGENT_PID[i]}" && why="not ready after ${AGENT_WAIT}s" || why="exited"
    FAILED_AT="${NODES[i]}'s agent ($why)"
    exit 1
  fi
  conflist=$STATE/${NODES[i]}/net.d/10-jalur.conflist
  plugins=$(jq -r '"\([.plugins[].type] | join(" + ")), CNI \(.cniVersion)"' "$conflist")
  echo "   ${NODES[i]} is ready: it wrote $conflist ($plugins)"
done
peer_routes_in_place() { # every node has a route (proto 74) to every other node's pod subnet
  local i j
  for i in 0 1 2; do for j in 0 1 2; do
    [ "$i" = "$j" ] && continue
    [ -n "$(ip -n "jdemo-${NODES[i]}" route show "10.244.$((j + 1)).0/24" proto 74 2>/dev/null)" ] || return 1
  done; done
}
wait_until "$ROUTE_WAIT" peer_routes_in_place || { FAILED_AT="routes between nodes missing after ${ROUTE_WAIT}s"; exit 1; }

echo "== pods: two per node, ADD through each node's conflist as a runtime does"
PODS=() POD_NODE=()
declare -A POD_IP
for i in 0 1 2; do
  for letter in a b; do
    pod=jdemo-pod$((i + 1))$letter node=jdemo-${NODES[i]} dir=$STATE/pods/jdemo-pod$((i + 1))$letter
    # Recorded before the ADD, so that a cleanup after an interrupted ADD still DELs it.
    mkdir -p "$dir"
    echo "$node" >"$dir/node"
    cp "$STATE/${NODES[i]}/net.d/10-jalur.conflist" "$dir/conflist"
    ip netns add "$pod"
    ip -n "$pod" link set lo up
    conflist_add "$node" "$dir/conflist" "$pod" "$pod" "$dir/plugins.log" >"$dir/result"
    PODS+=("$pod") POD_NODE+=("$i")
    POD_IP[$pod]=$(jq -r '[.ips[].address | select(contains(":") | not)][0] | split("/")[0]' "$dir/result")
  done
done

route_from_node1() { # how node1's kernel routes to an address: local, direct or vxlan
  local r dev via
  r=$(ip -n jdemo-node1 route get "$1" | head -n 1)
  dev=$(awk '{for (i = 1; i < NF; i++) if ($i == "dev") print $(i + 1)}' <<<"$r")
  via=$(awk '{for (i = 1; i < NF; i++) if ($i == "via") print $(i + 1)}' <<<"$r")
  case $dev in
    jl*) echo "local (veth $dev)" ;;
    jalur.vxlan) echo "vxlan (jalur.vxlan, via tunnel address $via)" ;;
    eth0) echo "direct (via node address $via)" ;;
    *) echo "? ($r)" ;;
  esac
}
echo
printf '%-6s %-13s %-12s %-12s %s\n' NODE "NODE IP" POD "POD IP" "ROUTE TO IT FROM node1"
for k in "${!PODS[@]}"; do
  pod=${PODS[k]} i=${POD_NODE[k]}
  printf '%-6s %-13s %-12s %-12s %s\n' "${NODES[i]}" "${NODE_IP[i]}" "$pod" "${POD_IP[$pod]}" \
    "$(route_from_node1 "${POD_IP[$pod]}")"
done

echo
echo "== node1's routes made by jalur (proto 74): ip -n jdemo-node1 route show proto 74"
ip -n jdemo-node1 route show proto 74 | sed 's/^/   /'

# traceroute from pod1a to a pod on each node; the hops are checked against the design.
SRC=jdemo-pod1a
trace() { # trace DEST_POD WHAT EXPECTED_HOPS...
  local dst=${POD_IP[$1]} what=$2 out hops; shift 2
  echo
  echo "== traceroute -n from $SRC to $what"
  out=$(ip netns exec "$SRC" traceroute -n -q 1 -w 2 -m 6 "$dst" 2>&1) || true
  sed 's/^/   /' <<<"$out"
  hops=$(awk 'NR > 1 {print $2}' <<<"$out" | paste -sd' ')
  if [ "$hops" = "$*" ]; then
    echo "   hops as expected"
  else
    echo "   UNEXPECTED: wanted the hops $*"
    TRACE_FAILED=1
  fi
}
TRACE_FAILED=0
trace jdemo-pod1b "jdemo-pod1b on the same node (node1, then the pod)" \
  "${NODE_IP[0]}" "${POD_IP[jdemo-pod1b]}"
trace jdemo-pod2a "jdemo-pod2a on node2, same subnet: direct (node1, node2, the pod)" \
  "${NODE_IP[0]}" "${NODE_IP[1]}" "${POD_IP[jdemo-pod2a]}"
trace jdemo-pod3a "jdemo-pod3a on node3, behind the router: VXLAN (node1, node3's tunnel address, the pod)" \
  "${NODE_IP[0]}" 10.244.3.0 "${POD_IP[jdemo-pod3a]}"

echo
echo "== ping: every pod to every other pod's own address (1 echo each)"
printf '   %-12s' "from \\ to"
for dst in "${PODS[@]}"; do printf ' %-6s' "${dst#jdemo-}"; done
echo
answered=0 total=0
for src in "${PODS[@]}"; do
  printf '   %-12s' "$src"
  for dst in "${PODS[@]}"; do
    if [ "$src" = "$dst" ]; then printf ' %-6s' -; continue; fi
    total=$((total + 1))
    # In the background and waited for: ping catches Ctrl-C itself, and bash would then
    # not act on it.
    ip netns exec "$src" ping -c 1 -W 2 -q "${POD_IP[$dst]}" >/dev/null 2>&1 &
    if wait $!; then
      printf ' %-6s' ok; answered=$((answered + 1))
    else
      printf ' %-6s' FAIL
    fi
  done
  echo
done
echo "   $answered of $total pairs answered"

if [ "$answered" -ne "$total" ] || [ "$TRACE_FAILED" -ne 0 ]; then
  FAILED_AT="connectivity check (see above)"
  exit 1
fi

if [ "$MODE" = keep ]; then
  cat <<EOT

== the demo keeps running
Enter a pod:                 sudo ip netns exec jdemo-pod1a sh
  (then e.g. ping ${POD_IP[jdemo-pod3b]}, traceroute -n ${POD_IP[jdemo-pod2b]})
See a node's routes:         sudo ip -n jdemo-node1 route
The agents' logs:            $STATE/node{1,2,3}/agent.log
Remove it all:               sudo ./scripts/demo.sh --clean
EOT
fi
