#!/usr/bin/env bash
# Benchmark (not a test): velero-airgap against the pipeline a user would otherwise
# script, on the same images from the same loopback registry, in the same run.
#
#   scripts/bench.sh            # ~300 MB: Velero, the AWS plugin, 4 plugins
#   BIG=1 scripts/bench.sh      # also one image with a 1 GiB layer, for peak RSS
#
# build:  velero-airgap build -o x.tar
#   vs    skopeo copy of each image into one OCI layout + tar + sha256sum
# verify: velero-airgap verify x.tar  vs  openssl dgst -sha256 x.tar
# Best of RUNS (default 3) each side; prints times, ratios and peak RSS.
set -euo pipefail
cd "$(dirname "$0")/.."

RUNS=${RUNS:-3}
bash scripts/install-lab.sh >/dev/null
cargo build --release --locked --quiet
BIN=$PWD/target/release/velero-airgap

WORK=$(mktemp -d /tmp/velero-airgap-bench.XXXXXX)
REGISTRY_DIR=$WORK/registry
cleanup() {
    bash scripts/lab.sh stop "$REGISTRY_DIR" >/dev/null 2>&1 || true
    rm -rf "$WORK"
}
trap cleanup EXIT

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
bash scripts/lab.sh registry "$REGISTRY_DIR" "$port" >/dev/null
LOCAL=127.0.0.1:$port

# name=platforms:layer sizes (KiB); layers are random, gzip level 1 (incompressible).
IMAGES=(
    "proxy.replicated.com/library/velero:v1.18.2=amd64,arm64:61440,40960"
    "proxy.replicated.com/library/velero-plugin-for-aws:v1.14.2=amd64,arm64:30720,10240"
    "registry.example.com/acme/velero-plugin-postgres:1.2.0=amd64:40960"
    "registry.example.com/acme/velero-plugin-mysql:1.0.0=amd64:40960"
    "registry.example.com/acme/velero-plugin-mongodb:0.9.1=amd64:40960"
    "registry.example.com/acme/velero-plugin-hooks:2.1.0=amd64:40960"
)
if [[ -n ${BIG:-} ]]; then
    IMAGES+=("registry.example.com/acme/velero-plugin-big:1.0.0=amd64:1G")
fi

echo "==> Seeding $LOCAL"
python3 scripts/mkimages.py --seed bench "$WORK/layout" "${IMAGES[@]}" >"$WORK/made.txt"
refs=()
plugins=""
for spec in "${IMAGES[@]}"; do
    name=${spec%%=*}
    path=${name#*/}
    skopeo --insecure-policy copy --quiet --all --dest-tls-verify=false \
        "oci:$WORK/layout:$name" "docker://$LOCAL/$path"
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
cat >"$WORK/config.yaml" <<EOF
apiVersion: embeddedcluster.replicated.com/v1beta1
kind: Config
spec:
  extensions:
    velero:
      plugins:
$plugins
EOF

# Runs a command RUNS times; prints the best wall time in seconds.
best_of() {
    local best="" t
    for _ in $(seq "$RUNS"); do
        "$@" >/dev/null 2>&1 || { echo "failed: $*" >&2; exit 1; }
        t=$(cat "$WORK/.t")
        if [[ -z $best ]] || awk "BEGIN{exit !($t < $best)}"; then best=$t; fi
    done
    echo "$best"
}

timed() { # timed CMD...: runs CMD, writes its wall time to $WORK/.t
    local start end
    start=$(date +%s.%N)
    "$@"
    end=$(date +%s.%N)
    awk "BEGIN{printf \"%.3f\", $end - $start}" >"$WORK/.t"
}

ours_build() {
    rm -f "$WORK/x.tar" "$WORK/x.tar.sha256"
    timed "$BIN" build -q -c "$WORK/config.yaml" -o "$WORK/x.tar" \
        --mirror "proxy.replicated.com=$LOCAL" --mirror "registry.example.com=$LOCAL" \
        --insecure-registry "$LOCAL"
}

peer_pipeline() {
    rm -rf "$WORK/peer" "$WORK/peer.tar"
    local start end
    start=$(date +%s.%N)
    for path in "${refs[@]}"; do
        skopeo --insecure-policy copy --quiet --src-tls-verify=false \
            "docker://$LOCAL/$path" "oci:$WORK/peer:$path"
    done
    tar -cf "$WORK/peer.tar" -C "$WORK/peer" .
    sha256sum "$WORK/peer.tar" >"$WORK/peer.tar.sha256"
    end=$(date +%s.%N)
    awk "BEGIN{printf \"%.3f\", $end - $start}" >"$WORK/.t"
}

ours_verify() { timed "$BIN" verify -q "$WORK/x.tar"; }
openssl_dgst() { timed openssl dgst -sha256 "$WORK/x.tar"; }

peak_rss_mib() { # peak RSS of one run of CMD, in MiB
    /usr/bin/time -v "$@" 2>&1 >/dev/null | awk '/Maximum resident set size/ {printf "%.1f", $NF/1024}'
}

echo "==> build (best of $RUNS)"
ours=$(best_of ours_build)
peer=$(best_of peer_pipeline)
size=$(stat -c %s "$WORK/x.tar")
rm -f "$WORK/x.tar"
rss=$(peak_rss_mib "$BIN" build -q -c "$WORK/config.yaml" -o "$WORK/x.tar" \
    --mirror "proxy.replicated.com=$LOCAL" --mirror "registry.example.com=$LOCAL" \
    --insecure-registry "$LOCAL")
echo "==> verify (best of $RUNS)"
verify=$(best_of ours_verify)
dgst=$(best_of openssl_dgst)
verify_rss=$(peak_rss_mib "$BIN" verify -q "$WORK/x.tar")

awk -v ours="$ours" -v peer="$peer" -v size="$size" -v rss="$rss" \
    -v verify="$verify" -v dgst="$dgst" -v vrss="$verify_rss" 'BEGIN {
    printf "\nbundle: %.1f MB\n", size / 1e6
    printf "build:  velero-airgap %.3f s   skopeo+tar+sha256sum %.3f s   ratio %.2fx   peak RSS %s MiB\n", ours, peer, ours / peer, rss
    printf "verify: velero-airgap %.3f s   openssl dgst -sha256 %.3f s   ratio %.2fx   peak RSS %s MiB\n", verify, dgst, verify / dgst, vrss
}'
