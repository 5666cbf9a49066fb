#!/usr/bin/env bash
# Image pull + unpack against `podman pull` from the same loopback registry, rootfs set-up time, and the
# disk used by ten containers of one image (root; everything in a temporary directory).
# Usage: bench/images.sh [--rounds R] [--rootfs N]
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh >/dev/null
cargo build --release -q -p podnet -p podnet-bench
exec target/release/images-bench "$@"
