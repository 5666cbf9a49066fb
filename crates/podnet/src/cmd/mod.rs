//! Subcommands. Each lives in its own module; this file only lists them.

use clap::{Parser, Subcommand};

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
}

pub fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Version => {
            println!("podnet {}", env!("CARGO_PKG_VERSION"));
            Ok(())
        }
    }
}
