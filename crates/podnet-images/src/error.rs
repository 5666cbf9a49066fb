//! Errors of the substitute builder: each names the object and the operation.

use std::path::Path;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{what}: {cause}")]
    Io { what: String, cause: std::io::Error },
    /// A command the build runs (mmdebstrap, apt-get in the chroot, skopeo) failed.
    #[error("{what}: {detail}")]
    Command { what: String, detail: String },
    #[error("{what}: {detail}")]
    Oci { what: String, detail: String },
    #[error("{0}")]
    Invalid(String),
}

pub type Result<T> = std::result::Result<T, Error>;

pub(crate) fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> Error {
    let what = what.into();
    move |cause| Error::Io { what, cause }
}

pub(crate) fn io_at(op: &str, path: &Path) -> impl FnOnce(std::io::Error) -> Error {
    io(format!("{op} {}", path.display()))
}

pub(crate) fn oci<E: std::fmt::Display>(what: impl Into<String>) -> impl FnOnce(E) -> Error {
    let what = what.into();
    move |e| Error::Oci {
        what,
        detail: e.to_string(),
    }
}
