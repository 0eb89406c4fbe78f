#!/usr/bin/env bash
# Starts and stops the real services of the test lab on 127.0.0.1: a CNCF distribution registry
# (plain, basic auth, TLS, TLS with basic auth, shaped like Embedded Cluster's, or with token
# authentication and its own token server) and a containerd daemon with its own root, state and
# socket. This is the only place that knows how to start them: the Rust test helpers
# (tests/common/mod.rs), scripts/demo.sh and the benchmark all call it.
#
# usage:
#   lab.sh registry DIR PORT [--auth USER:PASS] [--tls]
#       Writes DIR/config.yml, stores blobs under DIR/storage, listens on 127.0.0.1:PORT.
#       --tls   self-signed CA + separate server certificate (IP SAN 127.0.0.1); the CA is
#               DIR/certs/ca.crt, alone in its directory (what skopeo --*-cert-dir wants).
#       --auth  htpasswd (bcrypt) basic auth for USER with PASS.
#   lab.sh registry DIR PORT --ec
#       Shaped like Embedded Cluster's registry: HTTPS with the self-signed certificate EC makes
#       (DIR/ec/tls.crt, also as DIR/certs/ca.crt alone in its dir), htpasswd user
#       embedded-cluster with a random 20-character password (DIR/ec/password), the
#       registry-creds and registry-tls Secrets as fixtures (DIR/ec/secrets/*.json), their
#       decoded docker config (DIR/ec/docker/config.json) and a fake kubectl that reads them
#       (DIR/ec/bin/kubectl, for tests only). Takes no other option.
#   lab.sh registry DIR PORT --token [--auth USER:PASS] [--tls] [--token-tls]
#                                    [--token-port TPORT] [--token-ttl SECONDS]
#       Token authentication (Docker Hub/ghcr/Harbor style): also starts a token server (its
#       realm URL in DIR/token/realm) that gives anyone pull and USER (--auth) pull and push.
#       --token-tls    the realm is HTTPS with the lab CA (DIR/certs/ca.crt), as in the field.
#       --token-port   the token server's port (default: a free one it picks itself).
#       --token-ttl    token lifetime in seconds (default 300); the registry allows 60 s of
#                      clock skew past it.
#   lab.sh containerd DIR
#       containerd with root/state/opt under DIR, gRPC socket DIR/containerd.sock (keep DIR
#       short: a unix socket path is limited to 108 bytes), CRI disabled.
#   lab.sh stop DIR
#       Stops the daemon whose PID is in DIR/pid and the token server whose PID is in
#       DIR/token/pid (each only if that PID still runs our daemon).
#
# Each start runs the daemon in the background, waits until it answers, writes its PID to
# DIR/pid and prints it (only that: the token server's PID goes to DIR/token/pid). The daemon's
# log is DIR/log; the token server's request log (JSON lines) is DIR/token/log, its own output
# DIR/token/daemon.log.
#
# Exit codes: 0 ok, 1 failure (log tail on stderr), 2 usage, 3 the port is already in use
# (the caller picks another port and tries again).
set -euo pipefail

readonly START_TIMEOUT_S=20
SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
readonly SCRIPT_DIR
# Debian's python (install-lab.sh installs it), called by path: the token server needs Debian's
# python3-cryptography, which a python3 earlier on PATH (pyenv, a venv) need not see, and a
# pyenv shim costs over a second per call under load, which the 0.1 s probe loops pay often.
readonly PYTHON=/usr/bin/python3
# Names Embedded Cluster uses (pkg/addons/registry, pkg/addons/adminconsole).
readonly EC_USER=embedded-cluster
# What the token-auth registry and its token server agree on.
readonly TOKEN_SERVICE=velero-airgap-lab
readonly TOKEN_ISSUER=velero-airgap-lab-issuer

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

# wait_ready LOG PIDFILE PID PROBE [--quiet]
# Waits until PROBE succeeds while the daemon stays alive, then writes PID to PIDFILE and
# prints it (not with --quiet: callers parse stdout as the one PID of the main daemon). On
# failure prints the log tail.
wait_ready() {
    local log=$1 pidfile=$2 pid=$3 probe=$4 quiet=${5:-} deadline=$((SECONDS + START_TIMEOUT_S))
    while ((SECONDS < deadline)); do
        if ! alive "$pid"; then
            if grep -q 'address already in use' "$log" 2>/dev/null; then
                echo "lab.sh: port already in use" >&2
                exit 3
            fi
            tail -n 20 "$log" >&2 || true
            die "daemon exited during start (log: $log)"
        fi
        if "$probe"; then
            echo "$pid" >"$pidfile"
            [[ $quiet == --quiet ]] || echo "$pid"
            return 0
        fi
        sleep 0.1
    done
    kill "$pid" 2>/dev/null || true
    tail -n 20 "$log" >&2 || true
    die "daemon did not answer within ${START_TIMEOUT_S}s (log: $log)"
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

# make_ec DIR PORT
# What Embedded Cluster's installer creates for its registry, with 127.0.0.1:PORT standing in
# for the registry's cluster IP and port 5000.
make_ec() {
    local dir=$1 port=$2 ec=$1/ec password
    rm -rf "$ec"
    mkdir -p "$ec/docker" "$ec/secrets" "$ec/bin" "$dir/certs"
    # pkg/certs Builder.Generate: self-signed RSA 2048, O=replicated CN=registry, CA:FALSE,
    # digitalSignature+keyEncipherment, anyExtendedKeyUsage only, 1 year. Go writes neither a
    # subject nor an authority key identifier for a non-CA template; openssl's defaults would,
    # so they are switched off. Go lists DNS names before IPs, and the builder's defaults
    # (DNS:localhost, IP:127.0.0.1) come first; the registry IP is 127.0.0.1 here, so once.
    openssl req -x509 -newkey rsa:2048 -nodes -days 365 -subj /O=replicated/CN=registry \
        -addext subjectKeyIdentifier=none -addext authorityKeyIdentifier=none \
        -addext basicConstraints=critical,CA:FALSE \
        -addext keyUsage=critical,digitalSignature,keyEncipherment \
        -addext extendedKeyUsage=anyExtendedKeyUsage \
        -addext subjectAltName=DNS:localhost,DNS:registry,DNS:registry.registry.svc,DNS:registry.registry.svc.cluster.local,IP:127.0.0.1 \
        -keyout "$ec/tls.pkcs8.key" -out "$ec/tls.crt" 2>/dev/null
    # EC PEM-encodes the PKCS#8 key under the label "RSA PRIVATE KEY" (certs.go); Go's
    # tls.X509KeyPair accepts that, strict PEM readers do not. Keep the field's quirk.
    sed -e 's/^-----BEGIN PRIVATE KEY-----$/-----BEGIN RSA PRIVATE KEY-----/' \
        -e 's/^-----END PRIVATE KEY-----$/-----END RSA PRIVATE KEY-----/' \
        "$ec/tls.pkcs8.key" >"$ec/tls.key"
    rm -f "$ec/tls.pkcs8.key"
    # Alone in its directory, like the --tls CA, for skopeo's --*-cert-dir (which would take
    # tls.key beside it for a client key without a matching .cert and fail).
    cp "$ec/tls.crt" "$dir/certs/ca.crt"
    # helpers.RandString(20): letters and digits.
    password=$("$PYTHON" -c 'import secrets, string
a = string.ascii_letters + string.digits
print("".join(secrets.choice(a) for _ in range(20)))')
    printf '%s' "$password" >"$ec/password"
    printf '%s\n' "$password" | htpasswd -iBc "$ec/htpasswd" "$EC_USER" 2>/dev/null
    # The password goes by file, not argv, so it does not show in the process list.
    "$PYTHON" - "$ec" "127.0.0.1:$port" "$EC_USER" <<'EOF'
import base64, datetime, json, sys, uuid
ec, addr, user = sys.argv[1:]
with open(f"{ec}/password") as f:
    password = f.read()
auth = base64.b64encode(f"{user}:{password}".encode()).decode()
# Byte for byte the string adminconsole.createRegistrySecret formats (spaces included), with
# 127.0.0.1:PORT for "<registry IP>:5000".
config = ('{"auths":{"%s":{"username": "%s", "password": "%s", "auth": "%s"}}}'
          % (addr, user, password, auth))
with open(f"{ec}/docker/config.json", "w") as f:
    f.write(config)
with open(f"{ec}/tls.crt") as f:
    crt = f.read()
with open(f"{ec}/tls.key") as f:
    key = f.read()
now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
b64 = lambda s: base64.b64encode(s.encode()).decode()

def secret(name, namespace, labels, type_, data, version):
    # As `kubectl get secret -o json` prints it: keys sorted, four-space indent.
    return {
        "apiVersion": "v1",
        "data": {k: b64(v) for k, v in data.items()},
        "kind": "Secret",
        "metadata": {
            "creationTimestamp": now,
            "labels": labels,
            "name": name,
            "namespace": namespace,
            "resourceVersion": version,
            "uid": str(uuid.uuid4()),
        },
        "type": type_,
    }

secrets = {
    "registry-creds": secret(
        "registry-creds", "kotsadm",
        {"kots.io/kotsadm": "true", "replicated.com/disaster-recovery": "infra",
         "replicated.com/disaster-recovery-chart": "admin-console"},
        "kubernetes.io/dockerconfigjson", {".dockerconfigjson": config}, "1042"),
    # EC creates it as Opaque, not kubernetes.io/tls.
    "registry-tls": secret(
        "registry-tls", "registry", {"app": "docker-registry"},
        "Opaque", {"tls.crt": crt, "tls.key": key}, "1017"),
}
for name, obj in secrets.items():
    with open(f"{ec}/secrets/{name}.json", "w") as f:
        f.write(json.dumps(obj, indent=4, sort_keys=True) + "\n")
EOF
    cp "$SCRIPT_DIR/lab-fake-kubectl.py" "$ec/bin/kubectl"
    chmod 755 "$ec/bin/kubectl"
    chmod 600 "$ec/tls.key" "$ec/password" "$ec/docker/config.json"
}

# make_token_keys DIR
# The token signing chain: a root CA (the registry's rootcertbundle) and a signing certificate
# it issued (sent in each token's x5c header), both EC P-256 for ES256.
make_token_keys() {
    local token=$1/token
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 30 \
        -subj "/CN=velero-airgap lab token root" \
        -addext "basicConstraints=critical,CA:TRUE" \
        -addext "keyUsage=critical,keyCertSign,cRLSign" \
        -keyout "$token/root.key" -out "$token/root.crt" 2>/dev/null
    openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
        -subj "/CN=velero-airgap lab token signer" \
        -keyout "$token/signing.key" -out "$token/signing.csr" 2>/dev/null
    printf '%s\n' "basicConstraints=critical,CA:FALSE" "keyUsage=critical,digitalSignature" \
        >"$token/signing.ext"
    openssl x509 -req -in "$token/signing.csr" -CA "$token/root.crt" -CAkey "$token/root.key" \
        -CAserial "$token/root.srl" -CAcreateserial -days 30 -extfile "$token/signing.ext" \
        -out "$token/signing.crt" 2>/dev/null
}

# start_token_server DIR TPORT TTL TLS(true|false) USER:PASS|""
# Starts the token server (TPORT 0: it binds a free port itself and reports it in
# DIR/token/port), waits until it answers and writes DIR/token/{pid,realm}.
start_token_server() {
    local dir=$1 tport=$2 ttl=$3 tls=$4 auth=$5 token=$1/token scheme=http
    rm -rf "$token"
    mkdir -p "$token"
    make_token_keys "$dir"
    # Plain USER:PASS lines: the lab's passwords are test fixtures, and the token server
    # compares them in constant time.
    if [[ -n $auth ]]; then
        printf '%s\n' "$auth" >"$token/users"
    else
        : >"$token/users"
    fi
    chmod 600 "$token/users"
    : >"$token/log"
    $tls && scheme=https
    "$PYTHON" - "$token/config.json" "$tport" "$ttl" "$tls" "$dir" "$TOKEN_SERVICE" \
        "$TOKEN_ISSUER" <<'EOF'
import json, sys
path, port, ttl, tls, d, service, issuer = sys.argv[1:]
t = d + "/token"
cfg = {
    "port": int(port), "port_file": t + "/port", "log": t + "/log", "users": t + "/users",
    "service": service, "issuer": issuer, "ttl": int(ttl),
    "signing_key": t + "/signing.key", "signing_cert": t + "/signing.crt",
    "tls_cert": d + "/tls/server.crt" if tls == "true" else None,
    "tls_key": d + "/tls/server.key" if tls == "true" else None,
}
with open(path, "w") as f:
    json.dump(cfg, f, indent=2)
EOF
    # The config path on the command line is what stop() recognises the process by.
    "$PYTHON" "$SCRIPT_DIR/lab-token-server.py" "$token/config.json" \
        >"$token/daemon.log" 2>&1 </dev/null &
    TOKEN_PID=$!
    PROBE_TOKEN_DIR=$token PROBE_SCHEME=$scheme PROBE_CA="$dir/certs/ca.crt"
    wait_ready "$token/daemon.log" "$token/pid" "$TOKEN_PID" probe_token --quiet
    echo "$scheme://127.0.0.1:$(<"$token/port")/token" >"$token/realm"
}

# Ready when the server has written the port it bound (so whoever answers there is ours) and
# /healthz answers 200.
probe_token() {
    [[ -s $PROBE_TOKEN_DIR/port ]] || return 1
    probe_http "$PROBE_SCHEME://127.0.0.1:$(<"$PROBE_TOKEN_DIR/port")/healthz" "$PROBE_CA" 200
}

# A registry start that fails after the token server is up must not leave it behind: the
# caller retries with another port (exit 3) or gives up, and only sees DIR/pid.
abort_token_server() {
    if [[ -n ${TOKEN_PID:-} ]]; then
        kill "$TOKEN_PID" 2>/dev/null || true
        rm -f "$PROBE_TOKEN_DIR/pid"
    fi
}

start_registry() {
    (($# >= 2)) || usage
    local dir=$1 port=$2 auth="" tls=false ec=false token=false token_tls=false
    local token_port=0 token_ttl=300 token_opts=false
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
            --ec)
                ec=true
                shift
                ;;
            --token)
                token=true
                shift
                ;;
            --token-tls)
                token_tls=true token_opts=true
                shift
                ;;
            --token-port)
                (($# >= 2)) || usage
                token_port=$2 token_opts=true
                shift 2
                ;;
            --token-ttl)
                (($# >= 2)) || usage
                token_ttl=$2 token_opts=true
                shift 2
                ;;
            *) usage ;;
        esac
    done
    if ! [[ $port =~ ^[1-9][0-9]{0,4}$ ]] || ((port > 65535)); then
        die "PORT must be 1-65535, got '$port'"
    fi
    # --ec stands for one fixed setup; the token options only make sense with --token.
    if $ec && { [[ -n $auth ]] || $tls || $token || $token_opts; }; then
        usage
    fi
    if $token_opts && ! $token; then
        usage
    fi
    if ! [[ $token_port =~ ^(0|[1-9][0-9]{0,4})$ ]] || ((token_port > 65535)); then
        die "--token-port must be 1-65535, got '$token_port'"
    fi
    [[ $token_ttl =~ ^[1-9][0-9]{0,8}$ ]] || die "--token-ttl must be a positive number of seconds"
    if [[ -n $auth && $auth != *:* ]]; then
        die "--auth wants USER:PASS"
    fi
    mkdir -p "$dir/storage"
    dir=$(cd "$dir" && pwd)

    local tls_yaml="" auth_yaml="" scheme=http
    PROBE_CA="$dir/certs/ca.crt"
    if $tls || $token_tls; then
        make_tls "$dir"
    fi
    if $tls; then
        scheme=https
        tls_yaml="  tls:
    certificate: $dir/tls/server.crt
    key: $dir/tls/server.key"
    fi
    if $ec; then
        make_ec "$dir" "$port"
        scheme=https
        tls_yaml="  tls:
    certificate: $dir/ec/tls.crt
    key: $dir/ec/tls.key"
        auth_yaml="auth:
  htpasswd:
    realm: velero-airgap-lab
    path: $dir/ec/htpasswd"
    elif $token; then
        trap abort_token_server EXIT
        start_token_server "$dir" "$token_port" "$token_ttl" "$token_tls" "$auth"
        auth_yaml="auth:
  token:
    realm: $(<"$dir/token/realm")
    service: $TOKEN_SERVICE
    issuer: $TOKEN_ISSUER
    rootcertbundle: $dir/token/root.crt"
    elif [[ -n $auth ]]; then
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
    PROBE_URL="$scheme://127.0.0.1:$port/v2/" PROBE_DIR=$dir
    # EC's certificate is self-signed and not a CA: probe it as the field first meets it,
    # without verification.
    $ec && PROBE_CA=""
    wait_ready "$dir/log" "$dir/pid" "$pid" probe_registry
    trap - EXIT
}

# Ready when the registry logged that it listens (so the answer below is ours, not from some
# other process that holds the port) and /v2/ answers 200 or 401.
probe_registry() {
    grep -q 'listening on' "$PROBE_DIR/log" 2>/dev/null || return 1
    probe_http "$PROBE_URL" "$PROBE_CA" 200 401
}

# probe_http URL CA STATUS...: whether URL answers one of STATUS. For https, CA is the file to
# verify against; an empty CA skips verification.
probe_http() {
    "$PYTHON" - "$@" <<'EOF' 2>/dev/null
import ssl, sys, urllib.error, urllib.request
url, ca, wanted = sys.argv[1], sys.argv[2], {int(s) for s in sys.argv[3:]}
ctx = None
if url.startswith("https"):
    if ca:
        ctx = ssl.create_default_context(cafile=ca)
    else:
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
# No proxy: urllib would send even 127.0.0.1 through $http_proxy.
opener = urllib.request.build_opener(
    urllib.request.ProxyHandler({}), urllib.request.HTTPSHandler(context=ctx)
)
try:
    status = opener.open(url, timeout=2).status
except urllib.error.HTTPError as e:
    status = e.code
sys.exit(0 if status in wanted else 1)
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
    wait_ready "$dir/log" "$dir/pid" "$pid" probe_containerd
}

probe_containerd() {
    [[ -S $PROBE_SOCK ]] && ctr --address "$PROBE_SOCK" version >/dev/null 2>&1
}

# stop_pid PIDFILE MARKER: signals the PID in PIDFILE only if it still runs our daemon, i.e. its
# command line names MARKER, our config file (PIDs get reused); then removes PIDFILE.
stop_pid() {
    local pidfile=$1 marker=$2 pid
    pid=$(<"$pidfile")
    [[ $pid =~ ^[0-9]+$ ]] || die "bad PID file $pidfile"
    if alive "$pid" && tr '\0' ' ' <"/proc/$pid/cmdline" | grep -qF "$marker"; then
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
    rm -f "$pidfile"
}

stop() {
    (($# == 1)) || usage
    local dir=$1
    [[ -f $dir/pid || -f $dir/token/pid ]] || die "no PID file in $dir"
    dir=$(cd "$dir" && pwd)
    # The registry first, so nothing asks it for a token after the token server is gone.
    if [[ -f $dir/pid ]]; then
        stop_pid "$dir/pid" "$dir/config."
    fi
    if [[ -f $dir/token/pid ]]; then
        stop_pid "$dir/token/pid" "$dir/token/config.json"
    fi
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
