//! nftables for podnet: scripts applied atomically with `nft -f -`, podnet's own tables read back by
//! name, and over netlink without starting a process: a probe that answers "is this chain there?"
//! and set elements added and removed in one batch.
//!
//! podnet never lists or edits anybody else's tables: each component owns its table (`podnet-cni`,
//! `podnet`) and rebuilds its pieces in one transaction.

pub mod elements;
mod error;
pub mod nl;
pub mod probe;
mod run;
pub mod script;

pub use elements::{Element, Op, apply_elements};
pub use error::{Error, Result};
pub use nl::Netlink;
pub use probe::{NftFamily, chain_exists};
pub use run::{apply, chains, list, list_json, nft_binary};
pub use script::Script;
