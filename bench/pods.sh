#!/usr/bin/env bash
# Pods: `kubectl apply` of a two-container pod to Ready against podman (pod create + two run -d --pod),
# 100 pods over 3 nodes to Ready and deleted, and podnet's memory per running pod (root; throwaway labs).
# Usage: bench/pods.sh [--pods N] [--many M]
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh >/dev/null
cargo build --release -q -p podnet -p podnet-cni -p podnet-runtime -p podnet-pause -p podnet-bench
exec target/release/pods-bench "$@"
