//! podnet-types
