//! podnet-netns
