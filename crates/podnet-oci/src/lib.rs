//! `podnet-oci`: OCI images for podnet, as containerd handles them.
//!
//! - [`reference`]: image references normalised as Docker does (pure).
//! - [`digest`], [`manifest`]: content digests; OCI and Docker schema-2 manifests, indexes and configs.
//! - [`auth`], [`hosts`], [`transport`], [`registry`]: the distribution client — credentials, per-registry
//!   mirrors (`hosts.toml`), connections through a caller-supplied [`Dialer`], bearer tokens.
//! - [`store`]: the content store shared by every lab on the machine (blobs by digest, image records,
//!   one snapshot per layer, root filesystems); [`unpack`] applies a layer tar into a snapshot without
//!   letting any entry escape it; [`pull`] and [`load`] fill the store.
//!
//! How an image flows: reference → endpoints (mirrors, then upstream) → manifest (index resolved to
//! linux/amd64) → config → layers fetched in parallel, each streamed through a hash into a temporary blob
//! file *and* through the decompressor into a temporary snapshot directory; both are committed (fsync +
//! rename for the blob, rename for the snapshot) only once the compressed digest and the uncompressed
//! diffID match → image record. A container's root filesystem is an overlay of the snapshots plus its own
//! upper directory ([`Store::prepare_rootfs`]).

pub mod auth;
pub mod digest;
pub mod fsutil;
pub mod hosts;
pub mod load;
pub mod manifest;
pub mod pull;
pub mod reference;
pub mod registry;
pub mod rootfs;
pub mod store;
pub mod transport;
pub mod unpack;

mod ingest;
#[cfg(feature = "test-support")]
#[doc(hidden)]
pub mod testing;

pub use auth::{Credentials, Keychain};
pub use digest::Digest;
pub use hosts::{Endpoint, Hosts};
pub use manifest::Platform;
pub use pull::{Progress, PullError, PullOptions, Puller};
pub use reference::Reference;
pub use registry::{Registry, RegistryError};
pub use rootfs::Rootfs;
pub use store::{ImageRecord, LayerRecord, Store, StoreError};
pub use transport::{Dialer, default_dialer};
