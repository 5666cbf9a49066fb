//! podnet's kubelet: what a lab node agent does to run the pods the API server assigns to its node.
//!
//! The pure parts (no IO) come first and are unit-tested on their own:
//! - [`process`]: a container's command line, environment, working directory and user, from the pod spec
//!   and the image's configuration, with kubelet's rules;
//! - [`dns`]: the pod's `/etc/hosts`, `/etc/hostname` and `/etc/resolv.conf`;
//! - [`plan`]: what to do next for a pod (kubelet's computePodActions);
//! - [`backoff`]: the CrashLoopBackOff and image pull back-off timers;
//! - [`status`]: the pod status kubelet reports (phase, conditions, container statuses, QoS);
//! - [`volume`]: pod volumes on disk (emptyDir, configMap, secret, downwardAPI, projected, hostPath);
//! - [`probe`]: probe timing, thresholds and the network checks;
//! - [`cni`]: CNI plugin chains run with libcni's semantics (cached results, GC).

pub mod agent;
pub mod backoff;
pub mod cni;
pub mod config;
pub mod dns;
pub mod events;
pub mod images;
pub mod inroot;
pub mod node;
pub mod plan;
pub mod pods;
pub mod probe;
pub mod process;
pub mod server;
pub mod status;
pub mod trace;
pub mod volume;
