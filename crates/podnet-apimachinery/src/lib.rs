//! Kubernetes API machinery for podnet's control plane. Pure: no IO, no clocks, no threads.
//!
//! Objects are `serde_json::Value`s throughout; the schemas of the served types come from k8s-openapi
//! (see [`schema`]) and drive decoding, OpenAPI and patching.

pub mod cron;
pub mod defaults;
pub mod discovery;
pub mod limitrange;
pub mod loadbalancer;
pub mod object;
pub mod openapi;
pub mod patch;
pub mod protobuf;
pub mod quota;
pub mod rbac;
pub mod resources;
pub mod scheduling;
pub mod schema;
pub mod selector;
pub mod status;
pub mod table;
pub mod time;
pub mod validation;
pub mod workloads;
pub mod yaml;

pub use status::{ApiError, FieldError, ObjRef};
