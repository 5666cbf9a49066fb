//! Test-only: podnet-cni under a real Kubernetes runtime. Runs Debian's containerd with its CRI plugin
//! inside a test network namespace and drives it over CRI the way kubelet does, with a client
//! generated from cri-api's `api.proto` (v1).
//!
//! - [`cri`]: the generated CRI v1 client and [`connect`] over the runtime's unix socket;
//! - [`image`]: a tiny OCI image built offline from busybox-static (sandbox and HTTP server alike);
//! - [`containerd`]: one containerd instance per test, with its own root, state, sockets, runc root
//!   and CNI directories, removed (processes, mounts, directories) when the guard drops.
//!
//! This crate carries the gRPC stack (tonic, prost, tokio) so that podnet-cni itself never does. Its
//! binary `podnet-cni-critest` is podnet-cni's executable (same entry point, [`podnet_cni::exec`]),
//! built here so the tests always put the current plugin code under containerd.

pub mod containerd;
pub mod image;

/// The CRI v1 API (`runtime.v1`), client side only.
pub mod cri {
    #![allow(clippy::all, clippy::pedantic, missing_docs)]
    tonic::include_proto!("runtime.v1");
}

use hyper_util::rt::TokioIo;
use std::path::{Path, PathBuf};
use tonic::transport::{Channel, Endpoint, Uri};

/// A CRI runtime client connected to the unix socket at `socket`.
pub async fn connect(
    socket: &Path,
) -> Result<cri::runtime_service_client::RuntimeServiceClient<Channel>, tonic::transport::Error> {
    let socket: PathBuf = socket.to_path_buf();
    // The URI is required by the API but unused: every connection goes to the socket.
    let channel = Endpoint::from_static("http://[::1]:1")
        .connect_with_connector(tower::service_fn(move |_: Uri| {
            let socket = socket.clone();
            async move {
                Ok::<_, std::io::Error>(TokioIo::new(
                    tokio::net::UnixStream::connect(socket).await?,
                ))
            }
        }))
        .await?;
    Ok(cri::runtime_service_client::RuntimeServiceClient::new(
        channel,
    ))
}
