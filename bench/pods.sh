#!/usr/bin/env bash
# Pods: `kubectl apply` of a two-container pod to Ready against podman (pod create + two run -d --pod),
# 100 pods over 3 nodes to Ready and deleted, and podnet's memory per running pod (root; throwaway labs).
# Usage: bench/pods.sh [--pods N] [--many M]
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh >/dev/null
flock /tmp/podnet-cargo.lock cargo build --release -q -p podnet -p podnet-cni -p podnet-runtime -p podnet-pause -p podnet-bench
# The nodes run the pause a node installs (static, libc-free: a few pages resident), not the
# ordinary std build of the same loop that `cargo build` leaves beside podnet (about 1 MB resident).
# The lab finds its binaries beside podnet's, so the bench runs from a directory of its own rather
# than replacing cargo's podnet-pause (cargo would not rebuild it, and tests would run the static one).
pause=$(./scripts/build-pause.sh)
bin=target/release/pods-bench.bin
rm -rf "$bin" && mkdir -p "$bin"
for b in pods-bench podnet podnet-cni podnet-shim; do cp -l "target/release/$b" "$bin/$b" 2>/dev/null || cp "target/release/$b" "$bin/$b"; done
install -m 755 "$pause" "$bin/podnet-pause"
exec "$bin/pods-bench" "$@"
