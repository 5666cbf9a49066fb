use std::path::Path;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{what}: {cause}")]
    Io { what: String, cause: std::io::Error },
    #[error("{0} is not a network namespace")]
    NotANamespace(String),
    #[error("enter namespace: {0}")]
    Setns(String),
    #[error("work inside namespace {0} panicked")]
    Panicked(String),
    #[error("{what}: {cause}")]
    Netlink {
        what: String,
        cause: podnet_netlink::Error,
    },
    #[error("{what}: {errno}")]
    Sys { what: String, errno: String },
}

impl Error {
    pub fn io(what: String, cause: std::io::Error) -> Self {
        Error::Io { what, cause }
    }

    pub fn sys(what: impl Into<String>, errno: nix::errno::Errno) -> Self {
        Error::Sys {
            what: what.into(),
            errno: errno.desc().to_string(),
        }
    }

    /// Adds which namespace a setns failure concerns.
    pub(crate) fn in_namespace(self, path: &Path) -> Self {
        match self {
            Error::Setns(e) => Error::Setns(format!("{}: {e}", path.display())),
            other => other,
        }
    }
}

pub type Result<T> = std::result::Result<T, Error>;
