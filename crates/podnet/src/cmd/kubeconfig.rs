//! `podnet kubeconfig`: print the kubeconfig of a lab's API server.

use std::path::PathBuf;

use anyhow::Context;
use podnet_apiserver::kubeconfig;

#[derive(clap::Args)]
pub struct Args {
    /// The PKI directory of the API server (ca.crt and token).
    #[arg(long)]
    pki_dir: PathBuf,
    /// The server URL to put in it.
    #[arg(long, default_value = "https://127.0.0.1:6443")]
    server: String,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let ca = std::fs::read_to_string(args.pki_dir.join("ca.crt"))
        .with_context(|| format!("read {}/ca.crt", args.pki_dir.display()))?;
    let token = std::fs::read_to_string(args.pki_dir.join("token"))
        .with_context(|| format!("read {}/token", args.pki_dir.display()))?;
    print!(
        "{}",
        kubeconfig::render_yaml(&args.server, &ca, token.trim())
    );
    Ok(())
}
