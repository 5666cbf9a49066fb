//! `podnet apiserver`: the control plane on its own, blocking (tests, benchmarks, standalone use).

use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::path::PathBuf;

use anyhow::{Context, bail};
use podnet_apiserver::{Cidr, Config, Pki, kubeconfig, pki};

#[derive(clap::Args)]
pub struct Args {
    /// Where the store (and, by default, the PKI) lives.
    #[arg(long)]
    data_dir: PathBuf,
    /// Address to serve on (repeatable).
    #[arg(long = "listen", default_value = "127.0.0.1:6443")]
    listen: Vec<SocketAddr>,
    /// CA, serving certificate and token; generated when missing. Default: DATA_DIR/pki.
    #[arg(long)]
    pki_dir: Option<PathBuf>,
    #[arg(long, default_value = "10.96.0.0/12")]
    service_cidr: String,
    #[arg(long, default_value = "30000-32767")]
    node_port_range: String,
    /// The address nodes reach the API server on (the `kubernetes` service endpoint).
    #[arg(long, default_value = "10.100.0.1")]
    advertise_address: Ipv4Addr,
    /// Serve the bare API without the built-in controllers.
    #[arg(long)]
    no_controllers: bool,
    /// Also write a kubeconfig for this server to this file (replacing it).
    #[arg(long)]
    kubeconfig_out: Option<PathBuf>,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let service_cidr = Cidr::parse(&args.service_cidr)
        .with_context(|| format!("invalid --service-cidr {}", args.service_cidr))?;
    let (lo, hi) = args
        .node_port_range
        .split_once('-')
        .and_then(|(a, b)| Some((a.parse::<u16>().ok()?, b.parse::<u16>().ok()?)))
        .filter(|(a, b)| a <= b)
        .with_context(|| format!("invalid --node-port-range {}", args.node_port_range))?;
    if args.listen.is_empty() {
        bail!("at least one --listen address is needed");
    }
    let pki_dir = args
        .pki_dir
        .clone()
        .unwrap_or_else(|| args.data_dir.join("pki"));
    let extra: Vec<String> = args.listen.iter().map(|a| a.ip().to_string()).collect();
    let first = service_cidr
        .nth(1)
        .context("the service CIDR is too small")?;
    let names = pki::server_names(args.advertise_address, first, &extra);
    let material = Pki::load_or_generate(&pki_dir, &names)
        .with_context(|| format!("PKI in {}", pki_dir.display()))?;
    let listeners = args
        .listen
        .iter()
        .map(|a| TcpListener::bind(a).with_context(|| format!("listen on {a}")))
        .collect::<anyhow::Result<Vec<_>>>()?;
    if let Some(path) = &args.kubeconfig_out {
        let addr = listeners[0].local_addr()?;
        // it carries the bearer token: owner-only, like the kubeconfig `podnet up` merges into
        kubeconfig::write_standalone(
            path,
            &format!("https://{addr}"),
            &material.ca_cert_pem,
            &material.token,
        )
        .with_context(|| format!("write {}", path.display()))?;
    }
    let mut config = Config::new(args.data_dir.clone(), material);
    config.service_cidr = service_cidr;
    config.node_port_range = (lo, hi);
    config.advertise_address = args.advertise_address;
    config.controllers = !args.no_controllers;
    for l in &listeners {
        eprintln!("podnet apiserver: serving on https://{}", l.local_addr()?);
    }
    podnet_apiserver::run_blocking(config, listeners).context("API server")?;
    Ok(())
}
