#!/usr/bin/env bash
# The demo on a fresh machine: installs the lab packages, builds velero-airgap, starts a local
# source registry on 127.0.0.1 holding synthetic stand-ins for the Velero images and two vendor
# plugins, then runs the tool end to end as far as it exists, and prints what it made.
# Everything it starts is stopped by PID on exit; the outputs stay in the printed directory.
#
# usage: scripts/demo.sh
set -euo pipefail
cd "$(dirname "$0")/.."
readonly ROOT=$PWD CONFIG=examples/config.yaml

# Canonical references (what examples/config.yaml and the default Velero release name) and
# the repository path each one gets in the local registry. The tool pulls them through
# --mirror HOST=LOCAL, so the path below the host is the same.
readonly IMAGES=(
    proxy.replicated.com/library/velero:v1.18.2
    proxy.replicated.com/library/velero-plugin-for-aws:v1.14.2
    registry.example.com/acme/velero-plugin-postgres:1.2.0
    registry.example.com/acme/velero-plugin-mongodb:0.9.1
)
# mkimages.py specs, same order: multi-arch indexes for the Velero images, a single-platform
# OCI manifest and (pushed as Docker v2s2) a Docker manifest for the vendor plugins. All share
# a base layer, like real images built FROM one base.
readonly SPECS=(
    'amd64,arm64:2M@base,3M'
    'amd64,arm64:2M@base,1M'
    '2M@base,512'
    '2M@base,256'
)
readonly FORMATS=(oci oci oci docker)

step() { printf '\n==> %s\n' "$*"; }
notice() { printf '    (skipped: %s)\n' "$*"; }

step "Installing the lab packages (skipped when present)"
bash scripts/install-lab.sh

step "Building velero-airgap (release)"
cargo build --release --locked
target_dir=$(cargo metadata --format-version 1 --no-deps |
    python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')
readonly BIN=$target_dir/release/velero-airgap

WORK=$(mktemp -d /tmp/velero-airgap-demo.XXXXXX)
readonly WORK OUT=$WORK/out REGISTRY_DIR=$WORK/registry
mkdir -p "$OUT"
cleanup() {
    if [[ -f $REGISTRY_DIR/pid ]]; then
        bash "$ROOT/scripts/lab.sh" stop "$REGISTRY_DIR" || true
    fi
    rm -rf "$REGISTRY_DIR" "$WORK/layout"
    rmdir "$OUT" "$WORK" 2>/dev/null || true
}
trap cleanup EXIT
trap 'exit 130' INT TERM

step "Starting a local source registry"
for _ in 1 2 3 4 5; do
    port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])')
    rc=0
    bash scripts/lab.sh registry "$REGISTRY_DIR" "$port" >/dev/null || rc=$?
    ((rc == 3)) || break
done
((rc == 0)) || exit "$rc"
readonly LOCAL=127.0.0.1:$port
echo "    registry $LOCAL (PID $(<"$REGISTRY_DIR/pid"))"

step "Making sample images and pushing them"
mkimages_args=()
for i in "${!IMAGES[@]}"; do
    mkimages_args+=("${IMAGES[i]}=${SPECS[i]}")
done
python3 scripts/mkimages.py --seed velero-airgap-demo "$WORK/layout" "${mkimages_args[@]}" \
    >/dev/null
for i in "${!IMAGES[@]}"; do
    image=${IMAGES[i]}
    local_ref=$LOCAL/${image#*/}
    format=(--all)
    [[ ${FORMATS[i]} == docker ]] && format+=(--format v2s2)
    skopeo --insecure-policy copy --quiet "${format[@]}" --dest-tls-verify=false \
        "oci:$WORK/layout:$image" "docker://$local_ref"
    media_type=$(skopeo inspect --raw --tls-verify=false "docker://$local_ref" |
        python3 -c 'import json, sys; print(json.load(sys.stdin)["mediaType"])')
    printf '    %-58s -> %s\n    %-58s    %s\n' "$image" "$local_ref" "" "$media_type"
done

# Runs `velero-airgap SUBCOMMAND ARGS` when this build has that subcommand; otherwise says so.
run_tool() {
    local subcommand=$1
    # clap lists each subcommand on its own indented line of --help.
    if ! "$BIN" --help 2>/dev/null | grep -qE "^ +$subcommand( |$)"; then
        notice "this build of velero-airgap has no '$subcommand' command yet"
        return 0
    fi
    echo "    \$ velero-airgap $*"
    "$BIN" "$@"
}

if [[ ! -f $CONFIG ]]; then
    step "Running velero-airgap"
    notice "$CONFIG does not exist yet"
else
    step "Validating $CONFIG"
    run_tool validate -c "$CONFIG"

    step "Rendering Velero's Helm values (online and airgap)"
    run_tool render -c "$CONFIG" --mode online -o "$OUT/values-online.yaml"
    run_tool render -c "$CONFIG" --mode airgap -o "$OUT/values-airgap.yaml"

    # Pulls every image the values need from the local registry (same paths as the canonical
    # hosts) into one bundle.
    step "Building the bundle"
    run_tool build -c "$CONFIG" \
        --mirror "proxy.replicated.com=$LOCAL" \
        --mirror "registry.example.com=$LOCAL" \
        --insecure-registry "$LOCAL" \
        -o "$OUT/bundle.tar"

    step "Checking the bundle (with the tool, then with coreutils alone)"
    run_tool verify "$OUT/bundle.tar"
    (cd "$OUT" && sha256sum -c bundle.tar.sha256)

    step "What the bundle holds"
    run_tool inspect "$OUT/bundle.tar"

    # On the offline node: here into a k0s images directory (no daemon needed);
    # --registry and --containerd are the other targets.
    step "Unpacking on the offline node (dry run, then for real, then again)"
    run_tool unpack "$OUT/bundle.tar" --dry-run \
        --k0s-images-dir "$OUT/k0s-images" --values-out "$OUT/values-node.yaml"
    run_tool unpack "$OUT/bundle.tar" \
        --k0s-images-dir "$OUT/k0s-images" --values-out "$OUT/values-node.yaml" \
        --audit-log "$OUT/audit.log"
    run_tool unpack "$OUT/bundle.tar" \
        --k0s-images-dir "$OUT/k0s-images" --values-out "$OUT/values-node.yaml" \
        --audit-log "$OUT/audit.log"
fi

step "Made"
if [[ -n $(ls -A "$OUT") ]]; then
    (cd "$OUT" && find . -type f -printf '    %-30P %s bytes\n' | sort)
    echo "    in $OUT"
else
    echo "    nothing yet (see the notices above)"
fi
