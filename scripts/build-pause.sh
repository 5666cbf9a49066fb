#!/bin/sh
# Builds the static, libc-free pause binary (the pause image's only file) into
# target/x86_64-unknown-linux-gnu/pause/podnet-pause and prints its path. The explicit --target keeps
# the profile's flags away from build scripts and proc macros of other crates.
set -eu
cd "$(dirname "$0")/.."
PODNET_PAUSE_STATIC=1 flock /tmp/podnet-cargo.lock cargo build -p podnet-pause --profile pause --target x86_64-unknown-linux-gnu >&2
bin=target/x86_64-unknown-linux-gnu/pause/podnet-pause
file "$bin" | grep -q "statically linked" || { echo "build-pause: $bin is not static" >&2; exit 1; }
echo "$PWD/$bin"
