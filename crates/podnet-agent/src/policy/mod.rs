//! NetworkPolicy enforcement for the pods of this node, programmed as one nftables table.
//!
//! - [`model`] (pure): NetworkPolicies, Pods and Namespaces -> the semantics, and an oracle that
//!   answers "is this connection allowed?" from them.
//! - [`state`] (pure): the index kept up to date change by change; which owners (selector sets,
//!   policies, pods of this node) changed, and their objects.
//! - [`nft`] (pure): names, rules, the table's fixed part, transactions.
//! - [`sync`]: the last applied objects in memory -> the smallest transaction for a change; rebuilds.
//! - [`nflog`] and [`drops`]: denied packets read from the kernel's NFLOG group, kept in a bounded
//!   log file, and reported with the per-policy counters (`podnet policy drops`).
//! - [`run`]: watches the API, batches changes, applies them on a blocking thread.

pub mod drops;
pub mod model;
pub mod nflog;
pub mod nft;
pub mod run;
pub mod state;
pub mod sync;

pub use model::{Direction, Key, Policy};
pub use run::{PolicyConfig, PolicyError, remove, run};
pub use sync::{SyncError, Syncer};
