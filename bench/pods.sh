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
pause=$(./scripts/build-pause.sh)
install -m 755 "$pause" target/release/podnet-pause
exec target/release/pods-bench "$@"
