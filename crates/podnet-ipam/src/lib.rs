//! podnet-ipam
