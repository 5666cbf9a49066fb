//! `podnet-ingress`: the ingress controller's process, as its Deployment runs it: the proxy on the
//! HTTP and HTTPS ports, fed by the watches of the API (in-cluster service account, or a kubeconfig).

use anyhow::{Context, Result};
use clap::Parser;
use podnet_ingress::config::Snapshot;
use podnet_ingress::proxy::{Proxy, Timeouts};
use podnet_ingress::watch::{self, Options};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

#[derive(Parser)]
#[command(
    version,
    about = "podnet's ingress controller: Ingress rules served by a reverse proxy"
)]
struct Args {
    /// Cleartext HTTP listener.
    #[arg(long, default_value = "0.0.0.0:80")]
    http_listen: SocketAddr,
    /// HTTPS listener (certificates from the Ingresses' TLS Secrets, by SNI).
    #[arg(long, default_value = "0.0.0.0:443")]
    https_listen: SocketAddr,
    /// The IngressClass served (its spec.controller must be podnet.io/ingress-controller).
    #[arg(long, default_value = "podnet")]
    ingress_class: String,
    /// The controller's LoadBalancer Service (NAMESPACE/NAME): its address goes into the
    /// Ingresses' status.loadBalancer.
    #[arg(long)]
    publish_service: Option<String>,
    /// Seconds to wait for an endpoint's response headers.
    #[arg(long, default_value_t = 60)]
    read_timeout: u64,
    /// Seconds to wait for a connection to one endpoint before trying the next.
    #[arg(long, default_value_t = 5)]
    connect_timeout: u64,
    /// No access log on stdout.
    #[arg(long)]
    no_access_log: bool,
    /// Use this kubeconfig instead of the pod's service account.
    #[arg(long)]
    kubeconfig: Option<PathBuf>,
    /// Worker threads (default: the CPUs available).
    #[arg(long)]
    threads: Option<usize>,
}

fn main() -> Result<()> {
    let args = Args::parse();
    let mut rt = tokio::runtime::Builder::new_multi_thread();
    if let Some(n) = args.threads {
        rt.worker_threads(n.max(1));
    }
    rt.enable_all()
        .build()
        .context("start the runtime")?
        .block_on(run(args))
}

async fn run(args: Args) -> Result<()> {
    let publish_service = match &args.publish_service {
        Some(s) => Some(
            s.split_once('/')
                .map(|(a, b)| (a.to_string(), b.to_string()))
                .with_context(|| format!("--publish-service {s:?}: want NAMESPACE/NAME"))?,
        ),
        None => None,
    };
    let client = watch::client(args.kubeconfig.as_deref()).await?;
    let (tx, rx) = tokio::sync::watch::channel(Arc::new(Snapshot::default()));
    let timeouts = Timeouts {
        connect: Duration::from_secs(args.connect_timeout),
        response: Duration::from_secs(args.read_timeout),
        ..Timeouts::default()
    };
    let proxy = Proxy::new(rx, timeouts, !args.no_access_log);
    let http = tokio::net::TcpListener::bind(args.http_listen)
        .await
        .with_context(|| format!("listen on {}", args.http_listen))?;
    let https = tokio::net::TcpListener::bind(args.https_listen)
        .await
        .with_context(|| format!("listen on {}", args.https_listen))?;
    eprintln!(
        "podnet-ingress: class {}, HTTP on {}, HTTPS on {}",
        args.ingress_class, args.http_listen, args.https_listen
    );
    tokio::spawn(proxy.clone().serve_http(http));
    tokio::spawn(proxy.serve_https(https));
    watch::run(
        client,
        Options {
            class: args.ingress_class,
            publish_service,
        },
        tx,
    )
    .await;
    anyhow::bail!("the API watches ended")
}
