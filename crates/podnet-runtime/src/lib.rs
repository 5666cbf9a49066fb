//! The pod runtime adapter: what a kubelet-like node agent calls to run pods on one node.
//!
//! A pod is a **sandbox** plus **containers**:
//! - the sandbox is podnet's own pause process (`podnet-pause`) as PID 1 of a new PID namespace,
//!   holding the pod's new network, IPC and UTS namespaces (the node's network and UTS for
//!   `hostNetwork`), with its hostname set and `lo` up. Its network namespace is bind-mounted to
//!   `<netns_dir>/pn-<sandbox id>` (the path for `CNI_NETNS`; it outlives the pause process until the
//!   sandbox is removed); a tmpfs is every container's shared `/dev/shm`; the pod's `/etc/hosts`,
//!   `/etc/hostname` and `/etc/resolv.conf` live in the sandbox's state directory.
//! - each container is an OCI bundle ([`bundle`], built with `oci-spec`) run by system `runc` with a
//!   per-node `--root`, joining the sandbox's network, IPC and UTS namespaces by path (and its PID
//!   namespace with `shareProcessNamespace`), in cgroup `<cgroup_parent>/<pod uid>/<container id>`.
//!   A supervisor per container (`podnet-shim`, see [`shim`]) runs `runc create`, copies stdout and
//!   stderr into a CRI-format log ([`crilog`]) with rotation, and records the exit code. It is
//!   detached from the agent, so containers, logs and exit codes survive an agent restart.
//!
//! All state is files under [`RuntimeConfig::state_dir`] (JSON records, written atomically) plus
//! runc's own state: a restarted agent calls [`Runtime::list_sandboxes`] and
//! [`Runtime::list_containers`] and adopts what it finds; [`Runtime::remove_all`] (or
//! `remove_sandbox` per pod) cleans up after any crash. Every method blocks: call it from a thread or
//! `spawn_blocking`, never on an async worker; no method changes the calling thread's namespaces.
//!
//! ```no_run
//! use podnet_runtime::{ContainerSpec, EtcFiles, PodRef, Runtime, RuntimeConfig, SandboxSpec, etc};
//! use std::time::Duration;
//! # fn main() -> Result<(), podnet_runtime::Error> {
//! let node_dir = std::path::Path::new("/run/podnet/pn/nodes/node1");
//! let rt = Runtime::new(RuntimeConfig::under(node_dir, "/podnet/pn-node1"))?;
//! let pod = PodRef { namespace: "default".into(), name: "web-1".into(), uid: "7f0c...".into() };
//! let sb = rt.run_sandbox(&SandboxSpec {
//!     pod: pod.clone(), attempt: 0, hostname: "web-1".into(),
//!     host_network: false, share_pid: false, labels: Default::default(),
//! })?;
//! // CNI ADD with CNI_NETNS = sb.netns, then the pod's /etc files with its address:
//! rt.set_etc_files(&sb.id, &EtcFiles {
//!     hosts: etc::hosts(&["10.244.1.5".into()], "web-1", None, &[]),
//!     resolv_conf: etc::resolv_conf(&["10.96.0.10".into()], &["default.svc.cluster.local".into()], &["ndots:5".into()]),
//! })?;
//! let logs = std::path::Path::new("/var/log/pods/default_web-1_7f0c");
//! for (name, args) in [("httpd", vec!["httpd", "-f", "-p", "80"]), ("client", vec!["sleep", "3600"])] {
//!     let id = rt.create_container(&sb.id, &ContainerSpec {
//!         name: name.into(), attempt: 0, image: "busybox".into(),
//!         rootfs: "/var/lib/podnet/images/busybox/rootfs".into(), // mounted by the image store
//!         args: args.iter().map(|s| s.to_string()).collect(),
//!         env: vec![], cwd: String::new(), user: Default::default(), security: Default::default(),
//!         resources: Default::default(), mounts: vec![],
//!         log_path: podnet_runtime::crilog::container_log_path(logs, name, 0),
//!         log_max_bytes: 0, log_max_files: 0, stdin: false, stdin_once: false, tty: false, pid_namespace: None,
//!         labels: Default::default(),
//!     })?;
//!     rt.start_container(&id)?;
//! }
//! // ... later: kubectl delete
//! rt.stop_sandbox(&sb.id, Duration::from_secs(30))?;
//! // CNI DEL (the namespace file still exists), then:
//! rt.remove_sandbox(&sb.id)?;
//! # Ok(()) }
//! ```
//!
//! Errors name the object and the operation:
//! `create container httpd of pod default/web-1: runc create: ...`.

pub mod attach;
pub mod bundle;
pub mod cgroups;
mod config;
pub mod crilog;
mod error;
pub mod etc;
mod exec;
pub mod proc;
pub mod records;
mod runc;
mod runtime;
mod sandbox;
pub mod shim;
mod spec;

pub use config::{NETNS_SUBDIR, RuntimeConfig, netns_name, sibling_binary};
pub use error::{Error, Result};
pub use exec::ExecProcess;
pub use records::{ContainerRecord, ExitRecord, SandboxRecord};
pub use runc::RuncState;
pub use runtime::{ContainerState, ContainerStatus, Runtime, SandboxState, SandboxStatus};
pub use spec::{
    BindMount, ContainerSpec, EtcFiles, ExecSpec, PodRef, Resources, SandboxSpec, Security, User,
};
