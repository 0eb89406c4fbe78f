#!/usr/bin/env bash
# Builds real Velero plugin images for the plugin checks, offline, into an OCI image layout:
# static and dynamic C binaries (gcc), Go binaries whose build info records the Velero module
# they were built against (Debian's golang-go, a local stub of Velero, no module download),
# a foreign-architecture binary, whiteouts, name collisions and shell-style entrypoints.
# The binaries are compiled here; scripts/mkimages.py assembles the images.
#
# usage: scripts/mkplugins.sh [--cache DIR] LAYOUT
#   LAYOUT   OCI layout to create or add to (same format as mkimages.py). Images are named
#            lab.test/plugins/CASE:1.0; prints NAME<TAB>DIGEST<TAB>MEDIA_TYPE for each.
#   --cache  build directory kept between runs: GOCACHE, the module cache and the compiled
#            binaries (default ${XDG_CACHE_HOME:-$HOME/.cache}/velero-airgap/mkplugins).
#            Go compiles its standard library once per cache, and once more for arm64:
#            share one DIR across test runs. Never put it inside LAYOUT.
#
# Cases (the plugin file is /plugins/NAME; unless said otherwise the entrypoint is
# ["cp-plugin", "/plugins/NAME", "/target/NAME"], user 65532:65532, and /usr/bin/cp-plugin
# is the static C copier built here, which really copies):
#   static-c       static C plugin velero-plugin-static-c; runs under runc (run-plugin.sh)
#   go-plugin      Go, go.mod requires github.com/vmware-tanzu/velero v1.16.1 => ./velero-stub
#   go-plugin-new  Go, same against v1.19.0 (newer than the Velero being bundled)
#   go-plugin-fork Go, requires v1.16.1, replaced by github.com/acme/velero-fork v1.17.0
#                  (served from a file:// GOPROXY made here)
#   dynamic        dynamically linked C (needs /lib64/ld-linux-x86-64.so.2 and libc.so.6,
#                  which the image does not have)
#   wrong-arch     an aarch64 Go binary in a linux/amd64 image
#   sleep          not a plugin: entrypoint ["/bin/sleep", "infinity"], plain image
#   whiteout       the plugin file added in one layer, /plugins/.wh.velero-plugin-whiteout
#                  in the next
#   csi            Go, main module github.com/vmware-tanzu/velero-plugin-for-csi
#   aws-again      Go, velero-plugin-for-aws (the AWS plugin configured a second time)
#   same-name-a/b  two different C plugins, both named velero-plugin-dup
#   busybox-style  ["/bin/sh", "-c", "cp /plugins/* /target/"]
#   cp-r           ["/bin/cp", "-r", "/plugins/.", "/target/."]
# In the last two, /bin/sh and /bin/cp are copies of plugin-src/c/minibox.c, a tiny static
# program that understands only a simple `sh -c 'CMD ARG...'` (globs, no quoting) and
# `cp [-r] SRC... DST`; there is no /usr/bin/cp-plugin.
#
# Reproducible: the same toolchain gives byte-identical layouts (gcc -Wl,--build-id=none,
# go build -trimpath -buildvcs=false, fixed tar metadata; SOURCE_DATE_EPOCH dates the images).
# Needs gcc, libc6-dev (libc.a for -static), golang-go and python3 (scripts/install-lab.sh).
set -euo pipefail

usage() {
    sed -n '/^# usage:/,/^# Cases/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//' >&2
    exit 2
}

cache=""
while (($#)); do
    case $1 in
        --cache)
            (($# >= 2)) || usage
            cache=$2
            shift 2
            ;;
        -h | --help) usage ;;
        -*) usage ;;
        *) break ;;
    esac
done
(($# == 1)) || usage
layout=$1
if [[ -z $cache ]]; then
    if [[ -n ${XDG_CACHE_HOME:-} ]]; then
        cache=$XDG_CACHE_HOME/velero-airgap/mkplugins
    elif [[ -n ${HOME:-} ]]; then
        cache=$HOME/.cache/velero-airgap/mkplugins
    else
        echo "mkplugins.sh: neither HOME nor XDG_CACHE_HOME is set: give --cache DIR" >&2
        exit 2
    fi
fi

scripts=$(cd "$(dirname "$0")" && pwd)
readonly SRC=$scripts/plugin-src REPO=lab.test/plugins TAG=1.0
mkdir -p "$cache" "$layout"
cache=$(cd "$cache" && pwd)
layout_abs=$(cd "$layout" && pwd)
# A cache inside the layout would end up in the layout's tar (ctr images import).
if [[ $cache/ == "$layout_abs"/* ]]; then
    echo "mkplugins.sh: the cache $cache must not be inside LAYOUT" >&2
    exit 2
fi
readonly BIN=$cache/bin GOSRC=$cache/src
mkdir -p "$BIN"
# The Go trees are regenerated each run (they are tiny), so a stale one never leaks in.
rm -rf "$GOSRC"
mkdir -p "$GOSRC"

log() { echo "mkplugins.sh: $*" >&2; }

# ---- C -----------------------------------------------------------------------------------
# -s drops symbols (smaller images); --build-id=none and the prefix map keep the bytes
# independent of the machine and the checkout's path.
c_compile() {
    gcc -O2 -s -Wall -Wextra -Werror -Wl,--build-id=none -ffile-prefix-map="$SRC"=. "$@"
}

build_c() {
    log "building C binaries"
    c_compile -static -o "$BIN/cp-plugin" "$SRC/c/cp-plugin.c"
    c_compile -static -o "$BIN/minibox" "$SRC/c/minibox.c"
    local name
    for name in static-c whiteout busybox-style cp-r same-name-a same-name-b; do
        c_compile -static -DPLUGIN_NAME="\"$name\"" -o "$BIN/c-$name" "$SRC/c/plugin.c"
    done
    c_compile -DPLUGIN_NAME='"dynamic"' -o "$BIN/c-dynamic" "$SRC/c/plugin.c"
}

# ---- Go ----------------------------------------------------------------------------------
# Nothing may come from the network: GOPROXY=off (or a file:// proxy made here), no checksum
# database, no VCS stamping, and a go.work or go.env elsewhere on the machine is ignored.
export GOCACHE=$cache/go-build GOMODCACHE=$cache/go-mod GOPATH=$cache/go-path
export GOENV=off GOWORK=off GO111MODULE=on GOSUMDB=off GOPROXY=off CGO_ENABLED=0
# Go 1.21 and later would otherwise try to download a toolchain a go.mod asks for.
export GOTOOLCHAIN=local
# -modcacherw: the module cache is deletable with rm -rf (Go makes it read-only by default).
export GOFLAGS="-mod=mod -buildvcs=false -trimpath -modcacherw"
unset GOOS GOARCH

# go_module DIR MODULE_PATH PACKAGE_DIR VELERO_VERSION REPLACEMENT
#   A main module at DIR whose package PACKAGE_DIR ('.' for the root) is plugin-src/go/main.go
#   and whose go.mod requires Velero VELERO_VERSION replaced by REPLACEMENT.
go_module() {
    local dir=$1 module=$2 package=$3 version=$4 replacement=$5
    mkdir -p "$dir/$package"
    cp "$SRC/go/main.go" "$dir/$package/main.go"
    cp -r "$SRC/go/velero-stub" "$dir/velero-stub"
    cat >"$dir/go.mod" <<EOF
module $module

go 1.19

require github.com/vmware-tanzu/velero $version

replace github.com/vmware-tanzu/velero => $replacement
EOF
}

# A module proxy directory (the layout GOPROXY=file:// reads) serving the stub as
# github.com/acme/velero-fork v1.17.0. Its go.mod keeps Velero's module path, as a fork's does.
fork_proxy() {
    local proxy=$1
    python3 - "$SRC/go/velero-stub" "$proxy" <<'EOF'
import os, sys, zipfile
stub, proxy = sys.argv[1:]
module, version = "github.com/acme/velero-fork", "v1.17.0"
at = os.path.join(proxy, module, "@v")
os.makedirs(at, exist_ok=True)
files = {}
for root, _, names in os.walk(stub):
    for name in names:
        path = os.path.join(root, name)
        with open(path, "rb") as f:
            files[os.path.relpath(path, stub)] = f.read()
files["pkg/plugin/framework/flavour.go"] = files["pkg/plugin/framework/flavour.go"].replace(
    b'"velero-stub"', b'"acme velero-fork"')
with zipfile.ZipFile(os.path.join(at, version + ".zip"), "w") as z:
    for rel in sorted(files):
        # A fixed date keeps the zip, and so the go.sum hash, the same on every run.
        info = zipfile.ZipInfo(f"{module}@{version}/{rel}", date_time=(1980, 1, 1, 0, 0, 0))
        z.writestr(info, files[rel])
with open(os.path.join(at, version + ".mod"), "wb") as f:
    f.write(files["go.mod"])
with open(os.path.join(at, version + ".info"), "w") as f:
    f.write('{"Version":"%s","Time":"2025-01-01T00:00:00Z"}\n' % version)
with open(os.path.join(at, "list"), "w") as f:
    f.write(version + "\n")
EOF
}

# go_build DIR PACKAGE_DIR OUT NAME [ENV...]: one binary, named NAME at run time.
go_build() {
    local dir=$1 package=$2 out=$3 name=$4
    shift 4
    (cd "$dir" && env "$@" go build -ldflags="-X main.name=$name" -o "$out" "./$package")
}

build_go_amd64() {
    log "building Go binaries (linux/amd64)"
    go_module "$GOSRC/go-plugin" lab.test/velero-plugin-go . v1.16.1 ./velero-stub
    go_module "$GOSRC/go-plugin-new" lab.test/velero-plugin-go-new . v1.19.0 ./velero-stub
    go_module "$GOSRC/go-plugin-fork" lab.test/velero-plugin-go-fork . v1.16.1 \
        "github.com/acme/velero-fork v1.17.0"
    go_module "$GOSRC/csi" github.com/vmware-tanzu/velero-plugin-for-csi . v1.16.1 ./velero-stub
    # The AWS plugin's main package lives in a subdirectory named like the binary.
    go_module "$GOSRC/aws" github.com/vmware-tanzu/velero-plugin-for-aws \
        velero-plugin-for-aws v1.16.1 ./velero-stub
    fork_proxy "$GOSRC/goproxy"
    # Each main module needs its own go build (different requirements cannot share one build
    # list); the shared GOCACHE makes all but the first one a compile of main plus a link.
    local amd64=(GOOS=linux GOARCH=amd64)
    go_build "$GOSRC/go-plugin" . "$BIN/go-plugin" velero-plugin-go "${amd64[@]}"
    go_build "$GOSRC/go-plugin-new" . "$BIN/go-plugin-new" velero-plugin-go-new "${amd64[@]}"
    go_build "$GOSRC/go-plugin-fork" . "$BIN/go-plugin-fork" velero-plugin-go-fork \
        "${amd64[@]}" GOPROXY="file://$GOSRC/goproxy"
    go_build "$GOSRC/csi" . "$BIN/go-csi" velero-plugin-for-csi "${amd64[@]}"
    go_build "$GOSRC/aws" velero-plugin-for-aws "$BIN/go-aws" velero-plugin-for-aws "${amd64[@]}"
}

build_go_arm64() {
    log "building Go binary (linux/arm64)"
    go_module "$GOSRC/wrong-arch" lab.test/velero-plugin-wrong-arch . v1.16.1 ./velero-stub
    go_build "$GOSRC/wrong-arch" . "$BIN/go-wrong-arch-arm64" velero-plugin-wrong-arch \
        GOOS=linux GOARCH=arm64
}

started=$SECONDS
# The arm64 build compiles its own standard library: run it beside the rest, on the other
# core, instead of after it.
build_go_arm64 &
arm64_pid=$!
# On a failure below, let the background build finish rather than leave it running.
trap 'wait "$arm64_pid" 2>/dev/null || true' EXIT
build_c
build_go_amd64
wait "$arm64_pid"
trap - EXIT
log "binaries built in $((SECONDS - started)) s"

# ---- images ------------------------------------------------------------------------------
plugin() { # CASE NAME BINARY [OPTION...]: a plugin image with the real copier by default
    local case=$1 name=$2 binary=$3 options=""
    shift 3
    local option
    for option in "$@"; do options+=";$option"; done
    [[ $options == *";copier="* ]] || options+=";copier=$BIN/cp-plugin"
    specs+=("$REPO/$case:$TAG=plugin:;name=$name;binary=$binary$options")
}

specs=()
plugin static-c velero-plugin-static-c "$BIN/c-static-c"
plugin go-plugin velero-plugin-go "$BIN/go-plugin"
plugin go-plugin-new velero-plugin-go-new "$BIN/go-plugin-new"
plugin go-plugin-fork velero-plugin-go-fork "$BIN/go-plugin-fork"
plugin dynamic velero-plugin-dynamic "$BIN/c-dynamic"
plugin wrong-arch velero-plugin-wrong-arch "$BIN/go-wrong-arch-arm64"
specs+=("$REPO/sleep:$TAG=plain:;extra=$BIN/minibox:/bin/sleep;entrypoint=[\"/bin/sleep\",\"infinity\"]")
plugin whiteout velero-plugin-whiteout "$BIN/c-whiteout" whiteout=/plugins/velero-plugin-whiteout
plugin csi velero-plugin-for-csi "$BIN/go-csi"
plugin aws-again velero-plugin-for-aws "$BIN/go-aws"
plugin same-name-a velero-plugin-dup "$BIN/c-same-name-a"
plugin same-name-b velero-plugin-dup "$BIN/c-same-name-b"
plugin busybox-style velero-plugin-busybox-style "$BIN/c-busybox-style" copier=none \
    "extra=$BIN/minibox:/bin/sh" "extra=$BIN/minibox:/bin/cp" \
    'entrypoint=["/bin/sh","-c","cp /plugins/* /target/"]'
plugin cp-r velero-plugin-cp-r "$BIN/c-cp-r" copier=none "extra=$BIN/minibox:/bin/cp" \
    'entrypoint=["/bin/cp","-r","/plugins/.","/target/."]'

python3 "$scripts/mkimages.py" --seed mkplugins "$layout" "${specs[@]}"
log "done in $((SECONDS - started)) s"
