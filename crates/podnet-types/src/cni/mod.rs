//! The CNI protocol as data: versions, requests, configuration, results and errors (spec 1.1).

pub mod config;
pub mod error;
pub mod fields;
pub mod request;
pub mod result;
pub mod version;

pub use config::{
    Attachment, BuiltinIpam, Ipam, IpamRoute, NetConf, PortMapping, Protocol, RuntimeConfig,
};
pub use error::{CniError, ErrorCode};
pub use request::{Command, Request};
pub use result::{CniResult, Dns, Interface, IpConfig, Route};
pub use version::CniVersion;
