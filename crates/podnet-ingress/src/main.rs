//! `podnet-ingress`: the ingress controller's process, as its Deployment runs it: the proxy on the
//! HTTP and HTTPS ports, fed by the watches of the API (in-cluster service account, or a kubeconfig).

use anyhow::{Context, Result};
use clap::Parser;
use podnet_ingress::config::{Backend, Certs, Snapshot};
use podnet_ingress::proxy::{Proxy, Timeouts};
use podnet_ingress::route::{HostMatch, PathMatch, RouteTable, Rule};
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
    /// Serve every request from this endpoint, without the API (benchmarks: the proxy alone).
    #[arg(long, conflicts_with_all = ["kubeconfig", "publish_service"])]
    backend: Option<SocketAddr>,
    /// Worker threads (default: the CPUs available).
    #[arg(long)]
    threads: Option<usize>,
}

fn main() -> Result<()> {
    let args = Args::parse();
    let workers = args
        .threads
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
        .max(1);
    // The controller's watches on the main thread; the proxy on `workers` threads of its own.
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("start the runtime")?
        .block_on(run(args, workers))
}

/// A listening socket with SO_REUSEPORT: each worker has its own on the same address, and the kernel
/// spreads connections over them (nginx's `reuseport`), so a connection lives on one thread.
fn listener(addr: SocketAddr) -> Result<std::net::TcpListener> {
    use socket2::{Domain, Socket, Type};
    let s = Socket::new(Domain::for_address(addr), Type::STREAM, None)
        .with_context(|| format!("socket for {addr}"))?;
    s.set_reuse_address(true)?;
    s.set_reuse_port(true)
        .with_context(|| format!("SO_REUSEPORT on {addr}"))?;
    s.bind(&addr.into())
        .with_context(|| format!("listen on {addr}"))?;
    s.listen(1024)
        .with_context(|| format!("listen on {addr}"))?;
    s.set_nonblocking(true)?;
    Ok(s.into())
}

/// Starts one proxy worker: a single-threaded runtime serving its own listeners.
fn start_worker(
    i: usize,
    rx: tokio::sync::watch::Receiver<Arc<Snapshot>>,
    timeouts: Timeouts,
    access_log: bool,
    http: std::net::TcpListener,
    https: std::net::TcpListener,
) -> Result<()> {
    std::thread::Builder::new()
        .name(format!("proxy-{i}"))
        .spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("a worker's runtime");
            rt.block_on(async move {
                let proxy = Proxy::new(rx, timeouts, access_log);
                let http = tokio::net::TcpListener::from_std(http).expect("a listener");
                let https = tokio::net::TcpListener::from_std(https).expect("a listener");
                tokio::spawn(proxy.clone().serve_http(http));
                proxy.serve_https(https).await;
            });
        })
        .context("start a proxy worker")?;
    Ok(())
}

async fn run(args: Args, workers: usize) -> Result<()> {
    let publish_service = match &args.publish_service {
        Some(s) => Some(
            s.split_once('/')
                .map(|(a, b)| (a.to_string(), b.to_string()))
                .with_context(|| format!("--publish-service {s:?}: want NAMESPACE/NAME"))?,
        ),
        None => None,
    };
    let (tx, rx) = tokio::sync::watch::channel(Arc::new(Snapshot::default()));
    if let Some(ep) = args.backend {
        let backend = Arc::new(Backend {
            name: format!("--backend {ep}"),
            endpoints: vec![ep],
        });
        let rule = Rule {
            host: HostMatch::Any,
            path: PathMatch::prefix("/"),
            backend,
        };
        tx.send_replace(Arc::new(Snapshot {
            routes: RouteTable::new(vec![rule], None),
            certs: Certs::default(),
        }));
    }
    let timeouts = Timeouts {
        connect: Duration::from_secs(args.connect_timeout),
        response: Duration::from_secs(args.read_timeout),
        ..Timeouts::default()
    };
    for i in 0..workers {
        start_worker(
            i,
            rx.clone(),
            timeouts,
            !args.no_access_log,
            listener(args.http_listen)?,
            listener(args.https_listen)?,
        )?;
    }
    eprintln!(
        "podnet-ingress: class {}, HTTP on {}, HTTPS on {}, {workers} workers",
        args.ingress_class, args.http_listen, args.https_listen
    );
    if args.backend.is_some() {
        std::future::pending::<()>().await;
    }
    let client = watch::client(args.kubeconfig.as_deref()).await?;
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
