//! `podnet down`: remove every trace of the lab; also after a crash or a half-built `up`.

use anyhow::{Result, bail};

pub fn run(lab: &str) -> Result<()> {
    let report = podnet_lab::down(lab)?;
    if !report.errors.is_empty() {
        for e in &report.errors {
            eprintln!("podnet down: {e}");
        }
        bail!(
            "lab {lab} was not removed completely ({} errors above)",
            report.errors.len()
        );
    }
    if report.removed.is_empty() {
        println!("no lab {lab} on this machine; nothing to remove");
    } else {
        println!(
            "lab {lab} removed ({} namespaces, daemons and directories)",
            report.removed.len()
        );
    }
    Ok(())
}
