//! Network (and UTS) namespaces: open them by path, create and persist them, and work inside them the
//! only safe way: on a dedicated OS thread that enters the namespace and then ends.
//!
//! A netlink socket belongs to the namespace of the thread that created it; [`NetNs::netlink`] hands
//! back such a socket, usable from any thread afterwards.

mod error;
mod find;
mod netns;
pub mod persist;
pub mod sysctl;

pub use error::{Error, Result};
pub use netns::{NetNs, NsId};
pub use persist::NsKind;
