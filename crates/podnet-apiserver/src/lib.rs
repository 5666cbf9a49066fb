//! podnet's control plane: a Kubernetes-compatible API server that the real kubectl and helm drive.
//!
//! Embedding: build a [`Config`] (data directory, [`Pki`], service CIDR, NodePort range, advertise
//! address, node connector), bind the listeners yourself (the lab binds 127.0.0.1:6443 in the machine's
//! namespace and 10.100.0.1:6443 inside the router's namespace; the server knows nothing about
//! namespaces) and call [`start`], which runs the server on its own threads and returns a
//! [`ServerHandle`]; [`run_blocking`] is the same for a CLI, until SIGINT/SIGTERM. See the crate README
//! for the design.

pub mod alloc;
mod bootstrap;
pub mod config;
pub mod controllers;
pub mod http;
pub mod kubeconfig;
pub mod node;
pub mod pki;
pub mod registry;
mod server;
pub mod util;

use std::net::TcpListener;
use std::sync::Arc;

use tokio::sync::watch;

pub use config::{Cidr, Config};
pub use node::{HttpsNodeConnector, NodeConnector};
pub use pki::Pki;

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("open store in {path}: {source}")]
    Store {
        path: String,
        source: podnet_apistore::StoreError,
    },
    #[error("TLS: {0}")]
    Tls(#[from] pki::PkiError),
    #[error("listener: {0}")]
    Listener(std::io::Error),
    #[error("runtime: {0}")]
    Runtime(std::io::Error),
    #[error("bootstrap: {0}")]
    Bootstrap(String),
}

/// A running server.
pub struct ServerHandle {
    shutdown: watch::Sender<bool>,
    thread: Option<std::thread::JoinHandle<()>>,
    store: podnet_apistore::Store,
    api: Arc<registry::Api>,
}

impl ServerHandle {
    /// Stops accepting, ends open connections, stops the controllers and closes the store (after
    /// committing what was accepted). Blocks until done.
    pub fn shutdown(mut self) {
        self.stop();
    }

    fn stop(&mut self) {
        let _ = self.shutdown.send(true);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        self.store.close();
    }

    /// The object operations, for in-process callers (tests, the lab).
    pub fn api(&self) -> Arc<registry::Api> {
        self.api.clone()
    }
}

impl Drop for ServerHandle {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Opens the store, bootstraps the cluster objects and serves on `listeners` (already bound) on a
/// runtime of its own. Returns once the server is ready.
pub fn start(config: Config, listeners: Vec<TcpListener>) -> Result<ServerHandle, StartError> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("apiserver")
        .enable_all()
        .build()
        .map_err(StartError::Runtime)?;
    let store = podnet_apistore::Store::open(&config.data_dir.join("store")).map_err(|e| {
        StartError::Store {
            path: config.data_dir.display().to_string(),
            source: e,
        }
    })?;
    let tls = Arc::new(config.pki.server_config()?);
    let controllers = config.controllers;
    let api = registry::Api::new(store.clone(), Arc::new(config));
    rt.block_on(bootstrap::run(&api))
        .map_err(|e| StartError::Bootstrap(e.message))?;
    let mut tokio_listeners = Vec::new();
    {
        let _guard = rt.enter();
        for l in listeners {
            l.set_nonblocking(true).map_err(StartError::Listener)?;
            tokio_listeners
                .push(tokio::net::TcpListener::from_std(l).map_err(StartError::Listener)?);
        }
    }
    let (tx, rx) = watch::channel(false);
    let state = http::AppState::new(api.clone());
    let router = http::router(state);
    let api2 = api.clone();
    let thread = std::thread::Builder::new()
        .name("apiserver-main".into())
        .spawn(move || {
            rt.block_on(async move {
                let mut tasks = Vec::new();
                if controllers {
                    tasks.extend(controllers::spawn_all(api2, rx.clone()));
                }
                for l in tokio_listeners {
                    tasks.push(tokio::spawn(server::serve(
                        l,
                        tls.clone(),
                        router.clone(),
                        rx.clone(),
                    )));
                }
                let mut rx = rx;
                while !*rx.borrow() {
                    if rx.changed().await.is_err() {
                        break;
                    }
                }
                for t in tasks {
                    let _ = tokio::time::timeout(std::time::Duration::from_secs(6), t).await;
                }
            });
            rt.shutdown_timeout(std::time::Duration::from_secs(2));
        })
        .map_err(StartError::Runtime)?;
    Ok(ServerHandle {
        shutdown: tx,
        thread: Some(thread),
        store,
        api,
    })
}

/// [`start`], then block until SIGINT or SIGTERM, then shut down.
pub fn run_blocking(config: Config, listeners: Vec<TcpListener>) -> Result<(), StartError> {
    let handle = start(config, listeners)?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(StartError::Runtime)?;
    rt.block_on(async {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .map_err(StartError::Runtime)?;
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
        Ok::<(), StartError>(())
    })?;
    handle.shutdown();
    Ok(())
}
