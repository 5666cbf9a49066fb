//! podnet's pure data types: no IO, no syscalls, no clocks. Everything above builds on these.
//!
//! - [`cni`]: the CNI protocol (spec 1.1): versions, requests, configuration, results, errors.
//! - [`ipam`]: the address allocator as a pure state machine.
//! - [`names`]: names and tags of the kernel objects podnet creates.

pub mod cni;
pub mod ipam;
pub mod names;
