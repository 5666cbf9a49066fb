#!/usr/bin/env bash
# Pod start/remove times and podnet's memory per pod (root; a throwaway node under /tmp/pnt-bench-*).
# Builds release binaries and the static pause, then runs the driver. Usage: bench/runtime.sh [--pods N]
set -euo pipefail
cd "$(dirname "$0")/.."
pause=$(./scripts/build-pause.sh)
flock /tmp/podnet-cargo.lock cargo build --release -q -p podnet-runtime --bins --example pod-start
exec target/release/examples/pod-start --pause "$pause" "$@"
