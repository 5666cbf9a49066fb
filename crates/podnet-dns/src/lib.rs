//! podnet's cluster DNS, the job CoreDNS does in Kubernetes clusters.
//!
//! - [`name`]: what a query name means in the cluster zone (pure; untrusted input).
//! - [`index`]: Services, EndpointSlices and Pods reduced to records, and the answers (pure).
//! - [`server`]: a hickory-server request handler answering from the index; hickory's TCP loop and
//!   podnet's own UDP loops (one per SO_REUSEPORT socket) around it.
//! - [`forward`]: names outside the cluster asked of resolv.conf's servers, within a deadline.
//! - [`watch`]: the index fed by watches through the API (in-cluster or a kubeconfig).
//! - [`objects`]: the index fed from a JSON file instead (tests, benchmarks).
//! - [`health`]: `/health` and `/ready` as CoreDNS serves them.
//!
//! [`MANIFEST`] deploys it as clusters deploy CoreDNS: a Deployment of two replicas in kube-system
//! behind the `kube-dns` Service at 10.96.0.10.

pub mod forward;
pub mod health;
pub mod index;
pub mod name;
pub mod objects;
pub mod server;
mod udp;
pub mod watch;

pub use forward::Forwarder;
pub use index::{Answer, Index, Lookup, Rcode, Rec};
pub use name::{QName, Zone};
pub use server::{Handler, Running, ServeConfig, serve};

/// The Kubernetes objects that run podnet-dns in a cluster (ServiceAccount, ClusterRole and its
/// binding, Deployment, the `kube-dns` Service), as one multi-document YAML.
pub const MANIFEST: &str = include_str!("../../../deploy/podnet-dns.yaml");

/// The image the manifest runs (built by `podnet image build-substitutes`).
pub const IMAGE: &str = "localhost/podnet/dns:latest";

/// The `kube-dns` Service's address, as kubelet's `clusterDNS` names it.
pub const CLUSTER_DNS_IP: &str = "10.96.0.10";
