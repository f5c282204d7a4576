#!/usr/bin/env bash
# Installs Jalur on this node: the CNI plugins `jalur` and `jalur-ipam` into the CNI bin dir
# and, with --with-agent, `jalur-agent` plus a systemd unit that runs it from a NodeList file
# (or a kubeconfig). Every file is written to a temp file in its own dir and renamed into
# place, so a kubelet never runs a half-written binary. A second run changes nothing.
#
#   sudo ./scripts/install.sh                          # build (release), install the plugins
#   sudo ./scripts/install.sh --bin-dir target/release # prebuilt binaries, no build
#   sudo ./scripts/install.sh --with-agent --node-name node1 --nodes-file /etc/jalur/nodes.yaml
#   sudo ./scripts/install.sh --uninstall              # remove everything (= scripts/uninstall.sh)
#
# Options:
#   --bin-dir DIR        take jalur, jalur-ipam (and jalur-agent) from DIR instead of building
#   --cni-bin-dir DIR    where the plugins go (default: $CNI_BIN_DIR, else /opt/cni/bin)
#   --prefix DIR         install under DIR instead of / (for tests and packaging: nothing
#                        outside DIR is touched, systemctl is never run)
#   --with-agent         also install /usr/local/bin/jalur-agent and
#                        /etc/systemd/system/jalur-agent.service (enabled and started)
#   --node-name NAME     the agent's --node-name (required with --with-agent)
#   --nodes-file FILE    the agent reads the cluster from FILE (a NodeList, JSON or YAML)
#   --kubeconfig FILE    ... or from the Kubernetes API with this kubeconfig
#   --agent-arg ARG      one more argument for the agent (repeatable), e.g.
#                        --agent-arg=--cluster-cidr=10.244.0.0/16
#   --uninstall          remove what this script installs; with the real root as prefix it
#                        first stops the agent and runs `jalur-agent uninstall` (routes, the
#                        jalur.vxlan device, the nftables table, the conflist, the IPAM store)
set -euo pipefail
REPO=$(cd "$(dirname "$0")/.." && pwd)

BIN_DIR=""
CNI_BIN_DIR="${CNI_BIN_DIR:-/opt/cni/bin}"
PREFIX=""
WITH_AGENT=0
NODE_NAME=""
NODES_FILE=""
KUBECONFIG_FILE=""
AGENT_ARGS=()
UNINSTALL=0
# Where the agent keeps its files (fixed: the systemd unit and `uninstall` use the same).
CNI_CONF_DIR=/etc/cni/net.d
STATE_DIR=/var/lib/jalur
AGENT_PATH=/usr/local/bin/jalur-agent
UNIT_PATH=/etc/systemd/system/jalur-agent.service
PLUGINS=(jalur jalur-ipam)

die() { echo "install.sh: $*" >&2; exit 1; }
need_value() { if [ $# -lt 2 ] || [ -z "$2" ]; then die "$1 needs a value"; fi; }

while [ $# -gt 0 ]; do
  case "$1" in
    --bin-dir) need_value "$@"; BIN_DIR=$2; shift 2 ;;
    --bin-dir=*) BIN_DIR=${1#*=}; shift ;;
    --cni-bin-dir) need_value "$@"; CNI_BIN_DIR=$2; shift 2 ;;
    --cni-bin-dir=*) CNI_BIN_DIR=${1#*=}; shift ;;
    --prefix) need_value "$@"; PREFIX=$2; shift 2 ;;
    --prefix=*) PREFIX=${1#*=}; shift ;;
    --with-agent) WITH_AGENT=1; shift ;;
    --node-name) need_value "$@"; NODE_NAME=$2; shift 2 ;;
    --node-name=*) NODE_NAME=${1#*=}; shift ;;
    --nodes-file) need_value "$@"; NODES_FILE=$2; shift 2 ;;
    --nodes-file=*) NODES_FILE=${1#*=}; shift ;;
    --kubeconfig) need_value "$@"; KUBECONFIG_FILE=$2; shift 2 ;;
    --kubeconfig=*) KUBECONFIG_FILE=${1#*=}; shift ;;
    --agent-arg) need_value "$@"; AGENT_ARGS+=("$2"); shift 2 ;;
    --agent-arg=*) AGENT_ARGS+=("${1#*=}"); shift ;;
    --uninstall) UNINSTALL=1; shift ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown option: $1 (see --help)" ;;
  esac
done

case "$CNI_BIN_DIR" in /*) ;; *) die "--cni-bin-dir must be absolute: $CNI_BIN_DIR" ;; esac
if [ -n "$PREFIX" ]; then
  mkdir -p "$PREFIX"
  PREFIX=$(cd "$PREFIX" && pwd)
  [ "$PREFIX" != / ] || PREFIX=""
fi
# With the real root, only root may write there.
if [ -z "$PREFIX" ] && [ "$(id -u)" -ne 0 ]; then
  die "installing into / needs root: run it with sudo (or use --prefix DIR)"
fi
real_root() { [ -z "$PREFIX" ]; }
has_systemctl() { real_root && command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; }

changed=0
note() { echo "  $*"; }
# The temp file being written, removed if the script dies before its rename.
inflight=""
trap '[ -z "$inflight" ] || rm -f "$inflight"' EXIT

# install_file SRC DST: DST gets SRC's content with mode 0755 (temp file in DST's dir, fsync,
# rename). Unchanged when DST already is exactly that.
install_file() {
  local src=$1 dst=$2 mode=${3:-0755} dir tmp
  if [ -f "$dst" ] && [ ! -L "$dst" ] && cmp -s "$src" "$dst" \
     && [ "$(stat -c %a "$dst")" = "${mode#0}" ]; then
    note "unchanged  $dst"
    return
  fi
  dir=$(dirname "$dst")
  mkdir -p "$dir"
  tmp="$dir/.$(basename "$dst").tmp.$$"
  inflight=$tmp
  install -m "$mode" "$src" "$tmp"
  sync "$tmp"
  mv -f "$tmp" "$dst"
  inflight=""
  sync "$dir"
  note "installed  $dst"
  changed=$((changed + 1))
}

remove_file() {
  local path=$1
  if [ -e "$path" ] || [ -L "$path" ]; then
    rm -f "$path"
    note "removed    $path"
    changed=$((changed + 1))
  fi
}

unit_text() {
  local args=("--node-name=$NODE_NAME")
  if [ -n "$NODES_FILE" ]; then args+=("--nodes-file=$NODES_FILE"); fi
  if [ -n "$KUBECONFIG_FILE" ]; then args+=("--kubeconfig=$KUBECONFIG_FILE"); fi
  args+=("--cni-conf-dir=$CNI_CONF_DIR" "--cni-bin-dir=$CNI_BIN_DIR" "--state-dir=$STATE_DIR")
  args+=(${AGENT_ARGS[@]+"${AGENT_ARGS[@]}"})
  cat <<EOF
# Written by jalur's scripts/install.sh; removed by scripts/uninstall.sh.
[Unit]
Description=Jalur node agent (pod network routes, CNI config)
Wants=network-online.target
After=network-online.target

[Service]
ExecStart=$AGENT_PATH ${args[*]}
Restart=always
RestartSec=2
# Routes stay in place when the agent stops; \`jalur-agent uninstall\` removes them.
KillSignal=SIGTERM

[Install]
WantedBy=multi-user.target
EOF
}

if [ "$UNINSTALL" -eq 1 ]; then
  echo "== uninstalling Jalur${PREFIX:+ from $PREFIX}"
  if [ -f "$PREFIX$AGENT_PATH" ] && real_root; then
    if has_systemctl; then
      systemctl disable --now jalur-agent.service >/dev/null 2>&1 || true
    fi
    note "running    $AGENT_PATH uninstall"
    "$AGENT_PATH" uninstall --cni-conf-dir "$CNI_CONF_DIR" --state-dir "$STATE_DIR" \
      --cni-bin-dir "$CNI_BIN_DIR" || die "jalur-agent uninstall failed (see above)"
    changed=$((changed + 1))
  fi
  for p in "${PLUGINS[@]}"; do remove_file "$PREFIX$CNI_BIN_DIR/$p"; done
  had_unit=0
  [ -e "$PREFIX$UNIT_PATH" ] && had_unit=1
  remove_file "$PREFIX$UNIT_PATH"
  remove_file "$PREFIX$AGENT_PATH"
  if [ "$had_unit" -eq 1 ] && has_systemctl; then systemctl daemon-reload; fi
  if [ "$changed" -eq 0 ]; then
    echo "install.sh: nothing to remove"
  else
    echo "install.sh: uninstalled ($changed change(s))"
  fi
  exit 0
fi

if [ "$WITH_AGENT" -eq 1 ]; then
  [ -n "$NODE_NAME" ] || die "--with-agent needs --node-name NAME"
  [ -n "$NODES_FILE" ] || [ -n "$KUBECONFIG_FILE" ] \
    || die "--with-agent needs --nodes-file FILE or --kubeconfig FILE"
fi

if [ -z "$BIN_DIR" ]; then
  echo "== building (release)"
  packages=(-p jalur-cni-plugin)
  [ "$WITH_AGENT" -eq 0 ] || packages+=(-p jalur-node-agent)
  cargo build --release --locked --manifest-path "$REPO/Cargo.toml" "${packages[@]}"
  # shellcheck source=/dev/null  # scripts/lib/target-dir.sh: release_dir
  . "$REPO/scripts/lib/target-dir.sh"
  BIN_DIR=$(release_dir "$REPO")
fi
[ -d "$BIN_DIR" ] || die "--bin-dir $BIN_DIR is not a directory"
wanted=("${PLUGINS[@]}")
[ "$WITH_AGENT" -eq 0 ] || wanted+=(jalur-agent)
for b in "${wanted[@]}"; do
  [ -f "$BIN_DIR/$b" ] || die "$BIN_DIR/$b is missing (build it, or point --bin-dir at it)"
done

echo "== installing Jalur${PREFIX:+ under $PREFIX}"
for p in "${PLUGINS[@]}"; do install_file "$BIN_DIR/$p" "$PREFIX$CNI_BIN_DIR/$p"; done
if [ "$WITH_AGENT" -eq 1 ]; then
  before=$changed
  install_file "$BIN_DIR/jalur-agent" "$PREFIX$AGENT_PATH"
  unit=$(mktemp)
  unit_text >"$unit"
  install_file "$unit" "$PREFIX$UNIT_PATH" 0644
  rm -f "$unit"
  if [ "$changed" -gt "$before" ]; then
    if has_systemctl; then
      systemctl daemon-reload
      systemctl enable jalur-agent.service
      systemctl restart jalur-agent.service
      note "started    jalur-agent.service"
    elif real_root; then
      note "no systemd here: start $AGENT_PATH yourself (see $UNIT_PATH)"
    fi
  fi
fi

if [ "$changed" -eq 0 ]; then
  echo "install.sh: nothing changed (already installed)"
else
  echo "install.sh: $changed file(s) installed"
fi
