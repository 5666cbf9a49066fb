//! Lab errors: each names the object and the operation.

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{what}: {source}")]
    Netlink {
        what: String,
        source: podnet_netlink::Error,
    },
    #[error("{what}: {source}")]
    Netns {
        what: String,
        source: podnet_netns::Error,
    },
    #[error("{what}: {source}")]
    Io {
        what: String,
        source: std::io::Error,
    },
    #[error("{0}")]
    Plan(#[from] podnet_types::lab::PlanError),
    #[error("{0}")]
    Invalid(String),
    #[error("no lab named {0:?} is running (start one with `podnet up`)")]
    NotRunning(String),
    #[error("{0}")]
    Other(String),
}

pub type Result<T> = std::result::Result<T, Error>;

pub(crate) fn nl(what: impl Into<String>) -> impl FnOnce(podnet_netlink::Error) -> Error {
    let what = what.into();
    move |source| Error::Netlink { what, source }
}

pub(crate) fn ns(what: impl Into<String>) -> impl FnOnce(podnet_netns::Error) -> Error {
    let what = what.into();
    move |source| Error::Netns { what, source }
}

pub(crate) fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> Error {
    let what = what.into();
    move |source| Error::Io { what, source }
}
