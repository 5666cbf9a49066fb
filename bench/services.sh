#!/usr/bin/env bash
# The service proxy (podnet-agent) vs kube-proxy's nftables ruleset, regenerated for the same Services
# (kube-proxy itself is not installable here), both through the same `nft -f`, in the same run (root;
# throwaway namespaces). Programs 1k/10k/30k Services, one change with 10k present, and connection
# latency through a Service with 1 and with 10k installed.
# Usage: bench/services.sh [--sizes-max N (10000; 30000 adds 30k)] [--anchor-max N (10000)] [--changes C] [--connections K]
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh >/dev/null
cargo build --release -q -p podnet-bench --bin services-bench
exec target/release/services-bench "$@"
