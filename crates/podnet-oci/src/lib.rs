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
//!
//! # What a node agent calls
//! ```text
//! let store = Store::open(podnet_oci::store::DEFAULT_ROOT)?;
//! // Connections from the machine's network namespace, made on a short-lived thread (NetNs::run):
//! let machine = Arc::new(podnet_netns::NetNs::open("/proc/1/ns/net")?);
//! let dialer: Dialer = Arc::new(move |host: &str, port: u16| {
//!     let host = host.to_string();
//!     machine.run(move || std::net::TcpStream::connect((host.as_str(), port)))
//!         .map_err(std::io::Error::other)?
//! });
//! let hosts = Hosts::new(Some("/var/lib/podnet/pn/hosts.d".into()), vec![]);
//! let puller = Puller::new(store.clone(), dialer, hosts, Keychain::empty());
//! // Per pod: credentials from imagePullSecrets (each secret's .dockerconfigjson).
//! let mut secrets = Keychain::empty();
//! secrets.merge(&Keychain::from_json("secret default/regcred", &dockerconfigjson)?);
//! let image = puller.pull(&Reference::parse("nginx")?,
//!     &PullOptions { credentials: Some(secrets), progress: None }).await?;
//! // image.substitute_for: Some("docker.io/library/nginx:latest") for a podnet substitute.
//! let rootfs = store.prepare_rootfs(&image.reference, "<pod uid>/<container>/<attempt>",
//!     "pod default/web-1 container nginx", &bundle.join("rootfs"))?;
//! // ... runc runs the container on rootfs.mountpoint ...
//! store.remove_rootfs("<pod uid>/<container>/<attempt>")?;
//! ```

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
