//! `podnet`: the command line and the daemons it starts.

mod cmd;
mod tutorial;

use clap::Parser;

fn main() {
    let cli = cmd::Cli::parse();
    if let Err(e) = cmd::run(cli) {
        // The chain of causes on one line, as `podnet up: build lab pn: create ...: File exists`.
        eprintln!("podnet: {e:#}");
        std::process::exit(1);
    }
}
