# shellcheck shell=bash
# Where cargo puts the workspace's release binaries (sourced, not run). Cargo honours
# CARGO_TARGET_DIR, `build.target-dir` in a .cargo/config.toml and more; `cargo metadata`
# knows the answer, so scripts ask it instead of assuming <repo>/target.

# release_dir [REPO]: prints <target dir>/release for the workspace at REPO (default: the
# current directory). Without cargo (root's PATH under sudo often lacks it), falls back to
# $CARGO_TARGET_DIR, then to REPO/target.
release_dir() {
  local repo=${1:-$PWD} dir=""
  if command -v cargo >/dev/null && command -v jq >/dev/null; then
    dir=$(cargo metadata --format-version 1 --no-deps --manifest-path "$repo/Cargo.toml" \
          | jq -r .target_directory) || dir=""
  fi
  if [ -z "$dir" ]; then
    dir=${CARGO_TARGET_DIR:-$repo/target}
    case "$dir" in /*) ;; *) dir=$repo/$dir ;; esac
  fi
  echo "$dir/release"
}
