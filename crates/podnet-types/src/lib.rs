//! podnet's pure data types: no IO, no syscalls, no clocks. Everything above builds on these.
//!
//! - [`cni`]: the CNI protocol (spec 1.1): versions, requests, configuration, results, errors.
//! - [`ipam`]: the address allocator as a pure state machine.
//! - [`names`]: names and tags of the kernel objects podnet creates.
//! - [`lab`]: the lab's address plan (underlay, podCIDRs, service CIDR) and routing modes.
//! - [`routing`]: the desired routing state of each lab namespace for a mode.

pub mod cni;
pub mod ipam;
pub mod lab;
pub mod names;
pub mod routing;
