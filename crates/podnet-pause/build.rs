//! With `panic = "abort"` (the `pause` profile of `scripts/build-pause.sh`) `podnet-pause` has no C
//! runtime: it brings its own `_start` and talks to the kernel with raw system calls, so it links as
//! a small static executable with no libc at all (the machine has no musl target, and a static glibc
//! std binary would be a hundred times larger). Other profiles build an ordinary std binary.
//!
//! Cargo does not tell build scripts the profile's panic strategy, so the script says it through
//! `PODNET_PAUSE_STATIC=1`.
fn main() {
    println!("cargo:rerun-if-env-changed=PODNET_PAUSE_STATIC");
    if std::env::var("PODNET_PAUSE_STATIC").as_deref() == Ok("1") {
        for arg in [
            "-nostartfiles",
            "-nostdlib",
            "-static",
            "-no-pie",
            "-Wl,--gc-sections",
            "-Wl,--build-id=none",
        ] {
            println!("cargo:rustc-link-arg-bins={arg}");
        }
    }
    println!("cargo:rerun-if-changed=build.rs");
}
