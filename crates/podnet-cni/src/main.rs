//! The `podnet-cni` executable: read the environment and stdin, print the result, exit.

use std::io::{Read, Write};

fn main() {
    let mut stdin = Vec::new();
    if let Err(e) = std::io::stdin().read_to_end(&mut stdin) {
        let err = podnet_types::cni::CniError::new(
            podnet_types::cni::ErrorCode::Io,
            format!("read configuration from stdin: {e}"),
        );
        println!(
            "{}",
            err.to_json(podnet_types::cni::CniVersion::LATEST.as_str())
        );
        std::process::exit(1);
    }
    if std::env::var_os("CNI_COMMAND").is_none() {
        // Run by hand: say what this is, as the reference plugins do.
        eprintln!(
            "podnet-cni {}: CNI plugin (protocol versions 0.3.0, 0.3.1, 0.4.0, 1.0.0, 1.1.0)",
            env!("CARGO_PKG_VERSION")
        );
    }
    let outcome = podnet_cni::run(|k| std::env::var(k).ok(), &stdin);
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(outcome.stdout.as_bytes());
    if !outcome.stdout.is_empty() {
        let _ = out.write_all(b"\n");
    }
    let _ = out.flush();
    std::process::exit(outcome.code);
}
