//! The tutorial walkthroughs: each seed tutorial of `shared/seeds/` as a list of steps in
//! `examples/seed-NNN/walkthrough.yaml`, run in order on the lab with the real kubectl and helm,
//! each step's output shown and checked.
//!
//! A walkthrough is data, not code, so a reader can follow the same file by hand: every `run` is a
//! command to type in `examples/seed-NNN/`. The engine adds only what a script cannot say well:
//! which outputs prove the step worked (`expect`), how long to wait for the cluster to converge
//! (`until`), and, where the tutorial's exact command cannot apply to the lab, the tutorial's
//! command beside podnet's equivalent and why (`instead` + `why`).

pub mod check;
pub mod model;
pub mod run;
pub mod shell;

pub use model::Walkthrough;
pub use run::Runner;
