//! `podnet`: the command line and the daemons it starts.

mod cmd;

use clap::Parser;

fn main() -> anyhow::Result<()> {
    let cli = cmd::Cli::parse();
    cmd::run(cli)
}
