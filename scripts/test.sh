#!/usr/bin/env bash
# The test command (README and .ci/run call exactly this): installs the lab's Debian packages
# when any is missing, then runs every test. Extra arguments go to `cargo test`
# (e.g. `scripts/test.sh --test lab`).
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/install-lab.sh
cargo test --locked "$@"
