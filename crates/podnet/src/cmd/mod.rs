//! Subcommands. Each lives in its own module; this file only lists them.

use clap::{Parser, Subcommand};

mod apiserver;
mod kubeconfig;

#[derive(Parser)]
#[command(name = "podnet", version, about = "Kubernetes pod networking, end to end, on one machine and beyond")]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand)]
pub enum Command {
    /// Print the version.
    Version,
    /// Run the control plane's API server on its own (blocking).
    Apiserver(apiserver::Args),
    /// Print the kubeconfig of a lab's API server.
    Kubeconfig(kubeconfig::Args),
}

pub fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Version => {
            println!("podnet {}", env!("CARGO_PKG_VERSION"));
            Ok(())
        }
        Command::Apiserver(a) => apiserver::run(a),
        Command::Kubeconfig(a) => kubeconfig::run(a),
    }
}
