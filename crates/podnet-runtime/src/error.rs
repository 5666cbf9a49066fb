//! Errors name the object and the operation:
//! `start container nginx of pod default/web-1: runc start: container not running`.

use std::io;

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A system call or file operation failed.
    #[error("{what}: {cause}")]
    Io { what: String, cause: io::Error },
    /// `runc` (or the supervisor running it) reported a failure; `message` is runc's own words.
    #[error("{what}: {message}")]
    Runc { what: String, message: String },
    /// Namespace handling failed (open, enter, persist).
    #[error("{what}: {cause}")]
    Netns {
        what: String,
        cause: podnet_netns::Error,
    },
    /// The request itself is wrong (unknown id, bad name, missing field).
    #[error("{0}")]
    Invalid(String),
    /// No sandbox or container with that id on this node.
    #[error("{kind} {id} not found")]
    NotFound { kind: &'static str, id: String },
    /// Something did not happen within its bound (a process did not stop, a pty never arrived).
    #[error("{0}: timed out")]
    Timeout(String),
    /// Several best-effort steps failed; each error is kept.
    #[error("{what}: {} error(s): {}", errors.len(), join(errors))]
    Many { what: String, errors: Vec<Error> },
}

fn join(errors: &[Error]) -> String {
    errors
        .iter()
        .map(|e| e.to_string())
        .collect::<Vec<_>>()
        .join("; ")
}

impl Error {
    pub fn io(what: impl Into<String>, cause: io::Error) -> Error {
        Error::Io {
            what: what.into(),
            cause,
        }
    }

    pub fn sys(what: impl Into<String>, errno: nix::errno::Errno) -> Error {
        Error::io(what, io::Error::from_raw_os_error(errno as i32))
    }

    /// Prefixes the operation with its object: `start container x of pod ns/name: <self>`.
    pub fn context(self, what: impl std::fmt::Display) -> Error {
        match self {
            Error::Io { what: w, cause } => Error::Io {
                what: format!("{what}: {w}"),
                cause,
            },
            Error::Runc { what: w, message } => Error::Runc {
                what: format!("{what}: {w}"),
                message,
            },
            Error::Netns { what: w, cause } => Error::Netns {
                what: format!("{what}: {w}"),
                cause,
            },
            Error::Invalid(m) => Error::Invalid(format!("{what}: {m}")),
            Error::Timeout(m) => Error::Timeout(format!("{what}: {m}")),
            Error::Many { what: w, errors } => Error::Many {
                what: format!("{what}: {w}"),
                errors,
            },
            e @ Error::NotFound { .. } => Error::Invalid(format!("{what}: {e}")),
        }
    }

    /// Whether this is "no such sandbox/container" (also after [`Error::context`] wrapped it).
    pub fn is_not_found(&self) -> bool {
        matches!(self, Error::NotFound { .. })
    }
}

/// Collects the errors of a best-effort sequence and turns them into one result at the end.
#[derive(Debug, Default)]
pub struct Errors(pub Vec<Error>);

impl Errors {
    pub fn push(&mut self, r: Result<()>) {
        if let Err(e) = r {
            self.0.push(e);
        }
    }

    pub fn into_result(self, what: impl Into<String>) -> Result<()> {
        match self.0.len() {
            0 => Ok(()),
            _ => Err(Error::Many {
                what: what.into(),
                errors: self.0,
            }),
        }
    }
}
