# shellcheck shell=bash
# Helpers for scripts/demo.sh (sourced, not run): a small stand-in for libcni that runs a
# conflist plugin by plugin as a container runtime does, bounded waits, and the removal of
# everything the demo makes. Expects BIN, STATE and CNI_PATH to be set by the caller.

# The runtimeConfig the "runtime" offers; a plugin gets the keys it declares as capabilities.
RUNTIME_CONFIG='{"portMappings": []}'

# wait_until SECONDS COMMAND...: runs COMMAND every 0.1 s until it succeeds (0) or SECONDS
# pass (1).
wait_until() {
  local tries=$(($1 * 10)); shift
  while ! "$@"; do
    tries=$((tries - 1))
    [ "$tries" -gt 0 ] || return 1
    sleep 0.1
  done
}

# cni_find TYPE: the plugin binary for TYPE, looked up along CNI_PATH as libcni does.
cni_find() {
  local dir
  local IFS=:
  for dir in $CNI_PATH; do
    [ -x "$dir/$1" ] && { echo "$dir/$1"; return 0; }
  done
  return 1
}

# cni_exec NODE_NS TYPE COMMAND CONTAINER_ID POD_NS CONF: one plugin call, inside the node's
# namespace, with a clean environment and the config on stdin. Prints the plugin's stdout.
cni_exec() {
  local node=$1 type=$2 cmd=$3 cid=$4 pod=$5 conf=$6 bin
  bin=$(cni_find "$type") || { echo "CNI plugin '$type' not found in $CNI_PATH" >&2; return 1; }
  printf '%s' "$conf" | timeout 30 ip netns exec "$node" env -i \
    PATH=/usr/sbin:/usr/bin:/sbin:/bin CNI_COMMAND="$cmd" CNI_CONTAINERID="$cid" \
    CNI_NETNS="/run/netns/$pod" CNI_IFNAME=eth0 CNI_PATH="$CNI_PATH" "$bin"
}

# plugin_conf CONFLIST_FILE INDEX PREV_RESULT: the config libcni hands plugin INDEX: the
# plugin's own object plus the list's name and cniVersion, prevResult (unless "null"), and
# runtimeConfig holding the capabilities it declares. (The agent's conflist has no
# cniVersions, so cniVersion is taken as is.)
plugin_conf() {
  jq -c --argjson i "$2" --argjson prev "$3" --argjson rc "$RUNTIME_CONFIG" '
    .plugins[$i] as $p
    | $p + {name: .name, cniVersion: .cniVersion}
    + (if $prev == null then {} else {prevResult: $prev} end)
    + (if ($p.capabilities | type) == "object"
       then {runtimeConfig: ($rc | with_entries(select(.key as $k | $p.capabilities[$k] == true)))}
       else {} end)' "$1"
}

# conflist_add NODE_NS CONFLIST_FILE CONTAINER_ID POD_NS LOG: ADD through the list in order,
# each plugin given the previous one's result. Prints the final result; on an error prints
# the plugin's CNI error and its log to stderr and fails.
conflist_add() {
  local node=$1 list=$2 cid=$3 pod=$4 log=$5 n i type conf out prev=null
  n=$(jq '.plugins | length' "$list")
  for ((i = 0; i < n; i++)); do
    type=$(jq -r ".plugins[$i].type" "$list")
    conf=$(plugin_conf "$list" "$i" "$prev")
    # The plugins' own logs (stderr) go to LOG, shown only when ADD fails.
    if ! out=$(cni_exec "$node" "$type" ADD "$cid" "$pod" "$conf" 2>>"$log"); then
      echo "ADD of $pod failed in plugin '$type': $(jq -r '"error \(.code): \(.msg)" + (if .details then " (\(.details))" else "" end)' <<<"$out" 2>/dev/null || echo "$out")" >&2
      sed 's/^/  /' "$log" >&2
      return 1
    fi
    prev=$out
  done
  printf '%s\n' "$prev"
}

# conflist_del NODE_NS CONFLIST_FILE CONTAINER_ID POD_NS RESULT_FILE: DEL through the list
# in reverse, each plugin given the ADD's final result when there is one. Best effort.
conflist_del() {
  local node=$1 list=$2 cid=$3 pod=$4 result=null n i type
  # (The result file is empty, or not a result, when the ADD was cut short.)
  [ -s "$5" ] && jq -e .ips "$5" >/dev/null 2>&1 && result=$(jq -c . "$5")
  n=$(jq '.plugins | length' "$list") || return 0
  for ((i = n - 1; i >= 0; i--)); do
    type=$(jq -r ".plugins[$i].type" "$list")
    cni_exec "$node" "$type" DEL "$cid" "$pod" "$(plugin_conf "$list" "$i" "$result")" \
      >/dev/null 2>&1 || true
  done
}

# demo_namespaces: the demo's namespaces (every name starts with jdemo-), pods first.
demo_namespaces() {
  ip netns list | awk '$1 ~ /^jdemo-/ {print $1}' | sort -r
}

# alive PID...: true while any of them runs (a zombie counts as gone).
alive() {
  local pid stat
  for pid in "$@"; do
    stat=$(cat "/proc/$pid/stat" 2>/dev/null) || continue
    stat=${stat##*) }
    [ "${stat%% *}" = Z ] || return 0
  done
  return 1
}

gone() { ! alive "$@"; }

# stop_pids SECONDS PID...: SIGTERM, wait up to SECONDS for them to exit, then SIGKILL.
stop_pids() {
  local secs=$1 pid; shift
  [ $# -gt 0 ] || return 0
  kill -TERM "$@" 2>/dev/null || true
  wait_until "$secs" gone "$@" || kill -KILL "$@" 2>/dev/null || true
  wait_until 2 gone "$@" || true
  for pid in "$@"; do wait "$pid" 2>/dev/null || true; done
}

# remove_demo: removes every trace of a demo, this run's or a leftover one: stops the
# processes inside its namespaces (the agents), DELs each pod through the conflist it was
# made with, deletes the namespaces and the state dir. Safe to run twice.
remove_demo() {
  local ns pids=() pid pod dir
  # The agents: every process inside a demo namespace, and any agent this demo recorded that
  # lost its namespace (checked by its command line, so a reused PID is left alone).
  for ns in $(demo_namespaces); do
    for pid in $(ip netns pids "$ns" 2>/dev/null); do pids+=("$pid"); done
  done
  if [ -f "$STATE/agents.pid" ]; then
    while read -r pid; do
      grep -qs "$STATE" "/proc/$pid/cmdline" && pids+=("$pid")
    done <"$STATE/agents.pid"
  fi
  # shellcheck disable=SC2046
  [ ${#pids[@]} -eq 0 ] || stop_pids 5 $(printf '%s\n' "${pids[@]}" | sort -u)
  # The pods, as a runtime removes them: DEL through the conflist, then the namespace.
  for dir in "$STATE"/pods/*/; do
    [ -f "$dir/node" ] || continue
    pod=$(basename "$dir")
    ip netns exec "$(cat "$dir/node")" true 2>/dev/null &&
      conflist_del "$(cat "$dir/node")" "$dir/conflist" "$pod" "$pod" "$dir/result"
  done
  for ns in $(demo_namespaces); do ip netns del "$ns" 2>/dev/null || true; done
  rm -rf "$STATE"
}
