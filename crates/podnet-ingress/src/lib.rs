//! podnet's ingress controller.
//!
//! - [`route`]: the routing model (hosts and paths with Kubernetes' precedence), pure and
//!   independent of the Ingress object, so Gateway API routes can feed it too;
//! - [`config`]: one whole configuration (routes, backends with their endpoints, certificates),
//!   swapped atomically;
//! - [`proxy`], [`upstream`], [`tls`]: the HTTP/1.1 + HTTP/2 reverse proxy on hyper and rustls;
//! - [`ingress`]: Ingress, IngressClass, Services, EndpointSlices and Secrets into a configuration
//!   (pure); [`watch`]: the kube-rs watches that feed it and the Ingress status.

pub mod config;
pub mod ingress;
pub mod proxy;
pub mod route;
pub mod tls;
pub mod upstream;
pub mod watch;
