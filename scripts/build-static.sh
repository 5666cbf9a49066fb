#!/usr/bin/env bash
# Builds the small static binaries that go into images: podnet-echoserver (the echoserver substitute)
# and, when the crate is in the tree, podnet-pause (the pause image). Prints the paths it built.
#
# The machine has only the x86_64-unknown-linux-gnu target (no musl), so the echo server links glibc
# statically (crt-static). The explicit --target keeps RUSTFLAGS off build scripts and proc-macros,
# and the separate target directory keeps these flags from invalidating the ordinary builds.
set -euo pipefail
cd "$(dirname "$0")/.."

TARGET=x86_64-unknown-linux-gnu
DIR=target/static
OUT=$DIR/$TARGET/release

CARGO_PROFILE_RELEASE_STRIP=symbols CARGO_PROFILE_RELEASE_DEBUG=false \
CARGO_PROFILE_RELEASE_OPT_LEVEL=s CARGO_PROFILE_RELEASE_PANIC=abort \
RUSTFLAGS="-C target-feature=+crt-static" \
  cargo build -q --release --locked --target "$TARGET" --target-dir "$DIR" -p podnet-echoserver
built=("$OUT/podnet-echoserver")

# podnet-pause brings its own static link arguments (no libc at all); build it as it is.
if [[ -f crates/podnet-pause/Cargo.toml ]]; then
  cargo build -q --release --locked --target "$TARGET" --target-dir "$DIR" -p podnet-pause
  built+=("$OUT/podnet-pause")
fi

for bin in "${built[@]}"; do
  if ! file -b "$bin" | grep -q 'static'; then
    echo "build-static: $bin is not statically linked: $(file -b "$bin")" >&2
    exit 1
  fi
  echo "$bin"
done
