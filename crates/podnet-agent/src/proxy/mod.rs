//! The service proxy: ClusterIP, NodePort and load-balancer addresses programmed as one nftables table.
//!
//! - [`model`] (pure): Services + EndpointSlices + the node's facts -> desired state per service port.
//! - [`nft`] (pure): desired state -> nftables objects and transaction text.
//! - [`sync`]: the last applied state in memory -> the smallest transaction for a change; full rebuilds.
//! - [`conntrack`]: stale UDP flows removed when endpoints change.
//! - [`run`]: watches the API, batches changes, applies them on a blocking thread.

pub mod conntrack;
pub mod model;
pub mod nft;
pub mod run;
pub mod sync;

pub use model::{Endpoint, PortState, Protocol, ServiceKey, ServiceState};
pub use run::{ProxyConfig, ProxyError, remove, run};
pub use sync::{SyncError, Syncer};
