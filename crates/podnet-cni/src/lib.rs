//! podnet-cni
