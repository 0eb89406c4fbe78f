#!/usr/bin/env bash
# Benchmark (not a test): velero-airgap against the pipeline a user would otherwise
# script, on the same images and the same bundle, in the same run.
#
#   scripts/bench.sh            # ~300 MB: Velero, the AWS plugin, 4 plugins
#   BIG=1 scripts/bench.sh      # also one image with a 1 GiB layer, for peak RSS
#   RUNS=5 scripts/bench.sh     # best of 5 instead of 3
#   IMAGES=100 scripts/bench.sh # many images: Velero, the AWS plugin and 100 plugins of
#                               # 8 MiB each (~1 GB); build, verify and unpack into a
#                               # registry with its no-op re-run, which must take at most
#                               # verify + 1 s; no containerd
#
# build:   velero-airgap build -o x.tar
#    vs    skopeo copy of each image (loopback registry) into one OCI layout + tar + sha256sum
# plugin checks: the same build with VELERO_AIRGAP_BENCH_SKIP_PLUGIN_CHECKS=1 (no layer
#          is read, no report, no programs in the SBOM): what the checks cost
# verify:  velero-airgap verify x.tar  vs  openssl dgst -sha256 x.tar
# unpack registry:   velero-airgap unpack x.tar --registry R --insecure, R fresh each run
#    vs    skopeo copy --all of each image from x.tar extracted to an OCI layout (the
#          extraction is not timed) into a fresh registry
# unpack re-run:     the same unpack again on the registry the last run filled,
#                    compared with the first unpack
# unpack containerd: velero-airgap unpack x.tar --containerd SOCK, containerd fresh each run
#    vs    ctr images import --no-unpack x.tar (the bundle is an OCI archive) into a fresh one
#
# Best of RUNS (default 3) each side. Services start before the clock does; every daemon
# this script starts is stopped by its PID (scripts/lab.sh stop), also on failure or ^C.
# Peak RSS is velero-airgap's own (GNU time), the largest over its runs.
set -euo pipefail
cd "$(dirname "$0")/.."

RUNS=${RUNS:-3}
PLUGINS=${IMAGES:-} # IMAGES names the count here; the array of specs is SPECS
if [[ -n $PLUGINS && ! $PLUGINS =~ ^[1-9][0-9]*$ ]]; then
    echo "bench.sh: IMAGES must be a positive number of plugin images" >&2
    exit 2
fi
bash scripts/install-lab.sh >/dev/null
cargo build --release --locked --quiet
BIN=$PWD/target/release/velero-airgap

# Short on purpose: containerd's socket path must fit in 108 bytes.
WORK=$(mktemp -d /tmp/vab.XXXXXX)
SERVICES=$WORK/svc # one directory per daemon, named by its role
BUNDLE=$WORK/x.tar
LAYOUT=$WORK/oci # the bundle extracted, for the skopeo side of unpack

cleanup() {
    local dir
    for dir in "$SERVICES"/*/; do
        [[ -f $dir/pid ]] && bash scripts/lab.sh stop "$dir" >/dev/null 2>&1
    done
    rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# --- services ------------------------------------------------------------------------

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# stop_service ROLE: stops the daemon of ROLE, if any, and deletes its storage, so the
# next one starts empty and the disk does not fill up over the runs.
stop_service() {
    local dir=$SERVICES/$1
    if [[ -f $dir/pid ]]; then
        bash scripts/lab.sh stop "$dir" >/dev/null
    fi
    rm -rf "$dir"
}

# fresh_registry ROLE: replaces ROLE's registry with an empty one; sets REGISTRY.
# A free port can be taken between asking and binding: lab.sh exits 3, try another.
fresh_registry() {
    local dir=$SERVICES/$1 port rc
    stop_service "$1"
    for _ in 1 2 3 4 5; do
        port=$(free_port)
        rc=0
        bash scripts/lab.sh registry "$dir" "$port" >/dev/null || rc=$?
        if ((rc == 0)); then
            REGISTRY=127.0.0.1:$port
            return
        fi
        ((rc == 3)) || exit 1
    done
    echo "bench.sh: no free port for a registry" >&2
    exit 1
}

# fresh_containerd ROLE: replaces ROLE's containerd with an empty one; sets SOCKET.
fresh_containerd() {
    local dir=$SERVICES/$1
    stop_service "$1"
    bash scripts/lab.sh containerd "$dir" >/dev/null
    SOCKET=$dir/containerd.sock
}

# --- measuring -----------------------------------------------------------------------

# clock CMD...: runs CMD (a program or a function), its output kept in $WORK/.out and
# .err; sets LAST_T to the wall time in seconds. A failure stops the benchmark and shows why.
clock() {
    local start end
    start=$(date +%s.%N)
    if ! "$@" >"$WORK/.out" 2>"$WORK/.err"; then
        echo "bench.sh: failed: $*" >&2
        tail -n 20 "$WORK/.err" >&2
        exit 1
    fi
    end=$(date +%s.%N)
    LAST_T=$(awk "BEGIN{printf \"%.3f\", $end - $start}")
}

# ours ARGS...: velero-airgap -q ARGS under clock and GNU time; also sets LAST_RSS (MiB).
# With EXPECT=fail, the run must fail (it is then a success that stops the benchmark).
ours() {
    local expect=()
    [[ ${EXPECT:-} == fail ]] && expect=(fails)
    clock "${expect[@]}" /usr/bin/time -v -o "$WORK/.rusage" "$BIN" -q "$@"
    LAST_RSS=$(awk '/Maximum resident set size/ {printf "%.1f", $NF / 1024}' "$WORK/.rusage")
}
fails() { ! "$@"; }

# best_of KEY STEP: runs the function STEP RUNS times (it does its own untimed setup and
# sets LAST_T, maybe LAST_RSS); keeps the best time in T[KEY], the largest RSS in RSS[KEY].
declare -A T RSS
best_of() {
    local key=$1 step=$2
    T[$key]="" RSS[$key]=""
    for _ in $(seq "$RUNS"); do
        LAST_RSS=""
        "$step"
        if [[ -z ${T[$key]} ]] || awk "BEGIN{exit !($LAST_T < ${T[$key]})}"; then
            T[$key]=$LAST_T
        fi
        if [[ -n $LAST_RSS ]] && { [[ -z ${RSS[$key]} ]] ||
            awk "BEGIN{exit !($LAST_RSS > ${RSS[$key]})}"; }; then
            RSS[$key]=$LAST_RSS
        fi
    done
}

# --- images --------------------------------------------------------------------------

fresh_registry source
SOURCE=$REGISTRY

# name=platforms:layer sizes (KiB); layers are random, gzip level 1 (incompressible).
SPECS=(
    "proxy.replicated.com/library/velero:v1.18.2=amd64,arm64:61440,40960"
    "proxy.replicated.com/library/velero-plugin-for-aws:v1.14.2=amd64,arm64:30720,10240"
)
if [[ -n $PLUGINS ]]; then
    for n in $(seq -f %03g "$PLUGINS"); do
        SPECS+=("registry.example.com/acme/velero-plugin-bench-$n:1.0.0=amd64:8192")
    done
else
    SPECS+=(
        "registry.example.com/acme/velero-plugin-postgres:1.2.0=amd64:40960"
        "registry.example.com/acme/velero-plugin-mysql:1.0.0=amd64:40960"
        "registry.example.com/acme/velero-plugin-mongodb:0.9.1=amd64:40960"
        "registry.example.com/acme/velero-plugin-hooks:2.1.0=amd64:40960"
    )
fi
if [[ -n ${BIG:-} ]]; then
    SPECS+=("registry.example.com/acme/velero-plugin-big:1.0.0=amd64:1G")
fi

echo "==> Seeding $SOURCE with ${#SPECS[@]} images"
python3 scripts/mkimages.py --seed bench "$WORK/seed" "${SPECS[@]}" >"$WORK/made.txt"
refs=()
plugins=""
for spec in "${SPECS[@]}"; do
    name=${spec%%=*}
    path=${name#*/}
    skopeo --insecure-policy copy --quiet --all --dest-tls-verify=false \
        "oci:$WORK/seed:$name" "docker://$SOURCE/$path"
    refs+=("$path")
    case $name in
    registry.example.com/*)
        plugin=${path##*/}
        plugins+="        - name: ${plugin%%:*}
          image: $name
"
        ;;
    esac
done
rm -rf "$WORK/seed"
cat >"$WORK/config.yaml" <<EOF
apiVersion: embeddedcluster.replicated.com/v1beta1
kind: Config
spec:
  extensions:
    velero:
      plugins:
$plugins
EOF

# --- build and verify ----------------------------------------------------------------

ours_build() {
    rm -f "$BUNDLE" "$BUNDLE.sha256"
    ours build -c "$WORK/config.yaml" -o "$BUNDLE" \
        --mirror "proxy.replicated.com=$SOURCE" --mirror "registry.example.com=$SOURCE" \
        --insecure-registry "$SOURCE"
}
# The benchmark switch of build: the plugin checks off, to measure what they add.
ours_build_unchecked() {
    VELERO_AIRGAP_BENCH_SKIP_PLUGIN_CHECKS=1 ours_build
}

skopeo_tar_sha256sum() {
    local path
    for path in "${refs[@]}"; do
        skopeo --insecure-policy copy --quiet --src-tls-verify=false \
            "docker://$SOURCE/$path" "oci:$WORK/peer:$path"
    done
    tar -cf "$WORK/peer.tar" -C "$WORK/peer" .
    sha256sum "$WORK/peer.tar" >"$WORK/peer.tar.sha256"
}
peer_build() {
    rm -rf "$WORK/peer" "$WORK/peer.tar"
    clock skopeo_tar_sha256sum
}

ours_verify() { ours verify "$BUNDLE"; }
peer_verify() { clock openssl dgst -sha256 "$BUNDLE"; }

echo "==> build (best of $RUNS)"
best_of build_unchecked ours_build_unchecked
best_of build ours_build
best_of build_peer peer_build
rm -rf "$WORK/peer" "$WORK/peer.tar"
stop_service source # from here on everything comes from the bundle
echo "==> verify (best of $RUNS)"
best_of verify ours_verify
best_of verify_peer peer_verify

# --- failing early and hostile configs ----------------------------------------------

# A wrong flag fails before the verification pass: the time does not grow with the bundle.
ours_wrong_flag() {
    EXPECT=fail ours unpack "$BUNDLE" --registry 127.0.0.1:9 --insecure \
        --values-out "$WORK/no/such/dir/v.yaml"
}
# The worst configs under the 1 MiB cap: nesting as deep as the bytes allow, and one long
# key (850 kB) given once and used as the explicit key of 10,000 list items through an
# alias (before the bounded parser: 6 GB and a minute of CPU).
python3 - "$WORK" <<'PY'
import sys
work = sys.argv[1]
depth = (1 << 20) // 2 - 16
open(f"{work}/deep.yaml", "w").write("a: " + "[" * depth + "]" * depth + "\n")
open(f"{work}/wide.yaml", "w").write(
    "k: &k " + "k" * 850_000 + "\na:\n" + "  - ? *k\n    : 1\n" * 10_000
)
PY
ours_deep_config() { EXPECT=fail ours validate -c "$WORK/deep.yaml"; }
ours_wide_config() { EXPECT=fail ours validate -c "$WORK/wide.yaml"; }

echo "==> failing early and hostile configs (best of $RUNS)"
best_of wrong_flag ours_wrong_flag
best_of deep_config ours_deep_config
best_of wide_config ours_wide_config

# --- unpack into a registry ----------------------------------------------------------

# The skopeo side reads an OCI layout, which the bundle is once extracted; it pushes
# each image to the same path our unpack uses (the reference without its source host).
mkdir -p "$LAYOUT"
tar -xf "$BUNDLE" -C "$LAYOUT"
mapfile -t layout_refs < <(python3 -c '
import json, sys
for m in json.load(open(sys.argv[1]))["manifests"]:
    print(m["annotations"]["org.opencontainers.image.ref.name"])
' "$LAYOUT/index.json")

skopeo_push_layout() {
    local ref path
    for ref in "${layout_refs[@]}"; do
        path=${ref#*/}
        # A registry takes a tag or a digest, not both: repo:tag@digest goes by its tag.
        [[ $path == *:*@* ]] && path=${path%@*}
        skopeo --insecure-policy copy --quiet --all --dest-tls-verify=false \
            "oci:$LAYOUT:$ref" "docker://$REGISTRY/$path"
    done
}

unpack_to_registry() {
    ours unpack "$BUNDLE" --registry "$REGISTRY" --insecure --values-out "$WORK/v.yaml" "$@"
}
ours_unpack_registry() {
    fresh_registry ours
    unpack_to_registry
}
# The re-run's time means something only if it pushed nothing.
ours_rerun_registry() {
    unpack_to_registry --json
    if ! grep -q '"nothingToDo": true' "$WORK/.out"; then
        echo "bench.sh: the re-run of unpack pushed something:" >&2
        cat "$WORK/.out" >&2
        exit 1
    fi
}
peer_unpack_registry() {
    fresh_registry peer
    clock skopeo_push_layout
}

echo "==> unpack into a registry (best of $RUNS)"
best_of registry ours_unpack_registry
# REGISTRY is still the one the last run filled.
best_of rerun ours_rerun_registry
stop_service ours
best_of registry_peer peer_unpack_registry
stop_service peer
rm -rf "$LAYOUT"

# --- unpack into containerd (not with IMAGES) ----------------------------------------

ours_unpack_containerd() {
    fresh_containerd ours
    ours unpack "$BUNDLE" --containerd "$SOCKET" --values-out "$WORK/v.yaml"
}
peer_unpack_containerd() {
    fresh_containerd peer
    clock ctr -a "$SOCKET" -n k8s.io images import --no-unpack "$BUNDLE"
}

if [[ -z $PLUGINS ]]; then
    echo "==> unpack into containerd (best of $RUNS)"
    best_of containerd ours_unpack_containerd
    stop_service ours
    best_of containerd_peer peer_unpack_containerd
    stop_service peer
fi

# --- report --------------------------------------------------------------------------

# row LABEL KEY PEER_KEY PEER_NAME [TARGET]: one line of the table; the ratio is ours
# over the peer's, checked against TARGET when there is one.
row() {
    local label=$1 ours_t=${T[$2]} peer_t=${T[$3]} peer_name=$4 target=${5:-}
    awk -v label="$label" -v ours="$ours_t" -v peer="$peer_t" -v name="$peer_name" \
        -v rss="${RSS[$2]:--}" -v target="$target" 'BEGIN {
        ratio = ours / peer
        verdict = target == "" ? "" : (ratio <= target ? sprintf("ok (<=%g)", target) \
            : sprintf("MISSED (<=%g)", target))
        printf "%-18s %8.3f %8.3f %6.2fx %9s   %-15s %s\n", label, ours, peer, ratio, rss, verdict, name
    }'
}

echo
printf 'bundle: %.1f MB, best of %s runs\n\n' "$(stat -c %s "$BUNDLE" | awk '{print $1 / 1e6}')" "$RUNS"
printf '%-18s %8s %8s %7s %9s   %-15s %s\n' step "ours s" "peer s" ratio "RSS MiB" target peer
row build build build_peer "skopeo copy + tar + sha256sum" 0.4
row "plugin checks" build build_unchecked "build without the plugin checks" 1.15
row verify verify verify_peer "openssl dgst -sha256"
row "unpack registry" registry registry_peer "skopeo copy from OCI layout" 0.7
row "unpack re-run" rerun registry "the first unpack" 0.2
if [[ -z $PLUGINS ]]; then
    row "unpack containerd" containerd containerd_peer "ctr images import --no-unpack" 0.7
fi
row "unpack wrong flag" wrong_flag verify "verify (what a late check would wait for)"
printf '\n%-36s %8s %9s\n' "validate, hostile config (1 MiB cap)" "s" "RSS MiB"
printf '%-36s %8.3f %9s\n' "  nested as deep as 1 MiB allows" "${T[deep_config]}" "${RSS[deep_config]}"
printf '%-36s %8.3f %9s\n' "  an 850 kB key aliased 10,000 times" "${T[wide_config]}" "${RSS[wide_config]}"
if [[ -n $PLUGINS ]]; then
    # The re-run verifies the bundle too; on top of that it may spend at most a second.
    awk -v rerun="${T[rerun]}" -v verify="${T[verify]}" -v images="${#SPECS[@]}" 'BEGIN {
        verdict = rerun <= verify + 1 ? "ok" : "MISSED"
        printf "\n%d images: unpack re-run %.3f s, verify %.3f s: %s (re-run <= verify + 1 s)\n",
            images, rerun, verify, verdict
    }'
fi
