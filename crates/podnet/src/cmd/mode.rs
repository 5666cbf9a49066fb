//! `podnet mode MODE`: switch a running lab between vxlan, host-gw and gateway routing.

use anyhow::Result;
use podnet_types::lab::Mode;

#[derive(clap::Args)]
pub struct Args {
    /// vxlan, host-gw or gateway.
    mode: Mode,
}

pub fn run(lab: &str, a: Args) -> Result<()> {
    let r = podnet_lab::set_mode(lab, a.mode)?;
    if r.from == r.to {
        println!(
            "lab {lab} is already in mode {}; checked every namespace:",
            r.to
        );
    } else {
        println!(
            "lab {lab}: mode {} -> {}; pod addresses unchanged, pod MTU {} on {} pods",
            r.from,
            r.to,
            mtu_word(r.to),
            r.pods_retuned
        );
    }
    for (ns, changes) in &r.changes {
        if changes.is_empty() {
            println!("  {ns}: no change");
        } else {
            println!("  {ns}:");
            for line in &changes.lines {
                println!("    {line}");
            }
        }
    }
    Ok(())
}

fn mtu_word(mode: Mode) -> &'static str {
    match mode {
        Mode::Vxlan => "lowered by the 50-byte VXLAN overhead",
        Mode::HostGw | Mode::Gateway => "back to the underlay's",
    }
}
