#!/usr/bin/env bash
# podnet-cni vs the reference bridge + host-local plugins, in the same run (root; throwaway namespaces).
# Usage: bench/cni.sh [--pods N] [--burst-rounds R] [--spoof-check 0|1 (default 1, as the lab)]
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh >/dev/null
cargo build --release -q -p podnet-cni -p podnet-bench
exec target/release/cni-bench "$@"
