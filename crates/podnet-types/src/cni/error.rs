//! The CNI error result: a numeric code from the spec plus a message, printed as JSON on stdout.

use serde::{Deserialize, Serialize};
use std::fmt;

/// Error codes reserved by the spec (0-99) and podnet's own (100+).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorCode {
    IncompatibleVersion,
    UnsupportedField,
    UnknownContainer,
    InvalidEnvironment,
    Io,
    Decode,
    InvalidConfig,
    TryAgainLater,
    NotAvailable,
    NotAvailableLimitedConnectivity,
    /// 100: a kernel operation (netlink, sysctl, namespace) failed.
    Kernel,
    /// 101: the address pool has no free address.
    PoolExhausted,
    /// 102: the firewall (nftables) could not be programmed.
    Firewall,
    /// 103: a delegated plugin (e.g. an external IPAM) failed.
    Delegate,
    /// 104: CHECK found the attachment not as ADD left it.
    CheckFailed,
    /// 105: the interface name asked for already exists in the container.
    InterfaceExists,
    /// A code passed through unchanged from a delegated plugin.
    Other(u32),
}

impl ErrorCode {
    /// The code for a number received from another plugin: a known one maps to its name.
    pub fn from_code(n: u32) -> Self {
        const KNOWN: [ErrorCode; 16] = [
            ErrorCode::IncompatibleVersion,
            ErrorCode::UnsupportedField,
            ErrorCode::UnknownContainer,
            ErrorCode::InvalidEnvironment,
            ErrorCode::Io,
            ErrorCode::Decode,
            ErrorCode::InvalidConfig,
            ErrorCode::TryAgainLater,
            ErrorCode::NotAvailable,
            ErrorCode::NotAvailableLimitedConnectivity,
            ErrorCode::Kernel,
            ErrorCode::PoolExhausted,
            ErrorCode::Firewall,
            ErrorCode::Delegate,
            ErrorCode::CheckFailed,
            ErrorCode::InterfaceExists,
        ];
        KNOWN
            .into_iter()
            .find(|c| c.code() == n)
            .unwrap_or(ErrorCode::Other(n))
    }

    pub fn code(self) -> u32 {
        match self {
            Self::IncompatibleVersion => 1,
            Self::UnsupportedField => 2,
            Self::UnknownContainer => 3,
            Self::InvalidEnvironment => 4,
            Self::Io => 5,
            Self::Decode => 6,
            Self::InvalidConfig => 7,
            Self::TryAgainLater => 11,
            Self::NotAvailable => 50,
            Self::NotAvailableLimitedConnectivity => 51,
            Self::Kernel => 100,
            Self::PoolExhausted => 101,
            Self::Firewall => 102,
            Self::Delegate => 103,
            Self::CheckFailed => 104,
            Self::InterfaceExists => 105,
            Self::Other(n) => n,
        }
    }

    /// The short `msg` the spec shows for each code.
    pub fn summary(self) -> &'static str {
        match self {
            Self::IncompatibleVersion => "Incompatible CNI version",
            Self::UnsupportedField => "Unsupported field in network configuration",
            Self::UnknownContainer => "Container unknown or does not exist",
            Self::InvalidEnvironment => "Invalid necessary environment variables",
            Self::Io => "I/O failure",
            Self::Decode => "Failed to decode content",
            Self::InvalidConfig => "Invalid network config",
            Self::TryAgainLater => "Try again later",
            Self::NotAvailable => "The plugin is not available",
            Self::NotAvailableLimitedConnectivity => {
                "The plugin is not available, and existing containers may have limited connectivity"
            }
            Self::Kernel => "Kernel operation failed",
            Self::PoolExhausted => "No free address in the pool",
            Self::Firewall => "Firewall programming failed",
            Self::Delegate => "Delegated plugin failed",
            Self::CheckFailed => "Attachment check failed",
            Self::InterfaceExists => "Interface already exists",
            Self::Other(_) => "Error",
        }
    }
}

/// A CNI error as the spec shapes it. `msg` is the precise, object-naming message; `details` carries
/// the underlying cause when there is one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CniError {
    pub code: ErrorCode,
    pub msg: String,
    pub details: String,
}

impl CniError {
    pub fn new(code: ErrorCode, msg: impl Into<String>) -> Self {
        Self {
            code,
            msg: msg.into(),
            details: String::new(),
        }
    }

    pub fn with_details(mut self, details: impl Into<String>) -> Self {
        self.details = details.into();
        self
    }

    /// The JSON error object for stdout, in the version the runtime asked for.
    pub fn to_json(&self, cni_version: &str) -> String {
        let wire = WireError {
            cni_version: cni_version.to_string(),
            code: self.code.code(),
            msg: self.msg.clone(),
            details: self.details.clone(),
        };
        serde_json::to_string(&wire).expect("error serializes")
    }
}

impl fmt::Display for CniError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} (code {})", self.msg, self.code.code())?;
        if !self.details.is_empty() {
            write!(f, ": {}", self.details)?;
        }
        Ok(())
    }
}

impl std::error::Error for CniError {}

/// The error object on the wire; also what a delegating plugin reads back from a delegate.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct WireError {
    #[serde(rename = "cniVersion", default)]
    pub cni_version: String,
    pub code: u32,
    #[serde(default)]
    pub msg: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub details: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_json_has_the_spec_shape() {
        let e = CniError::new(ErrorCode::InvalidConfig, "ipam.subnet: \"x\" is not a CIDR")
            .with_details("invalid IP address syntax");
        let v: serde_json::Value = serde_json::from_str(&e.to_json("1.1.0")).unwrap();
        assert_eq!(v["cniVersion"], "1.1.0");
        assert_eq!(v["code"], 7);
        assert_eq!(v["msg"], "ipam.subnet: \"x\" is not a CIDR");
        assert_eq!(v["details"], "invalid IP address syntax");
    }

    #[test]
    fn codes_match_the_spec_table() {
        let spec = [
            (ErrorCode::IncompatibleVersion, 1),
            (ErrorCode::UnsupportedField, 2),
            (ErrorCode::UnknownContainer, 3),
            (ErrorCode::InvalidEnvironment, 4),
            (ErrorCode::Io, 5),
            (ErrorCode::Decode, 6),
            (ErrorCode::InvalidConfig, 7),
            (ErrorCode::TryAgainLater, 11),
            (ErrorCode::NotAvailable, 50),
            (ErrorCode::NotAvailableLimitedConnectivity, 51),
        ];
        for (code, n) in spec {
            assert_eq!(code.code(), n);
        }
        assert!(ErrorCode::Kernel.code() >= 100);
    }
}
