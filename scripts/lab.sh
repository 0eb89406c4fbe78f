#!/usr/bin/env bash
# Starts and stops the real services of the test lab on 127.0.0.1: a CNCF distribution registry
# (plain, basic auth, TLS, or TLS with basic auth) and a containerd daemon with its own root,
# state and socket. This is the only place that knows how to start them: the Rust test helpers
# (tests/common/mod.rs), scripts/demo.sh and the benchmark all call it.
#
# usage:
#   lab.sh registry DIR PORT [--auth USER:PASS] [--tls]
#       Writes DIR/config.yml, stores blobs under DIR/storage, listens on 127.0.0.1:PORT.
#       --tls   self-signed CA + separate server certificate (IP SAN 127.0.0.1); the CA is
#               DIR/certs/ca.crt, alone in its directory (what skopeo --*-cert-dir wants).
#       --auth  htpasswd (bcrypt) basic auth for USER with PASS.
#   lab.sh containerd DIR
#       containerd with root/state/opt under DIR, gRPC socket DIR/containerd.sock (keep DIR
#       short: a unix socket path is limited to 108 bytes), CRI disabled.
#   lab.sh stop DIR
#       Stops the daemon whose PID is in DIR/pid (only if that PID still runs our daemon).
#
# Each start runs the daemon in the background, waits until it answers, writes its PID to
# DIR/pid and prints it. The daemon's log is DIR/log.
#
# Exit codes: 0 ok, 1 failure (log tail on stderr), 2 usage, 3 the port is already in use
# (the caller picks another port and tries again).
set -euo pipefail

readonly START_TIMEOUT_S=20

die() {
    echo "lab.sh: $*" >&2
    exit 1
}

usage() {
    sed -n '/^# usage:/,/^# Exit codes/p' "$0" | sed 's/^# \{0,1\}//' >&2
    exit 2
}

# A PID counts as gone when it no longer exists or is a zombie: the daemon's parent (this
# script) has exited, so it is reaped by whatever init the machine has, possibly late.
alive() {
    local pid=$1 state
    [[ -r /proc/$pid/stat ]] || return 1
    state=$(sed 's/^.*) //' "/proc/$pid/stat" 2>/dev/null | cut -d' ' -f1) || return 1
    [[ -n $state && $state != Z && $state != X ]]
}

# Waits until PROBE succeeds while the daemon stays alive. On failure prints the log tail.
wait_ready() {
    local dir=$1 pid=$2 probe=$3 deadline=$((SECONDS + START_TIMEOUT_S))
    while ((SECONDS < deadline)); do
        if ! alive "$pid"; then
            if grep -q 'address already in use' "$dir/log" 2>/dev/null; then
                echo "lab.sh: port already in use" >&2
                exit 3
            fi
            tail -n 20 "$dir/log" >&2 || true
            die "daemon exited during start (log: $dir/log)"
        fi
        if "$probe"; then
            echo "$pid" >"$dir/pid"
            echo "$pid"
            return 0
        fi
        sleep 0.1
    done
    kill "$pid" 2>/dev/null || true
    tail -n 20 "$dir/log" >&2 || true
    die "daemon did not answer within ${START_TIMEOUT_S}s (log: $dir/log)"
}

make_tls() {
    local dir=$1 tls=$1/tls
    mkdir -p "$tls" "$dir/certs"
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 30 \
        -subj "/CN=velero-airgap lab CA" \
        -addext "basicConstraints=critical,CA:TRUE" \
        -addext "keyUsage=critical,keyCertSign,cRLSign" \
        -keyout "$tls/ca.key" -out "$dir/certs/ca.crt" 2>/dev/null
    openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
        -subj "/CN=127.0.0.1" -keyout "$tls/server.key" -out "$tls/server.csr" 2>/dev/null
    cat >"$tls/server.ext" <<'EOF'
basicConstraints=critical,CA:FALSE
keyUsage=critical,digitalSignature,keyEncipherment
extendedKeyUsage=serverAuth
subjectAltName=IP:127.0.0.1,DNS:localhost
EOF
    # The serial file goes beside the key: the certs dir must hold only ca.crt.
    openssl x509 -req -in "$tls/server.csr" -CA "$dir/certs/ca.crt" -CAkey "$tls/ca.key" \
        -CAserial "$tls/ca.srl" -CAcreateserial -days 30 -extfile "$tls/server.ext" \
        -out "$tls/server.crt" 2>/dev/null
}

start_registry() {
    (($# >= 2)) || usage
    local dir=$1 port=$2 auth="" tls=false
    shift 2
    while (($#)); do
        case $1 in
            --auth)
                (($# >= 2)) || usage
                auth=$2
                shift 2
                ;;
            --tls)
                tls=true
                shift
                ;;
            *) usage ;;
        esac
    done
    if ! [[ $port =~ ^[1-9][0-9]{0,4}$ ]] || ((port > 65535)); then
        die "PORT must be 1-65535, got '$port'"
    fi
    mkdir -p "$dir/storage"
    dir=$(cd "$dir" && pwd)

    local tls_yaml="" auth_yaml="" scheme=http
    if $tls; then
        make_tls "$dir"
        scheme=https
        tls_yaml="  tls:
    certificate: $dir/tls/server.crt
    key: $dir/tls/server.key"
    fi
    if [[ -n $auth ]]; then
        [[ $auth == *:* ]] || die "--auth wants USER:PASS"
        # -i reads the password from stdin, so it does not show in the process list.
        printf '%s\n' "${auth#*:}" | htpasswd -iBc "$dir/htpasswd" "${auth%%:*}" 2>/dev/null
        auth_yaml="auth:
  htpasswd:
    realm: velero-airgap-lab
    path: $dir/htpasswd"
    fi

    cat >"$dir/config.yml" <<EOF
version: 0.1
log:
  level: info
storage:
  filesystem:
    rootdirectory: $dir/storage
  delete:
    enabled: true
http:
  addr: 127.0.0.1:$port
  secret: velero-airgap-lab
$tls_yaml
$auth_yaml
EOF

    docker-registry serve "$dir/config.yml" >"$dir/log" 2>&1 </dev/null &
    local pid=$!
    PROBE_URL="$scheme://127.0.0.1:$port/v2/" PROBE_CA="$dir/certs/ca.crt" PROBE_DIR=$dir
    wait_ready "$dir" "$pid" probe_registry
}

# Ready when the registry logged that it listens (so the answer below is ours, not from some
# other process that holds the port) and /v2/ answers 200 or 401.
probe_registry() {
    grep -q 'listening on' "$PROBE_DIR/log" 2>/dev/null || return 1
    python3 - "$PROBE_URL" "$PROBE_CA" <<'EOF' 2>/dev/null
import os, ssl, sys, urllib.error, urllib.request
url, ca = sys.argv[1], sys.argv[2]
ctx = ssl.create_default_context(cafile=ca) if url.startswith("https") else None
# No proxy: urllib would send even 127.0.0.1 through $http_proxy.
opener = urllib.request.build_opener(
    urllib.request.ProxyHandler({}), urllib.request.HTTPSHandler(context=ctx)
)
try:
    status = opener.open(url, timeout=2).status
except urllib.error.HTTPError as e:
    status = e.code
sys.exit(0 if status in (200, 401) else 1)
EOF
}

start_containerd() {
    (($# == 1)) || usage
    local dir=$1
    mkdir -p "$dir"
    dir=$(cd "$dir" && pwd)
    local sock=$dir/containerd.sock
    # sun_path holds 108 bytes; ".ttrpc" and the NUL must fit too.
    ((${#sock} + 7 < 108)) || die "socket path too long: $sock (use a shorter DIR)"
    mkdir -p "$dir/root" "$dir/state" "$dir/opt"
    # The opt path and the disabled CRI plugin keep containerd from writing to /opt/containerd
    # and /etc/cni and from opening a streaming port.
    cat >"$dir/config.toml" <<EOF
version = 2
root = "$dir/root"
state = "$dir/state"
disabled_plugins = ["io.containerd.grpc.v1.cri"]

[grpc]
  address = "$sock"

[ttrpc]
  address = "$sock.ttrpc"

[plugins."io.containerd.internal.v1.opt"]
  path = "$dir/opt"
EOF
    containerd --config "$dir/config.toml" >"$dir/log" 2>&1 </dev/null &
    local pid=$!
    PROBE_SOCK=$sock
    wait_ready "$dir" "$pid" probe_containerd
}

probe_containerd() {
    [[ -S $PROBE_SOCK ]] && ctr --address "$PROBE_SOCK" version >/dev/null 2>&1
}

stop() {
    (($# == 1)) || usage
    local dir=$1 pid
    [[ -f $dir/pid ]] || die "no PID file in $dir"
    pid=$(<"$dir/pid")
    [[ $pid =~ ^[0-9]+$ ]] || die "bad PID file $dir/pid"
    dir=$(cd "$dir" && pwd)
    # Only signal the PID if it still runs our daemon with our config (PIDs get reused).
    if alive "$pid" && tr '\0' ' ' <"/proc/$pid/cmdline" | grep -qF "$dir/config."; then
        kill "$pid" 2>/dev/null || true
        local i
        for ((i = 0; i < 100; i++)); do
            alive "$pid" || break
            sleep 0.05
        done
        if alive "$pid"; then
            kill -KILL "$pid" 2>/dev/null || true
        fi
    fi
    rm -f "$dir/pid"
}

(($# >= 1)) || usage
command=$1
shift
case $command in
    registry) start_registry "$@" ;;
    containerd) start_containerd "$@" ;;
    stop) stop "$@" ;;
    -h | --help | help) usage ;;
    *) usage ;;
esac
