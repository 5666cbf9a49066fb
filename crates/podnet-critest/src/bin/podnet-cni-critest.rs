//! podnet-cni's executable, built in this package so that its tests always run the current plugin
//! code (`CARGO_BIN_EXE_podnet-cni-critest`) rather than whatever `target/` last held. Same entry point
//! as `podnet-cni`'s own `main`.

fn main() {
    podnet_cni::exec()
}
