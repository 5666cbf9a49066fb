#!/usr/bin/env bash
# NetworkPolicy enforcement (podnet-agent) vs kube-router's nftables NetworkPolicy layout, regenerated
# for the same policies (kube-router itself is not installable here), both through the same `nft -f`, in
# the same run (root; throwaway namespaces). 1000 policies over 1000 pods: programmed from scratch, one
# change with all present, and connection latency between two isolated pods with podnet's table, with
# kube-router's and with none.
# Usage: bench/policy.sh [--policies N] [--changes C] [--connections K] [--rounds R] [--anchor 0|1]
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh >/dev/null
cargo build --release -q -p podnet-bench --bin policy-bench
exec target/release/policy-bench "$@"
