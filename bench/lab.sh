#!/usr/bin/env bash
# Lab throughput (iperf3) against a bare veth pair, and `podnet up`/`down` times (root; throwaway labs).
# Usage: bench/lab.sh [--seconds S] [--rounds R]
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh >/dev/null
cargo build --release -q -p podnet -p podnet-cni -p podnet-bench
exec target/release/lab-bench "$@"
