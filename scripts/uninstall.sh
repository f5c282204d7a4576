#!/usr/bin/env bash
# Removes what scripts/install.sh installed: the plugins, and with an installed agent its
# unit and binary, after stopping it and running `jalur-agent uninstall` (routes, the
# jalur.vxlan device, the nftables table `inet jalur`, the conflist, the IPAM store). Other
# files in those dirs stay. Takes install.sh's options (--prefix, --cni-bin-dir, ...).
#
#   sudo ./scripts/uninstall.sh
#   ./scripts/uninstall.sh --prefix /tmp/root     # a test prefix: nothing outside it is touched
exec "$(dirname "$0")/install.sh" --uninstall "$@"
