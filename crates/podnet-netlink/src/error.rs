//! Netlink errors: the kernel's errno with its extended-ack message, or a local socket/decoding problem.
//! Callers add the object and operation (`create veth pnv… for pod default/web-1: File exists`).

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The kernel refused the request.
    #[error("{}", describe_kernel(*errno, message.as_deref()))]
    Kernel { errno: i32, message: Option<String> },
    /// The netlink socket itself failed.
    #[error("netlink socket: {0}")]
    Io(std::io::Error),
    /// The kernel sent something we could not read.
    #[error("netlink decode: {0}")]
    Decode(String),
}

impl Error {
    /// The kernel's errno, when the kernel refused.
    pub fn errno(&self) -> Option<i32> {
        match self {
            Error::Kernel { errno, .. } => Some(*errno),
            Error::Io(e) => e.raw_os_error(),
            Error::Decode(_) => None,
        }
    }

    pub fn is_exists(&self) -> bool {
        self.errno() == Some(libc::EEXIST)
    }

    /// The object is not there: no such device, address, route or entry.
    pub fn is_not_found(&self) -> bool {
        matches!(
            self.errno(),
            Some(libc::ENODEV | libc::ENOENT | libc::ESRCH | libc::EADDRNOTAVAIL)
        )
    }
}

/// `strerror` text without Rust's "(os error N)" suffix, plus the kernel's own explanation if it gave one.
fn describe_kernel(errno: i32, message: Option<&str>) -> String {
    let text = strerror(errno);
    match message {
        Some(m) if !m.is_empty() => format!("{text} ({m})"),
        _ => text,
    }
}

pub fn strerror(errno: i32) -> String {
    let full = std::io::Error::from_raw_os_error(errno).to_string();
    match full.rfind(" (os error") {
        Some(i) => full[..i].to_string(),
        None => full,
    }
}

pub type Result<T> = std::result::Result<T, Error>;

impl From<std::io::Error> for Error {
    fn from(e: std::io::Error) -> Self {
        Error::Io(e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kernel_errors_read_like_strerror() {
        let e = Error::Kernel {
            errno: libc::EEXIST,
            message: None,
        };
        assert_eq!(e.to_string(), "File exists");
        assert!(e.is_exists());
        let e = Error::Kernel {
            errno: libc::EINVAL,
            message: Some("Unknown device type".into()),
        };
        assert_eq!(e.to_string(), "Invalid argument (Unknown device type)");
        assert!(
            Error::Kernel {
                errno: libc::ENODEV,
                message: None
            }
            .is_not_found()
        );
    }
}
