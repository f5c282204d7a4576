# shellcheck shell=bash
# oci_archive REF OUT_TAR ENTRYPOINT_JSON CMD_JSON LAYER_TAR...: packs layers (tars of root
# file systems, owned by root, bottom first) into an OCI image archive that
# `ctr images import` loads under the exact name REF (the full reference, e.g.
# registry.k8s.io/pause:3.10.1). ENTRYPOINT_JSON and CMD_JSON may be null. No registry and no image builder:
# the layout (oci-layout, index.json, the manifest, the config and the layers as blobs) is
# written by hand, as the OCI image spec describes it.
oci_archive() {
  local ref=$1 out=$2 entrypoint=$3 cmd=$4 dir layer sha diff_ids=() layers=()
  local config config_sha manifest manifest_sha
  shift 4
  dir=$(mktemp -d)
  mkdir -p "$dir/blobs/sha256"
  for layer in "$@"; do
    sha=$(sha256sum "$layer" | cut -d' ' -f1)
    cp "$layer" "$dir/blobs/sha256/$sha"
    diff_ids+=("\"sha256:$sha\"")
    layers+=("{\"mediaType\":\"application/vnd.oci.image.layer.v1.tar\",\"digest\":\"sha256:$sha\",\"size\":$(stat -c %s "$layer")}")
  done
  config=$(jq -cn --argjson diffs "[$(IFS=,; echo "${diff_ids[*]}")]" --argjson ep "$entrypoint" \
    --argjson cmd "$cmd" '
    {architecture: "amd64", os: "linux",
     config: ({Env: ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"]}
              + (if $ep == null then {} else {Entrypoint: $ep} end)
              + (if $cmd == null then {} else {Cmd: $cmd} end)),
     rootfs: {type: "layers", diff_ids: $diffs},
     history: [$diffs[] | {created_by: "jalur scripts/lib/oci-image.sh"}]}')
  config_sha=$(printf '%s' "$config" | sha256sum | cut -d' ' -f1)
  printf '%s' "$config" >"$dir/blobs/sha256/$config_sha"
  manifest=$(jq -cn --arg c "sha256:$config_sha" --argjson cs "${#config}" \
    --argjson layers "[$(IFS=,; echo "${layers[*]}")]" '
    {schemaVersion: 2, mediaType: "application/vnd.oci.image.manifest.v1+json",
     config: {mediaType: "application/vnd.oci.image.config.v1+json", digest: $c, size: $cs},
     layers: $layers}')
  manifest_sha=$(printf '%s' "$manifest" | sha256sum | cut -d' ' -f1)
  printf '%s' "$manifest" >"$dir/blobs/sha256/$manifest_sha"
  jq -cn --arg m "sha256:$manifest_sha" --argjson ms "${#manifest}" --arg ref "$ref" '
    {schemaVersion: 2, mediaType: "application/vnd.oci.image.index.v1+json",
     manifests: [{mediaType: "application/vnd.oci.image.manifest.v1+json", digest: $m,
                  size: $ms, platform: {architecture: "amd64", os: "linux"},
                  annotations: {"org.opencontainers.image.ref.name": $ref,
                                "io.containerd.image.name": $ref}}]}' >"$dir/index.json"
  echo '{"imageLayoutVersion":"1.0.0"}' >"$dir/oci-layout"
  tar -C "$dir" -cf "$out.tmp" oci-layout index.json blobs
  mv "$out.tmp" "$out"
  rm -rf "$dir"
}

# rootfs_layer DIR OUT_TAR: DIR's contents as a layer tar, every file owned by root.
rootfs_layer() {
  tar -C "$1" --owner=0 --group=0 --numeric-owner --sort=name -cf "$2" .
}

# copy_with_libs BINARY ROOTFS DEST: copies BINARY to ROOTFS/DEST together with the shared
# libraries it loads (as ldd lists them), so that a dynamically linked binary runs in an
# image that has no libc of its own.
copy_with_libs() {
  local bin=$1 root=$2 dest=$3 lib
  install -D -m 0755 "$bin" "$root$dest"
  for lib in $(ldd "$bin" 2>/dev/null | grep -oE '/[^ ]+'); do
    [ -e "$root$lib" ] || install -D -m 0755 "$(readlink -f "$lib")" "$root$lib"
  done
}
