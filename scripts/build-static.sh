#!/usr/bin/env bash
# Builds the small static binaries that go into images: podnet-echoserver (the echoserver substitute),
# podnet-dns (the cluster DNS image), podnet-ingress (the ingress controller image) and, when scripts/build-pause.sh is in the tree, podnet-pause (the
# pause image). Prints their paths.
#
# The machine has only the x86_64-unknown-linux-gnu target (no musl), so the echo server links glibc
# statically (crt-static). The explicit --target keeps RUSTFLAGS off build scripts and proc-macros,
# and the separate target directory keeps these flags from invalidating the ordinary builds.
# Each build takes the machine's shared cargo lock itself (as build-pause.sh does): do not call this
# script under that lock, the nested flock would wait for ever.
set -euo pipefail
cd "$(dirname "$0")/.."

TARGET=x86_64-unknown-linux-gnu
DIR=target/static
OUT=$DIR/$TARGET/release

CARGO_PROFILE_RELEASE_STRIP=symbols CARGO_PROFILE_RELEASE_DEBUG=false \
CARGO_PROFILE_RELEASE_OPT_LEVEL=s CARGO_PROFILE_RELEASE_PANIC=abort \
RUSTFLAGS="-C target-feature=+crt-static" \
  flock /tmp/podnet-cargo.lock cargo build -q --release --locked --target "$TARGET" --target-dir "$DIR" -p podnet-echoserver
built=("$OUT/podnet-echoserver")

# podnet-dns: a server, so speed before size (opt-level 3) and panics unwinding (a panic in one
# query's task must not take the server down); symbols stripped.
CARGO_PROFILE_RELEASE_STRIP=symbols CARGO_PROFILE_RELEASE_DEBUG=false \
RUSTFLAGS="-C target-feature=+crt-static" \
  flock /tmp/podnet-cargo.lock cargo build -q --release --locked --target "$TARGET" --target-dir "$DIR" -p podnet-dns --bin podnet-dns
built+=("$OUT/podnet-dns")

# podnet-ingress: the same reasons (a proxy: speed first, a panic in one request's task must not
# take the others down).
CARGO_PROFILE_RELEASE_STRIP=symbols CARGO_PROFILE_RELEASE_DEBUG=false \
RUSTFLAGS="-C target-feature=+crt-static" \
  flock /tmp/podnet-cargo.lock cargo build -q --release --locked --target "$TARGET" --target-dir "$DIR" -p podnet-ingress --bin podnet-ingress
built+=("$OUT/podnet-ingress")

# podnet-pause has no libc at all and its own build (cargo profile `pause`, panic=abort): its script
# builds it and prints the path, when the crate is in the tree.
if [[ -x scripts/build-pause.sh ]]; then
  built+=("$(./scripts/build-pause.sh)")
fi

for bin in "${built[@]}"; do
  if ! file -b "$bin" | grep -q 'static'; then
    echo "build-static: $bin is not statically linked: $(file -b "$bin")" >&2
    exit 1
  fi
  echo "$bin"
done
