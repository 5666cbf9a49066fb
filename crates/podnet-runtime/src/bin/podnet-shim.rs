//! `podnet-shim`: the per-container supervisor; see `podnet_runtime::shim` for its protocol.

fn main() {
    let argv: Vec<String> = std::env::args().skip(1).collect();
    std::process::exit(podnet_runtime::shim::main(&argv));
}
