//! podnet-testkit
