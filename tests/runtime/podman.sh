#!/usr/bin/env bash
# Runtime integration test: a real container runtime (podman 4.x, CNI backend)
# drives a CNI plugin inside network namespaces this test creates.
#
#   PLUGIN=ptp   tests/runtime/podman.sh   # reference: Debian ptp + host-local
#   PLUGIN=jalur tests/runtime/podman.sh   # jalur + jalur-ipam from $JALUR_BIN_DIR
#   tests/runtime/podman.sh --plugin jalur [--keep]
#
# Environment knobs:
#   PLUGIN          ptp | jalur                          (default ptp)
#   JALUR_BIN_DIR   where jalur, jalur-ipam live         (default: cargo's release dir)
#   REF_CNI_DIR     reference CNI plugins                (default /usr/lib/cni)
#   OCI_RUNTIME     runc | crun                          (default runc if installed)
#   KEEP=1          keep the temp dir (state, logs) for post-mortem; everything
#                   else (containers, netns, cgroups, processes) is still removed
#   STEP_TIMEOUT    seconds allowed per podman command   (default 120)
#
# Isolation (details and podman quirks: tests/runtime/README.md):
#   * a node netns  jlrt-node-<id>  made here; every podman command runs with
#     `nsenter --net=` into it, so the CNI "host" side (veth host end, routes,
#     sysctls) lives in that netns, never in the root netns;
#   * a private mount namespace (held by one `sleep` we start) in which /run
#     and /var/lib are bind-mounted from the temp dir: podman's container netns
#     files (/run/netns), runc state (/run/runc), the libcni result cache
#     (/var/lib/cni) and the image blob-info cache (/var/lib/containers) all
#     land in the temp dir, not on the machine;
#   * private podman storage/tmp/locks (storage.conf + containers.conf under
#     the temp dir, file locks, no events), cgroups under a unique parent.
#
# Exit codes: 0 all PASS, 1 some FAIL, 77 podman not installed.

set -u -o pipefail

# ------------------------------------------------------------------ options
case "${BASH_SOURCE[0]}" in */*) SCRIPT_DIR=${BASH_SOURCE[0]%/*} ;; *) SCRIPT_DIR=. ;; esac
SCRIPT_DIR=$(cd "$SCRIPT_DIR" && pwd)
REPO_DIR=$(cd "$SCRIPT_DIR/../.." && pwd)

PLUGIN=${PLUGIN:-ptp}
if [ -z "${JALUR_BIN_DIR:-}" ]; then
  # shellcheck source=scripts/lib/target-dir.sh
  . "$REPO_DIR/scripts/lib/target-dir.sh"
  JALUR_BIN_DIR=$(release_dir "$REPO_DIR")
fi
REF_CNI_DIR=${REF_CNI_DIR:-/usr/lib/cni}
KEEP=${KEEP:-0}
STEP_TIMEOUT=${STEP_TIMEOUT:-120}

while [ $# -gt 0 ]; do
    case "$1" in
        --plugin) PLUGIN=${2:?--plugin needs a value}; shift 2 ;;
        --plugin=*) PLUGIN=${1#--plugin=}; shift ;;
        --jalur-bin-dir) JALUR_BIN_DIR=${2:?}; shift 2 ;;
        --keep) KEEP=1; shift ;;
        -h|--help) sed -n '2,30p' "$0"; exit 0 ;;
        *) echo "unknown argument: $1" >&2; exit 2 ;;
    esac
done

# ------------------------------------------------------------------ output
FAILS=0
PASSES=0
log()  { printf '[%s] %s\n' "$(date +%H:%M:%S)" "$*"; }
pass() { PASSES=$((PASSES + 1)); printf 'PASS: %s\n' "$*"; }
fail() { FAILS=$((FAILS + 1)); printf 'FAIL: %s\n' "$*"; }
# fatal: record a failure and stop (the EXIT trap cleans up)
die()  { fail "$*"; exit 1; }

# ------------------------------------------------------------------ prerequisites
if ! command -v podman >/dev/null 2>&1; then
    echo "SKIP: podman is not installed (apt-get install -y podman)"
    exit 77
fi
[ "$(id -u)" = 0 ] || { echo "FAIL: must run as root (creates network namespaces)"; exit 1; }

case "$PLUGIN" in
    ptp|jalur) ;;
    *) echo "FAIL: PLUGIN must be ptp or jalur (got '$PLUGIN')"; exit 2 ;;
esac

for tool in ip nsenter unshare timeout findmnt; do
    command -v "$tool" >/dev/null 2>&1 || { echo "FAIL: missing tool: $tool"; exit 1; }
done

BUSYBOX=${BUSYBOX:-}
if [ -z "$BUSYBOX" ]; then
    for b in /bin/busybox /usr/bin/busybox; do [ -x "$b" ] && { BUSYBOX=$b; break; }; done
fi
[ -n "$BUSYBOX" ] || { echo "FAIL: busybox not found (apt-get install -y busybox-static)"; exit 1; }
if ldd "$BUSYBOX" >/dev/null 2>&1; then
    echo "FAIL: $BUSYBOX is dynamically linked; need busybox-static (apt-get install -y busybox-static)"; exit 1
fi

# crun 1.8 refuses cgroup "hybrid" hosts (v1 + controllers on the v2 mount,
# as on this machine) even with --cgroups=disabled; runc works, so prefer it.
if [ -z "${OCI_RUNTIME:-}" ]; then
    if command -v runc >/dev/null 2>&1; then OCI_RUNTIME=runc
    elif command -v crun >/dev/null 2>&1; then OCI_RUNTIME=crun
    else echo "FAIL: no OCI runtime (apt-get install -y runc)"; exit 1
    fi
fi
command -v "$OCI_RUNTIME" >/dev/null 2>&1 || { echo "FAIL: OCI runtime '$OCI_RUNTIME' not found (apt-get install -y runc)"; exit 1; }

for p in host-local loopback; do
    [ -x "$REF_CNI_DIR/$p" ] || { echo "FAIL: $REF_CNI_DIR/$p missing (apt-get install -y containernetworking-plugins)"; exit 1; }
done
if [ "$PLUGIN" = ptp ]; then
    [ -x "$REF_CNI_DIR/ptp" ] || { echo "FAIL: $REF_CNI_DIR/ptp missing"; exit 1; }
else
    for b in jalur jalur-ipam; do
        [ -x "$JALUR_BIN_DIR/$b" ] || {
            echo "FAIL: $JALUR_BIN_DIR/$b not found or not executable (build with: cargo build --release)"; exit 1; }
    done
fi

# ------------------------------------------------------------------ names
ID=$(printf '%x%04x' "$$" "$RANDOM")
NODE_NS=jlrt-node-$ID
NET_NAME=jlrt-$ID
C1=jlrt-c1-$ID
C2=jlrt-c2-$ID
IMAGE=localhost/jlrt-bb-$ID:latest
CGROUP_PARENT=/jlrt-$ID
OCTET=$(( (RANDOM % 200) + 20 ))
SUBNET=10.99.$OCTET.0/24
SUBNET_PREFIX=10.99.$OCTET.

T=""
HOLDER_PID=""
HOLDER_MNT=""
NODE_CREATED=0

# ------------------------------------------------------------------ helpers
root_snapshot() {
    # ifindex:name of every link, IPv4 addresses, IPv4 routes of the root netns
    ip -o link show | awk -F': ' '{print $1": "$2}' | sed 's/@.*//'
    echo "--addr"
    ip -4 -o addr show | awk '{print $2, $4}'
    echo "--route"
    ip -4 route show table all 2>/dev/null | grep -v '^local\|^broadcast' || true
}

# root_unchanged WHEN: the root netns is as it was before the test (links, IPv4 addresses
# and routes).
root_unchanged() {
    local now
    now=$(root_snapshot)
    if [ "$now" = "$ROOT_BEFORE" ]; then
        pass "root netns unchanged $1 (links/IPv4 addrs/routes)"
    else
        fail "root netns changed $1:"; diff <(echo "$ROOT_BEFORE") <(echo "$now") | sed 's/^/  /'
    fi
}

node() { ip netns exec "$NODE_NS" "$@"; }

node_links() { node ip -o link show | awk -F': ' '{print $2}' | sed 's/@.*//' | sort; }

# podman, inside the node netns and our private mount namespace, bounded.
P() {
    timeout -k 10 "$STEP_TIMEOUT" \
        nsenter -t "$HOLDER_PID" -m --net="/run/netns/$NODE_NS" -- \
        podman "$@"
}

# pids (other than the holder) living in our private mount namespace
ns_pids() {
    [ -n "$HOLDER_MNT" ] || return 0
    local d pid
    for d in /proc/[0-9]*; do
        pid=${d#/proc/}
        [ "$pid" = "$HOLDER_PID" ] && continue
        [ "$(readlink "$d/ns/mnt" 2>/dev/null)" = "$HOLDER_MNT" ] && echo "$pid"
    done
}

json_alloc_count() { # file -> number of entries in .allocations, or "ERR"
    local f=$1
    if command -v jq >/dev/null 2>&1; then
        jq -e '.allocations | length' "$f" 2>/dev/null || echo ERR
    elif command -v python3 >/dev/null 2>&1; then
        python3 -c 'import json,sys; print(len(json.load(open(sys.argv[1]))["allocations"]))' "$f" 2>/dev/null || echo ERR
    else
        echo ERR
    fi
}

ipam_allocations() { # -> list of allocation entries (one per line) in the IPAM store
    local dir=$T/ipam/$NET_NAME
    if [ "$PLUGIN" = ptp ]; then
        [ -d "$dir" ] || return 0
        ls -1 "$dir" | grep -v -e '^last_reserved_ip\.' -e '^lock$' || true
    else
        local f=$dir/allocations.json
        [ -f "$f" ] || return 0
        if command -v jq >/dev/null 2>&1; then
            jq -c '.allocations[]' "$f"
        else
            python3 -c 'import json,sys
for a in json.load(open(sys.argv[1]))["allocations"]: print(json.dumps(a))' "$f"
        fi
    fi
}

diagnostics() {
    echo "----- diagnostics -----"
    echo "# node netns $NODE_NS links/addrs/routes"
    node ip -o link show 2>&1 | sed 's/^/  /'
    node ip -o addr show 2>&1 | sed 's/^/  /'
    node ip route show 2>&1 | sed 's/^/  /'
    if [ -n "$HOLDER_PID" ]; then
        echo "# podman ps -a"
        P ps -a 2>&1 | sed 's/^/  /'
    fi
    echo "# IPAM dir"
    ls -la "$T/ipam/$NET_NAME" 2>&1 | sed 's/^/  /'
    [ -f "$T/ipam/$NET_NAME/allocations.json" ] && sed 's/^/  /' "$T/ipam/$NET_NAME/allocations.json"
    echo "-----------------------"
}

# ------------------------------------------------------------------ cleanup
cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    set +e
    log "cleanup (run $ID)"

    if [ -n "$HOLDER_PID" ] && kill -0 "$HOLDER_PID" 2>/dev/null; then
        # every container in this private storage is ours
        STEP_TIMEOUT=60 P rm -a -f -t 0 >/dev/null 2>&1
        # any process left in our mount namespace was started by this test
        local i pids
        for i in $(seq 1 20); do
            pids=$(ns_pids)
            [ -z "$pids" ] && break
            [ "$i" = 10 ] && kill -TERM $pids 2>/dev/null
            [ "$i" -ge 15 ] && kill -KILL $pids 2>/dev/null
            sleep 0.5
        done
        [ -n "$(ns_pids)" ] && echo "WARN: processes still in private mount ns: $(ns_pids)"
        kill "$HOLDER_PID" 2>/dev/null
        for i in $(seq 1 20); do kill -0 "$HOLDER_PID" 2>/dev/null || break; sleep 0.25; done
        kill -KILL "$HOLDER_PID" 2>/dev/null
        wait "$HOLDER_PID" 2>/dev/null
    fi

    # cgroups under our unique parent (depth-first; only empty dirs can go)
    local c d
    for c in /sys/fs/cgroup/*/; do
        [ -d "${c}${CGROUP_PARENT#/}" ] || continue
        for i in $(seq 1 10); do
            find "${c}${CGROUP_PARENT#/}" -depth -type d -exec rmdir {} \; 2>/dev/null
            [ -d "${c}${CGROUP_PARENT#/}" ] || break
            sleep 0.5
        done
        [ -d "${c}${CGROUP_PARENT#/}" ] && echo "WARN: could not remove cgroup ${c}${CGROUP_PARENT#/}"
    done

    if [ "$NODE_CREATED" = 1 ]; then
        ip netns del "$NODE_NS" 2>/dev/null || echo "WARN: could not delete netns $NODE_NS"
    fi

    if [ -n "$T" ] && [ -d "$T" ]; then
        # nothing should be mounted under $T from here (mounts were private), but be safe
        findmnt -rn -o TARGET | grep -F "$T" | sort -r | while read -r m; do umount -l "$m"; done
        if [ "$KEEP" = 1 ]; then
            echo "KEEP=1: state left in $T"
        else
            rm -rf --one-file-system "$T"
        fi
    fi

    if [ "$rc" = 0 ] && [ "$FAILS" -gt 0 ]; then rc=1; fi
    echo "== $PASSES passed, $FAILS failed (plugin=$PLUGIN, runtime=$OCI_RUNTIME, run=$ID) =="
    if [ "$rc" = 0 ]; then echo "RESULT: PASS"; else echo "RESULT: FAIL"; fi
    exit "$rc"
}
trap cleanup EXIT
trap 'echo "interrupted"; exit 130' INT TERM

# ------------------------------------------------------------------ setup
log "podman runtime test: plugin=$PLUGIN runtime=$OCI_RUNTIME run=$ID subnet=$SUBNET"
log "$(podman --version), $($OCI_RUNTIME --version | head -1)"

ROOT_BEFORE=$(root_snapshot)

T=$(mktemp -d "/tmp/jlrt-$ID.XXXXXX") || die "mktemp"
mkdir -p "$T"/{cni-bin,net.d,ipam,storage/root,storage/runroot,podman-tmp,vartmp,rootfs/bin,mnt/run,mnt/varlib,mnt/run/netns} \
    || die "creating temp dirs"

# -- CNI plugin dir: reference plugins + (copied) jalur binaries
for p in "$REF_CNI_DIR"/*; do ln -s "$p" "$T/cni-bin/$(basename "$p")"; done
if [ "$PLUGIN" = jalur ]; then
    # copy, so a concurrent cargo build cannot swap the binary mid-test
    for b in jalur jalur-ipam; do
        rm -f "$T/cni-bin/$b"; cp "$JALUR_BIN_DIR/$b" "$T/cni-bin/$b" || die "copy $b"
    done
    PLUGIN_JSON='{"type":"jalur","ipam":{"type":"jalur-ipam","ranges":[[{"subnet":"'$SUBNET'"}]],"dataDir":"'$T/ipam'"}}'
else
    PLUGIN_JSON='{"type":"ptp","ipMasq":false,"ipam":{"type":"host-local","ranges":[[{"subnet":"'$SUBNET'"}]],"dataDir":"'$T/ipam'"}}'
fi
CONFLIST=$T/net.d/$NET_NAME.conflist
printf '{"cniVersion":"1.0.0","name":"%s","plugins":[%s]}\n' "$NET_NAME" "$PLUGIN_JSON" > "$CONFLIST"
log "conflist: $(cat "$CONFLIST")"

# -- podman configuration (all state under $T)
cat > "$T/containers.conf" <<EOF
[containers]
# root here lacks CAP_SYS_RESOURCE: never ask for more than the hard limits
default_ulimits = ["nofile=1024:1024", "nproc=4096:4096"]
log_driver = "k8s-file"

[network]
network_backend = "cni"
cni_plugin_dirs = ["$T/cni-bin"]
network_config_dir = "$T/net.d"
default_network = "$NET_NAME"

[engine]
cgroup_manager = "cgroupfs"
events_logger = "none"
lock_type = "file"
tmp_dir = "$T/podman-tmp"
image_copy_tmp_dir = "$T/vartmp"
runtime = "$OCI_RUNTIME"
EOF
cat > "$T/storage.conf" <<EOF
[storage]
driver = "vfs"
graphroot = "$T/storage/root"
runroot = "$T/storage/runroot"
EOF
export CONTAINERS_CONF=$T/containers.conf
export CONTAINERS_STORAGE_CONF=$T/storage.conf
export TMPDIR=$T/vartmp

# -- node network namespace
ip netns add "$NODE_NS" || die "ip netns add $NODE_NS"
NODE_CREATED=1
node ip link set lo up || die "lo up in $NODE_NS"
node sysctl -q -w net.ipv4.ip_forward=1 || die "ip_forward in $NODE_NS"
NODE_LINKS_BEFORE=$(node_links)
pass "node netns $NODE_NS created (links: $(echo $NODE_LINKS_BEFORE))"

# -- private mount namespace: /run and /var/lib come from $T
unshare --mount --propagation private -- sleep 3600 </dev/null >/dev/null 2>&1 &
HOLDER_PID=$!
MY_MNT=$(readlink /proc/self/ns/mnt)
for i in $(seq 1 50); do
    m=$(readlink "/proc/$HOLDER_PID/ns/mnt" 2>/dev/null) || break
    [ "$m" != "$MY_MNT" ] && { HOLDER_MNT=$m; break; }
    sleep 0.1
done
[ -n "$HOLDER_MNT" ] || die "private mount namespace holder did not start"
nsenter -t "$HOLDER_PID" -m -- sh -c \
    "mount -n --bind '$T/mnt/run' /run && mount -n --bind '$T/mnt/varlib' /var/lib" \
    || die "bind mounts in private mount ns"
pass "private mount ns (holder pid $HOLDER_PID): /run, /var/lib -> $T/mnt"

# -- image: busybox-static rootfs, imported offline
cp "$BUSYBOX" "$T/rootfs/bin/busybox" || die "copy busybox"
for a in sh ash ping ip ifconfig route sleep nc cat ls ps echo true false; do
    ln -s busybox "$T/rootfs/bin/$a"
done
mkdir -p "$T/rootfs"/{etc,tmp,proc,sys,dev,run}
echo 'root:x:0:0:root:/:/bin/sh' > "$T/rootfs/etc/passwd"
echo 'root:x:0:' > "$T/rootfs/etc/group"
tar -C "$T/rootfs" -cf "$T/rootfs.tar" . || die "tar rootfs"
P import -q "$T/rootfs.tar" "$IMAGE" >/dev/null || die "podman import"
pass "image $IMAGE imported from busybox-static rootfs"

P network ls --format '{{.Name}}' 2>/dev/null | grep -qx "$NET_NAME" \
    || die "podman does not see network $NET_NAME"
pass "podman sees CNI network $NET_NAME"

# ------------------------------------------------------------------ containers up
for c in "$C1" "$C2"; do
    if out=$(P run -d --pull=never --name "$c" --network "$NET_NAME" \
            --cgroup-parent="$CGROUP_PARENT" "$IMAGE" sleep 600 2>&1); then
        pass "container $c started"
    else
        echo "$out" | sed 's/^/  /'
        diagnostics
        die "podman run $c"
    fi
done

declare -A IPS
for c in "$C1" "$C2"; do
    ip_insp=$(P inspect -f "{{(index .NetworkSettings.Networks \"$NET_NAME\").IPAddress}}" "$c" 2>/dev/null)
    ip_in=$(P exec "$c" ip -4 -o addr show dev eth0 2>/dev/null | awk '{print $4}' | head -1)
    IPS[$c]=${ip_in%/*}
    if [ -n "$ip_in" ] && [ "${ip_in%/*}" = "$ip_insp" ] && [ "${ip_insp#"$SUBNET_PREFIX"}" != "$ip_insp" ]; then
        pass "$c eth0 has $ip_in (podman inspect: $ip_insp), inside $SUBNET"
    else
        fail "$c address: inside='$ip_in' inspect='$ip_insp' (want one address in $SUBNET)"
    fi
done
IP1=${IPS[$C1]}
IP2=${IPS[$C2]}
[ -n "$IP1" ] && [ -n "$IP2" ] && [ "$IP1" != "$IP2" ] || { diagnostics; die "containers need two distinct addresses (got '$IP1' '$IP2')"; }

# plugin-specific data plane shape
for c in "$C1" "$C2"; do
    ipc=${IPS[$c]}
    route_line=$(node ip -4 route show "$ipc/32" 2>/dev/null | head -1)
    host_dev=$(echo "$route_line" | sed -n 's/.* dev \([^ ]*\).*/\1/p')
    if [ "$PLUGIN" = jalur ]; then
        addr=$(P exec "$c" ip -4 -o addr show dev eth0 | awk '{print $4}' | head -1)
        [ "$addr" = "$ipc/32" ] && pass "$c eth0 address is /32 ($addr)" || fail "$c eth0 address '$addr' is not $ipc/32"
        defr=$(P exec "$c" ip -4 route show default 2>/dev/null)
        if echo "$defr" | grep -q '^default via 169\.254\.1\.1 dev eth0'; then
            pass "$c default route: $defr"
            echo "$defr" | grep -q onlink || echo "  note: 'onlink' flag not shown for $c default route"
        else
            fail "$c default route '$defr' (want default via 169.254.1.1 dev eth0 onlink)"
        fi
        case "$host_dev" in
            jl*) pass "node netns has /32 route to $ipc via host veth $host_dev" ;;
            *)   fail "node netns route to $ipc: '$route_line' (want '$ipc dev jl<hash>')" ;;
        esac
    else
        if [ -n "$host_dev" ] && node ip -o link show dev "$host_dev" >/dev/null 2>&1; then
            pass "node netns has host route to $ipc via $host_dev"
        else
            fail "node netns has no host route to $ipc ('$route_line')"
        fi
    fi
done

NEW_NODE_LINKS=$(comm -13 <(echo "$NODE_LINKS_BEFORE") <(node_links))
n_new=$(echo "$NEW_NODE_LINKS" | grep -c . || true)
[ "$n_new" = 2 ] && pass "host veth ends are in the node netns: $(echo $NEW_NODE_LINKS)" \
                 || fail "expected 2 new links in node netns, got $n_new: $(echo $NEW_NODE_LINKS)"

root_unchanged "while containers run"

mapfile -t ALLOCS < <(ipam_allocations)
if [ "${#ALLOCS[@]}" = 2 ]; then
    pass "IPAM store holds 2 allocations while running: ${ALLOCS[*]}"
else
    fail "IPAM store holds ${#ALLOCS[@]} allocations while running (want 2): ${ALLOCS[*]:-}"
fi

SANDBOXES=()
for c in "$C1" "$C2"; do
    SANDBOXES+=("$(P inspect -f '{{.NetworkSettings.SandboxKey}}' "$c" 2>/dev/null)")
done

# ------------------------------------------------------------------ traffic
if out=$(P exec "$C1" ping -c 3 -W 2 -w 15 "$IP2" 2>&1); then
    pass "$C1 ($IP1) -> $C2 ($IP2): $(echo "$out" | grep 'packets transmitted')"
else
    echo "$out" | sed 's/^/  /'; diagnostics
    fail "$C1 ($IP1) cannot ping $C2 ($IP2)"
fi
if out=$(P exec "$C2" ping -c 3 -W 2 -w 15 "$IP1" 2>&1); then
    pass "$C2 ($IP2) -> $C1 ($IP1): $(echo "$out" | grep 'packets transmitted')"
else
    echo "$out" | sed 's/^/  /'
    fail "$C2 ($IP2) cannot ping $C1 ($IP1)"
fi

# ------------------------------------------------------------------ teardown
if out=$(P rm -f -t 0 "$C1" "$C2" 2>&1); then
    pass "podman rm -f $C1 $C2"
    # podman 4.3 exits 0 even when CNI DEL fails: show what it logged
    echo "$out" | grep -v -x -e "$C1" -e "$C2" | sed 's/^/  podman: /'
else
    echo "$out" | sed 's/^/  /'
    fail "podman rm -f $C1 $C2"
fi

left=$(P ps -a -q 2>/dev/null)
[ -z "$left" ] && pass "no containers left" || fail "containers left: $left"

# conmon exits asynchronously after the container dies: bounded wait
for i in $(seq 1 40); do [ -z "$(ns_pids)" ] && break; sleep 0.25; done
pids=$(ns_pids)
[ -z "$pids" ] && pass "no container/conmon processes left" \
               || fail "processes left in our mount ns: $(ps -o pid=,args= -p $(echo $pids | tr ' ' ,) 2>/dev/null)"

mapfile -t ALLOCS < <(ipam_allocations)
if [ "${#ALLOCS[@]}" = 0 ]; then
    if [ "$PLUGIN" = jalur ]; then
        n=$(json_alloc_count "$T/ipam/$NET_NAME/allocations.json")
        [ "$n" = 0 ] && pass "jalur-ipam allocations.json: allocations is empty" \
                     || fail "jalur-ipam allocations.json unreadable/missing (count=$n)"
    else
        pass "host-local store empty: $(ls "$T/ipam/$NET_NAME" | tr '\n' ' ')"
    fi
else
    fail "IPAM allocations leaked: ${ALLOCS[*]}"
fi

NODE_LINKS_AFTER=$(node_links)
[ "$NODE_LINKS_AFTER" = "$NODE_LINKS_BEFORE" ] && pass "no links left in node netns ($(echo $NODE_LINKS_AFTER))" \
    || fail "links left in node netns: $(comm -13 <(echo "$NODE_LINKS_BEFORE") <(echo "$NODE_LINKS_AFTER") | tr '\n' ' ')"

stale_routes=$(node ip -4 route show | grep -E "^($IP1|$IP2)( |/)" || true)
[ -z "$stale_routes" ] && pass "no routes to pod addresses left in node netns" \
                        || fail "routes left in node netns: $stale_routes"

# container netns files podman made (they live in our private /run => $T/mnt/run/netns)
left_ns=$(ls -A "$T/mnt/run/netns" 2>/dev/null | tr "\n" " ")
[ -z "$left_ns" ] && pass "container netns released (${SANDBOXES[*]})" \
                  || fail "container netns left: $left_ns"

# libcni deletes its cached result only when DEL succeeded
left_cache=$(ls -A "$T/mnt/varlib/cni/results" 2>/dev/null | tr "\n" " ")
[ -z "$left_cache" ] && pass "libcni result cache empty (CNI DEL completed)" \
                     || fail "libcni cache entries left (DEL failed?): $left_cache"

root_unchanged "after test"

[ "$FAILS" = 0 ] || exit 1
exit 0
