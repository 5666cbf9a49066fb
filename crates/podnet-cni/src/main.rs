//! The `podnet-cni` executable: read the environment and stdin, print the result, exit.

fn main() {
    podnet_cni::exec()
}
