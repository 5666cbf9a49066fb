//! podnet-lab
