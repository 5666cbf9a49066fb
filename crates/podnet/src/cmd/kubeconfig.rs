//! `podnet kubeconfig`: print the kubeconfig of the running lab's API server (or, with `--pki-dir`, of
//! a standalone `podnet apiserver`).

use std::path::PathBuf;

use anyhow::{Context, bail};
use podnet_apiserver::kubeconfig;

#[derive(clap::Args)]
pub struct Args {
    /// The PKI directory of a standalone API server (ca.crt and token); default: the lab's.
    #[arg(long)]
    pki_dir: Option<PathBuf>,
    /// The server URL to put in it; default: the lab's API server.
    #[arg(long)]
    server: Option<String>,
}

pub fn run(lab: &str, args: Args) -> anyhow::Result<()> {
    match args.pki_dir {
        Some(dir) => {
            let server = args
                .server
                .unwrap_or_else(|| "https://127.0.0.1:6443".into());
            print!("{}", render(&dir, &server)?);
        }
        None => print!("{}", lab_kubeconfig(lab, args.server)?),
    }
    Ok(())
}

/// The kubeconfig of the running lab's API server (`server` overrides its URL).
pub fn lab_kubeconfig(lab: &str, server: Option<String>) -> anyhow::Result<String> {
    let Some(state) = podnet_lab::status(lab)? else {
        bail!(podnet_lab::Error::NotRunning(lab.to_string()))
    };
    let api = state
        .api_address
        .context("the lab's API server has not reported its address")?;
    let paths = podnet_lab::LabPaths::new(lab);
    render(
        &podnet_lab::controlplane::pki_dir(&paths),
        &server.unwrap_or(format!("https://{api}")),
    )
}

fn render(pki_dir: &std::path::Path, server: &str) -> anyhow::Result<String> {
    let ca = std::fs::read_to_string(pki_dir.join("ca.crt"))
        .with_context(|| format!("read {}/ca.crt", pki_dir.display()))?;
    let token = std::fs::read_to_string(pki_dir.join("token"))
        .with_context(|| format!("read {}/token", pki_dir.display()))?;
    Ok(kubeconfig::render_yaml(server, &ca, token.trim()))
}
