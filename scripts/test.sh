#!/usr/bin/env bash
# The test suite, as CI runs it: installs what the tests need, builds, runs every test (unit, property,
# root namespace tests, end-to-end with the real kubectl/helm). Run as root on a Debian 12 machine.
# Fails when any test fails.
set -euo pipefail
cd "$(dirname "$0")/.."

if [[ $(id -u) -ne 0 ]]; then
  echo "test.sh: run as root (the tests create network namespaces)" >&2
  exit 1
fi
./scripts/setup.sh

if ! cargo nextest --version >/dev/null 2>&1; then
  echo "test.sh: installing cargo-nextest"
  cargo install --locked cargo-nextest
fi

# Everything a test creates carries the pnt- prefix; a previous run that was killed may have left some.
for ns in $(ip netns list 2>/dev/null | awk '/^pnt-/ {print $1}'); do ip netns delete "$ns" || true; done

cargo build --workspace --all-targets --locked
# The tutorials' substitute images (cached in .cache/images; the image tests and labs use them).
PODNET=target/debug/podnet ./scripts/substitutes.sh
# Test labs (pnt-*) whose test was killed before its cleanup ran.
for dir in /run/podnet/pnt-*/; do
  [[ -d $dir ]] && target/debug/podnet --lab "$(basename "$dir")" down >/dev/null || true
done
cargo nextest run --workspace --locked --no-fail-fast
cargo test --workspace --locked --doc
