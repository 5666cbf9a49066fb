//! podnet's control plane: a Kubernetes-compatible API server that the real kubectl and helm drive.
//!
//! Embedding: build a [`Config`] (data directory, [`Pki`], service CIDR, NodePort range, advertise
//! address, node connector), bind the listeners yourself (the lab binds 127.0.0.1:6443 in the machine's
//! namespace and 10.100.0.1:6443 inside the router's namespace; the server knows nothing about
//! namespaces) and call [`start`], which runs the server on its own threads and returns a
//! [`ServerHandle`]; [`run_blocking`] is the same for a CLI, until SIGINT/SIGTERM. See the crate README
//! for the design.

pub mod alloc;
pub mod auth;
pub mod authz;
mod bootstrap;
pub mod config;
pub mod controllers;
pub mod http;
pub mod kubeconfig;
pub mod node;
pub mod pki;
pub mod registry;
mod server;
pub mod spdy;
pub mod util;

use std::net::TcpListener;
use std::sync::Arc;

use tokio::sync::watch;

pub use config::{Cidr, Config};
pub use node::Dialer;
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
    #[error("{0}")]
    Auth(#[from] auth::JwtError),
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
/// runtime of its own, in its own threads. Returns once the server is ready. Safe to call from any
/// context, including from inside another tokio runtime (it blocks the calling thread until ready).
pub fn start(config: Config, listeners: Vec<TcpListener>) -> Result<ServerHandle, StartError> {
    let store = podnet_apistore::Store::open(&config.data_dir.join("store")).map_err(|e| {
        StartError::Store {
            path: config.data_dir.display().to_string(),
            source: e,
        }
    })?;
    let tls = Arc::new(config.pki.server_config()?);
    for l in &listeners {
        l.set_nonblocking(true).map_err(StartError::Listener)?;
    }
    let controllers = config.controllers;
    let authenticator = auth::Authenticator::new(&config)?;
    let api = registry::Api::new(store.clone(), Arc::new(config));
    let (tx, rx) = watch::channel(false);
    let (ready_tx, ready_rx) = std::sync::mpsc::channel::<Result<(), StartError>>();
    let api2 = api.clone();
    let thread = std::thread::Builder::new()
        .name("apiserver-main".into())
        .spawn(move || {
            let rt = match tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .thread_name("apiserver")
                .enable_all()
                .build()
            {
                Ok(rt) => rt,
                Err(e) => {
                    let _ = ready_tx.send(Err(StartError::Runtime(e)));
                    return;
                }
            };
            rt.block_on(async move {
                if let Err(e) = bootstrap::run(&api2).await {
                    let _ = ready_tx.send(Err(StartError::Bootstrap(e.message)));
                    return;
                }
                let mut tokio_listeners = Vec::new();
                for l in listeners {
                    match tokio::net::TcpListener::from_std(l) {
                        Ok(l) => tokio_listeners.push(l),
                        Err(e) => {
                            let _ = ready_tx.send(Err(StartError::Listener(e)));
                            return;
                        }
                    }
                }
                let router = http::router(http::AppState::new(api2.clone(), authenticator));
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
                let _ = ready_tx.send(Ok(()));
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
    let ready = ready_rx.recv().unwrap_or_else(|_| {
        Err(StartError::Bootstrap(
            "the server thread ended before it was ready".into(),
        ))
    });
    let handle = ServerHandle {
        shutdown: tx,
        thread: Some(thread),
        store,
        api,
    };
    ready.map(|()| handle)
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
