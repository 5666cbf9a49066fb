//! Turning adapter errors into CNI errors that name the object and the operation.

use podnet_types::cni::{CniError, ErrorCode};
use std::fmt::Display;

/// A kernel-side failure: `create veth pnv… for pod default/web-1: File exists`.
pub fn kernel(what: impl Display, err: impl Display) -> CniError {
    CniError::new(ErrorCode::Kernel, format!("{what}: {err}"))
}

pub fn io(what: impl Display, err: impl Display) -> CniError {
    CniError::new(ErrorCode::Io, format!("{what}: {err}"))
}

pub fn firewall(what: impl Display, err: impl Display) -> CniError {
    CniError::new(ErrorCode::Firewall, format!("{what}: {err}"))
}

pub fn check(what: impl Display) -> CniError {
    CniError::new(ErrorCode::CheckFailed, what.to_string())
}

/// IPAM store failures: a lock held too long is "try again later" (11), anything else is I/O (5).
pub fn store(what: impl Display, err: podnet_ipam::Error) -> CniError {
    let code = match err {
        podnet_ipam::Error::LockTimeout { .. } => ErrorCode::TryAgainLater,
        _ => ErrorCode::Io,
    };
    CniError::new(code, format!("{what}: {err}"))
}
