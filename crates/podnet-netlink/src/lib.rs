//! podnet-netlink
