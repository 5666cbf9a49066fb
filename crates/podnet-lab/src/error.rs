//! Lab errors: each names the object and the operation.

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{what}: {cause}")]
    Netlink {
        what: String,
        cause: podnet_netlink::Error,
    },
    #[error("{what}: {cause}")]
    Netns {
        what: String,
        cause: podnet_netns::Error,
    },
    #[error("{what}: {cause}")]
    Io { what: String, cause: std::io::Error },
    #[error(transparent)]
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
    move |cause| Error::Netlink { what, cause }
}

pub(crate) fn ns(what: impl Into<String>) -> impl FnOnce(podnet_netns::Error) -> Error {
    let what = what.into();
    move |cause| Error::Netns { what, cause }
}

pub(crate) fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> Error {
    let what = what.into();
    move |cause| Error::Io { what, cause }
}
