#!/usr/bin/env bash
# Runs one image of an OCI layout the way Kubernetes runs a Velero plugin init container, so a
# test can check that the plugin binary really lands in the shared volume: the image is
# imported into containerd's k8s.io namespace and started by `ctr run` with runc, the host
# directory TARGET bind-mounted read-write at /target, and the hardening of a restricted pod:
# read-only root filesystem, the image's own user, no capabilities (bounding set empty too),
# no-new-privileges and the default seccomp profile.
#
# usage: scripts/run-plugin.sh [--address SOCK] [--timeout SECONDS] [--probe] LAYOUT NAME TARGET
#   LAYOUT     OCI image layout (mkimages.py, mkplugins.sh); NAME is an image in it, e.g.
#              lab.test/plugins/static-c:1.0 (its org.opencontainers.image.ref.name).
#   TARGET     host directory mounted at /target. It must be writable by the image's user
#              (65532 for the lab plugins): chmod 0777 it or chown it; nothing here changes it.
#   --address  a containerd socket, e.g. DIR/containerd.sock of `lab.sh containerd DIR`.
#              Default: start a lab containerd in a temporary directory, stop it at exit.
#   --timeout  kill the container after SECONDS; the exit code is then 124. Default: no limit
#              (the test suite gives none: a slow machine must not fail a test).
#   --probe    for a long-running image (lab.test/plugins/sleep:1.0): start it detached, print
#              its process's Uid, Gid, Cap*, NoNewPrivs and Seccomp lines from /proc/PID/status
#              and the mount options of / and /target, then kill it.
# Prints the container's output, then one line per file in TARGET: MODE UID:GID SIZE NAME.
# Exits with the container's exit code (0 when the entrypoint succeeded; 0 after --probe).
# The snapshotter is containerd's default unless CONTAINERD_SNAPSHOTTER names another.
# Needs root, containerd, runc and python3 (scripts/install-lab.sh).
set -euo pipefail

usage() {
    sed -n '/^# usage:/,/^# Needs root/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//' >&2
    exit 2
}

address="" timeout="" probe=false
while (($#)); do
    case $1 in
        --address)
            (($# >= 2)) || usage
            address=$2
            shift 2
            ;;
        --timeout)
            (($# >= 2)) || usage
            timeout=$2
            shift 2
            ;;
        --probe)
            probe=true
            shift
            ;;
        -h | --help) usage ;;
        -*) usage ;;
        *) break ;;
    esac
done
(($# == 3)) || usage
readonly LAYOUT=$1 NAME=$2
[[ -z $timeout || $timeout =~ ^[1-9][0-9]*$ ]] || usage
[[ -f $LAYOUT/index.json ]] || { echo "run-plugin.sh: $LAYOUT is not an OCI layout" >&2; exit 1; }
[[ -d $3 ]] || { echo "run-plugin.sh: TARGET $3 is not a directory" >&2; exit 1; }
TARGET=$(cd "$3" && pwd)
readonly TARGET
scripts=$(cd "$(dirname "$0")" && pwd)

# Every capability that containerd's default spec grants (oci.populateDefaultUnixSpec in
# containerd 1.6). ctr 1.6 has no "--cap-drop ALL": it wants each name with its CAP_ prefix.
readonly DEFAULT_CAPS=(
    CAP_CHOWN CAP_DAC_OVERRIDE CAP_FSETID CAP_FOWNER CAP_MKNOD CAP_NET_RAW CAP_SETGID
    CAP_SETUID CAP_SETFCAP CAP_SETPCAP CAP_NET_BIND_SERVICE CAP_SYS_CHROOT CAP_KILL
    CAP_AUDIT_WRITE
)

work=$(mktemp -d "${TMPDIR:-/tmp}/run-plugin.XXXXXX")
id=run-plugin-$$-${work##*.}
lab_dir=""
# shellcheck disable=SC2317  # run by the EXIT trap
cleanup() {
    # Whatever happened, leave no task, container or snapshot behind (by this run's own ID).
    if [[ -n $address ]] && ctr -a "$address" -n k8s.io containers info "$id" >/dev/null 2>&1; then
        ctr -a "$address" -n k8s.io tasks kill -s SIGKILL "$id" >/dev/null 2>&1 || true
        ctr -a "$address" -n k8s.io tasks delete -f "$id" >/dev/null 2>&1 || true
        ctr -a "$address" -n k8s.io containers delete "$id" >/dev/null 2>&1 || true
    fi
    if [[ -n $lab_dir ]]; then
        bash "$scripts/lab.sh" stop "$lab_dir" || true
        rm -rf "$lab_dir"
    fi
    rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

if [[ -z $address ]]; then
    # Short path: a unix socket path holds at most 108 bytes.
    lab_dir=$(mktemp -d /tmp/rp.XXXXXX)
    bash "$scripts/lab.sh" containerd "$lab_dir" >/dev/null
    address=$lab_dir/containerd.sock
fi
ctr=(ctr -a "$address" -n k8s.io)

# A tar of a layout holding only NAME and the blobs it reaches: ctr imports every image of
# an archive, and would copy every blob of a large layout.
python3 - "$LAYOUT" "$NAME" "$work/image.tar" <<'EOF'
import io, json, os, sys, tarfile
layout, name, out = sys.argv[1:]
with open(os.path.join(layout, "index.json")) as f:
    index = json.load(f)
chosen = [m for m in index["manifests"]
          if m.get("annotations", {}).get("org.opencontainers.image.ref.name") == name]
if not chosen:
    sys.exit(f"run-plugin.sh: no image {name!r} in {layout}")
blobs, todo = set(), list(chosen)
while todo:
    descriptor = todo.pop()
    digest = descriptor["digest"]
    if digest in blobs:
        continue
    blobs.add(digest)
    # Manifests and indexes (OCI or Docker) point further; configs and layers do not.
    if "manifest" in descriptor["mediaType"] or "index" in descriptor["mediaType"]:
        with open(os.path.join(layout, "blobs", *digest.split(":", 1))) as f:
            body = json.load(f)
        todo += body.get("manifests", []) + body.get("layers", [])
        if "config" in body:
            todo.append(body["config"])
with tarfile.open(out, "w") as tar:
    tar.add(os.path.join(layout, "oci-layout"), "oci-layout")
    data = json.dumps(dict(index, manifests=chosen)).encode()
    info = tarfile.TarInfo("index.json")
    info.size = len(data)
    tar.addfile(info, io.BytesIO(data))
    for digest in sorted(blobs):
        algorithm, hex_digest = digest.split(":", 1)
        tar.add(os.path.join(layout, "blobs", algorithm, hex_digest), f"blobs/{algorithm}/{hex_digest}")
EOF
"${ctr[@]}" images import "$work/image.tar" >&2

run_flags=(--read-only --seccomp --mount "type=bind,src=$TARGET,dst=/target,options=rbind:rw")
for cap in "${DEFAULT_CAPS[@]}"; do
    run_flags+=(--cap-drop "$cap")
done
# ctr 1.6 keeps no-new-privileges on unless --allow-new-privs is given, and takes the user
# from the image config (it has no --user flag).

if $probe; then
    "${ctr[@]}" run -d --pid-file "$work/pid" "${run_flags[@]}" "$NAME" "$id" >/dev/null
    pid=$(<"$work/pid")
    # The PID is runc's init, which execs the entrypoint as the task starts: give it a moment
    # so that /proc shows the entrypoint's credentials, not the init's.
    sleep 0.5
    grep -E '^(Uid|Gid|Groups|Cap[A-Za-z]+|NoNewPrivs|Seccomp):' "/proc/$pid/status"
    awk '$5 == "/" || $5 == "/target" { print "mount " $5 " " $6 }' "/proc/$pid/mountinfo"
    status=0
else
    start=$SECONDS
    "${ctr[@]}" run --rm "${run_flags[@]}" "$NAME" "$id" </dev/null &
    ctr_pid=$!
    timed_out=false
    while [[ -n $timeout ]] && kill -0 "$ctr_pid" 2>/dev/null; do
        if ((SECONDS >= start + timeout)); then
            echo "run-plugin.sh: $NAME still running after ${timeout}s; killing it" >&2
            "${ctr[@]}" tasks kill -s SIGKILL "$id" >/dev/null 2>&1 || true
            timed_out=true
            break
        fi
        sleep 0.1
    done
    status=0
    wait "$ctr_pid" || status=$?
    if $timed_out; then
        status=124
    fi
fi

find "$TARGET" -mindepth 1 -maxdepth 1 -printf '%M %U:%G %s %f\n' | sort -k4
exit "$status"
