//! Substitutes for the tutorials' images, built on this machine from Debian's packages.
//!
//! The lab cannot reach Docker Hub or registry.k8s.io, yet every tutorial starts with `nginx`,
//! `httpd`, `ubuntu`, `busybox` or `registry.k8s.io/echoserver:1.4`. This crate builds stand-ins
//! for them from Debian 12's packages (and podnet's own static binaries), writes them as an OCI
//! image layout, and pushes that layout into a registry (the lab's loopback mirror). Each image
//! says what it is in its annotations and labels (`io.podnet.image.substitute-for` names the
//! upstream image it stands in for; the description says it is not that image).
//!
//! - [`recipe`]: what each image is made of (pure data).
//! - [`debian`]: mmdebstrap for the shared base, apt-get in a chroot over an overlay per layer.
//! - [`tarball`]: deterministic layer tarballs; overlay whiteouts become OCI whiteouts.
//! - [`layout`]: configs, manifests, the index; canonical JSON.
//! - [`build`]: the cache (a layer is built once per recipe) and the assembly of the images;
//!   [`annotations`]: what each image says about itself.
//! - [`publish`]: pushing a layout into a registry with skopeo, only what the registry lacks.
//!
//! Built without installing anything into the machine: mmdebstrap and apt work inside
//! directories under the cache, mounts live in a private mount namespace.

pub mod annotations;
pub mod build;
mod busybox;
pub mod debian;
pub mod digest;
mod error;
pub mod layout;
pub mod lock;
pub mod publish;
pub mod recipe;
pub mod tarball;

pub use annotations::SUBSTITUTE_KEY;
pub use build::{BuiltRef, Options, Report, build};
pub use digest::Digest;
pub use error::{Error, Result};

/// Where `podnet image build-substitutes` writes the layout by default, and where `podnet up`
/// pushes from: machine-wide, shared by every lab. (`_` keeps it apart from lab names, which
/// `/var/lib/podnet/<lab>` uses and which cannot start with `_`.)
pub const DEFAULT_OUT_DIR: &str = "/var/lib/podnet/_substitutes";
