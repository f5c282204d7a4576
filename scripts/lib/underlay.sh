# shellcheck shell=bash
# The underlay of the demo and of the real test cluster (sourced): L2 subnets, each a bridge
# in a namespace of its own, joined by a router namespace, and hosts on them. Every name is
# the caller's, so each keeps its own namespaces.

# underlay_router NS: the router namespace, forwarding IPv4.
underlay_router() {
  ip netns add "$1"
  ip -n "$1" link set lo up
  ip netns exec "$1" sysctl -qw net.ipv4.ip_forward=1
}

# underlay_subnet BRIDGE_NS ROUTER_NS LEG ROUTER_CIDR: a subnet (a bridge in BRIDGE_NS) and
# the router's leg LEG on it, with the address ROUTER_CIDR (e.g. 192.168.10.1/24).
underlay_subnet() {
  local br=$1 rt=$2 leg=$3
  ip netns add "$br"
  ip -n "$br" link add br0 type bridge
  ip -n "$br" link set br0 up
  ip -n "$br" link add rt type veth peer name "$leg" netns "$rt"
  ip -n "$br" link set rt master br0 up
  ip -n "$rt" addr add "$4" dev "$leg"
  ip -n "$rt" link set "$leg" up
}

# underlay_host NS BRIDGE_NS PORT CIDR GATEWAY: a host namespace whose eth0 (address CIDR,
# e.g. 192.168.10.2/24) is port PORT of the bridge in BRIDGE_NS, default route via GATEWAY.
underlay_host() {
  local ns=$1 br=$2 port=$3
  ip netns add "$ns"
  ip -n "$ns" link set lo up
  ip -n "$ns" link add eth0 type veth peer name "$port" netns "$br"
  ip -n "$br" link set "$port" master br0 up
  ip -n "$ns" addr add "$4" dev eth0
  ip -n "$ns" link set eth0 up
  ip -n "$ns" route add default via "$5"
}
