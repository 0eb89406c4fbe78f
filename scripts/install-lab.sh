#!/usr/bin/env bash
# Installs the Debian packages the test lab, the demo and the benchmark need, skipping the run
# entirely when all of them are present. Needs root (or passwordless sudo) when something is
# missing; never prompts.
#
# Debian's docker-registry package starts its own registry on :5000 from its postinst (through
# invoke-rc.d, or systemd where that runs) and containerd's starts the system containerd under
# systemd. The lab starts its own daemons, so this script installs with a policy-rc.d that
# forbids service starts, and puts back whatever policy the machine had.
set -euo pipefail

# The lab's services and tools; python3-cryptography signs the token server's JWTs.
# gcc with libc6-dev (for `gcc -static`: libc.a; gcc only recommends it, and recommends are
# not installed), golang-go and runc build and run the real plugin images
# (scripts/mkplugins.sh, scripts/run-plugin.sh); python3-jsonschema and python3-rfc3987
# validate the SBOM against the CycloneDX schema.
readonly PACKAGES=(
    docker-registry skopeo containerd protobuf-compiler apache2-utils openssl time python3
    python3-cryptography
    gcc libc6-dev golang-go runc
    python3-jsonschema python3-rfc3987
)
readonly POLICY=/usr/sbin/policy-rc.d

installed() {
    [[ $(dpkg-query -W -f='${Status}' "$1" 2>/dev/null) == "install ok installed" ]]
}

missing=()
for package in "${PACKAGES[@]}"; do
    installed "$package" || missing+=("$package")
done
if ((${#missing[@]} == 0)); then
    exit 0
fi
echo "install-lab.sh: installing ${missing[*]}" >&2

sudo=()
if ((EUID != 0)); then
    if command -v sudo >/dev/null && sudo -n true 2>/dev/null; then
        sudo=(sudo -n)
    else
        echo "install-lab.sh: run as root to install: ${missing[*]}" >&2
        exit 1
    fi
fi

# Exit code 101 of policy-rc.d means "action forbidden" to invoke-rc.d and deb-systemd-invoke.
backup=""
if [[ -e $POLICY ]]; then
    backup=$(mktemp)
    "${sudo[@]}" cp -p "$POLICY" "$backup"
fi
restore_policy() {
    if [[ -n $backup ]]; then
        "${sudo[@]}" cp -p "$backup" "$POLICY"
        rm -f "$backup"
    else
        "${sudo[@]}" rm -f "$POLICY"
    fi
}
trap restore_policy EXIT
trap 'exit 130' INT TERM
printf '#!/bin/sh\n# written by velero-airgap scripts/install-lab.sh\nexit 101\n' |
    "${sudo[@]}" tee "$POLICY" >/dev/null
"${sudo[@]}" chmod 755 "$POLICY"

export DEBIAN_FRONTEND=noninteractive
"${sudo[@]}" apt-get update -q
"${sudo[@]}" apt-get install -y -q --no-install-recommends "${missing[@]}" </dev/null
