//! The lab daemon, started detached by `podnet up` (not for direct use).

use anyhow::Result;

#[derive(clap::Args)]
pub struct Args {
    #[arg(long)]
    name: String,
}

pub fn run(a: Args) -> Result<()> {
    podnet_lab::daemon::run(&a.name)?;
    Ok(())
}
