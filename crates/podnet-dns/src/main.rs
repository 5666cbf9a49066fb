//! `podnet-dns`: the cluster DNS server (see the library's docs and deploy/podnet-dns.yaml at the repository root).

use anyhow::{Context, Result};
use clap::Parser;
use podnet_dns::health::{self, Readiness};
use podnet_dns::{Forwarder, Handler, Index, ServeConfig, Zone, forward, objects, watch};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::Duration;

/// Kubernetes cluster DNS: Services, EndpointSlices and Pods answered as names under the cluster
/// domain; other names forwarded to the servers of a resolv.conf.
#[derive(Parser, Debug)]
#[command(name = "podnet-dns", version)]
struct Args {
    /// Address to serve DNS on, UDP and TCP.
    #[arg(long, default_value = "0.0.0.0:53")]
    listen: SocketAddr,
    /// The cluster domain.
    #[arg(long, default_value = "cluster.local")]
    domain: String,
    /// Where the upstream servers for other names are read from (`nameserver` lines).
    #[arg(long, default_value = "/etc/resolv.conf")]
    resolv_conf: PathBuf,
    /// Deadline of a forwarded query, all upstreams together, in milliseconds; SERVFAIL after it.
    #[arg(long, default_value_t = 2000)]
    forward_timeout_ms: u64,
    /// Liveness endpoint (`GET /health`).
    #[arg(long, default_value = "0.0.0.0:8080")]
    health_listen: SocketAddr,
    /// Readiness endpoint (`GET /ready`: 200 after the first full list of every watch).
    #[arg(long, default_value = "0.0.0.0:8181")]
    ready_listen: SocketAddr,
    /// Use this kubeconfig instead of the pod's service account (in-cluster configuration).
    #[arg(long)]
    kubeconfig: Option<PathBuf>,
    /// Serve a fixed set of Services, EndpointSlices and Pods from this JSON file (a List, as
    /// `kubectl get -o json` writes it) instead of watching the API.
    #[arg(long, conflicts_with = "kubeconfig")]
    objects: Option<PathBuf>,
    /// Worker threads (default: one per CPU).
    #[arg(long)]
    threads: Option<usize>,
    /// UDP sockets on the listen address (SO_REUSEPORT; default: one per worker thread).
    #[arg(long)]
    udp_sockets: Option<usize>,
    /// Serve UDP with hickory-server's stock loop instead of podnet's (for benchmarks).
    #[arg(long)]
    hickory_udp: bool,
}

fn main() -> Result<()> {
    let args = Args::parse();
    let threads = args
        .threads
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(2, |n| n.get()))
        .max(1);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads)
        .enable_all()
        .build()
        .context("start the async runtime")?;
    runtime.block_on(run(args, threads))
}

async fn run(args: Args, threads: usize) -> Result<()> {
    let zone = Zone::new(&args.domain)?;
    let index = Arc::new(RwLock::new(Index::new(zone.clone())));
    let ready = Arc::new(Readiness::default());

    let forwarder = match Forwarder::from_resolv_conf(
        &args.resolv_conf,
        Duration::from_millis(args.forward_timeout_ms),
    ) {
        Ok(f) => f,
        Err(e) => {
            // Without upstreams the cluster's names still resolve; the rest gets SERVFAIL.
            eprintln!(
                "podnet-dns: {e}; names outside {} get SERVFAIL",
                zone.name()
            );
            Forwarder::new(Vec::new(), forward::DEFAULT_TIMEOUT)
        }
    };

    let health = health::spawn(args.health_listen, ready.clone())
        .await
        .with_context(|| format!("listen for /health on {}", args.health_listen))?;
    let readiness = if args.ready_listen == args.health_listen {
        health
    } else {
        health::spawn(args.ready_listen, ready.clone())
            .await
            .with_context(|| format!("listen for /ready on {}", args.ready_listen))?
    };

    let watches = match &args.objects {
        Some(path) => {
            let n = objects::load(path, &mut index.write().expect("index lock"))?;
            eprintln!("podnet-dns: {n} objects from {}", path.display());
            ready.set_ready();
            None
        }
        None => {
            let client = watch::client(args.kubeconfig.as_deref())
                .await
                .context("connect to the API server")?;
            Some(tokio::spawn(watch::run(
                client,
                index.clone(),
                ready.clone(),
            )))
        }
    };

    let cfg = ServeConfig {
        listen: args.listen,
        udp_sockets: args.udp_sockets.unwrap_or(threads),
        hickory_udp: args.hickory_udp,
    };
    let mut server = podnet_dns::serve(Handler::new(index, forwarder.clone()), &cfg)
        .await
        .with_context(|| format!("serve DNS on {}", args.listen))?;
    let bound = server.addr();
    eprintln!(
        "podnet-dns: serving {} on {bound} (udp x{}, tcp), upstreams [{}], /health on {health}, /ready on {readiness}",
        zone.name(),
        cfg.udp_sockets,
        forwarder
            .upstreams()
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(", "),
    );

    tokio::select! {
        r = server.wait() => r.context("DNS server stopped")?,
        _ = tokio::signal::ctrl_c() => eprintln!("podnet-dns: interrupted"),
        _ = terminated() => eprintln!("podnet-dns: terminated"),
    }
    if let Some(w) = watches {
        w.abort();
    }
    Ok(())
}

async fn terminated() {
    match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(mut s) => {
            s.recv().await;
        }
        Err(_) => std::future::pending().await,
    }
}
