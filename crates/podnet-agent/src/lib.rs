//! The node's networking from the Kubernetes API alone: the service proxy (kube-proxy's job) and
//! NetworkPolicy enforcement. It reads Services, EndpointSlices, Pods, Namespaces and NetworkPolicies
//! through any Kubernetes API with kube-rs and programs the network namespace of the calling process,
//! so it runs the same on the lab and on a real cluster; it never depends on podnet's runtime,
//! kubelet, lab or API server.

pub mod nft_text;
pub mod policy;
pub mod proxy;
