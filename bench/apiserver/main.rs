//! podnet API server benchmark: durable creates per second, Table list latency of 1k/5k/10k pods,
//! watch delivery latency with 100 watchers, and resident memory per 10k pods against the stored JSON.
//! Each figure is printed next to its target. The server runs in a child process (this binary re-executed
//! with `serve`), so its memory is measured alone; the built-in controllers are off, so every write in
//! the run is the benchmark's own.
//!
//! Usage: bench/apiserver/run.sh [--creates N] [--concurrency C]

use std::net::{Ipv4Addr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use kube::Client;
use kube::config::{KubeConfigOptions, Kubeconfig};
use serde_json::json;
use tokio::io::AsyncBufReadExt;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("serve") {
        serve(Path::new(&args[2]), args[3].parse().expect("port"));
        return;
    }
    let mut creates = 4000usize;
    let mut concurrency = 64usize;
    let mut i = 1;
    while i < args.len() {
        match args[i].as_str() {
            "--creates" => creates = args[i + 1].parse().expect("--creates N"),
            "--concurrency" => concurrency = args[i + 1].parse().expect("--concurrency C"),
            "--bench" => {
                i += 1;
                continue;
            }
            other => panic!("unknown argument {other}"),
        }
        i += 2;
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(run(creates, concurrency));
}

/// Child mode: the API server alone.
fn serve(dir: &Path, port: u16) {
    let names = podnet_apiserver::pki::server_names(
        Ipv4Addr::new(10, 100, 0, 1),
        Ipv4Addr::new(10, 96, 0, 1),
        &[],
    );
    let pki = podnet_apiserver::Pki::load_or_generate(&dir.join("pki"), &names).expect("pki");
    let mut cfg = podnet_apiserver::Config::new(dir.join("data"), pki);
    cfg.controllers = false;
    let l = TcpListener::bind(("127.0.0.1", port)).expect("bind");
    podnet_apiserver::run_blocking(cfg, vec![l]).expect("serve");
}

struct Server {
    child: Child,
    dir: PathBuf,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn rss_kib(pid: u32) -> u64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    s.lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

async fn client(dir: &Path, port: u16) -> Client {
    let pki = podnet_apiserver::Pki::load_or_generate(&dir.join("pki"), &[]).expect("pki");
    let text = podnet_apiserver::kubeconfig::render_yaml(
        &format!("https://127.0.0.1:{port}"),
        &pki.ca_cert_pem,
        &pki.token,
    );
    let kc = Kubeconfig::from_yaml(&text).unwrap();
    let cfg = kube::Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default())
        .await
        .unwrap();
    Client::try_from(cfg).unwrap()
}

async fn send(
    c: &Client,
    method: &str,
    path: &str,
    accept: &str,
    body: Option<Vec<u8>>,
) -> (u16, Vec<u8>) {
    let mut b = http::Request::builder()
        .method(method)
        .uri(path)
        .header("Accept", accept);
    if body.is_some() {
        b = b.header("Content-Type", "application/json");
    }
    let req = b.body(body.unwrap_or_default()).unwrap();
    let resp = c
        .send(req.map(kube::client::Body::from))
        .await
        .expect("request");
    let status = resp.status().as_u16();
    let bytes = http_body_util::BodyExt::collect(resp.into_body())
        .await
        .map(|b| b.to_bytes().to_vec())
        .unwrap_or_default();
    (status, bytes)
}

fn pod(ns: &str, name: &str) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": ns, "labels": {"app": "bench", "tier": "web", "release": "stable"},
            "annotations": {"podnet.dev/bench": "a typical annotation value"}},
        "spec": {"containers": [{"name": "web", "image": "nginx:1.27", "ports": [{"containerPort": 80, "name": "http"}],
            "env": [{"name": "MODE", "value": "bench"}, {"name": "LEVEL", "value": "3"}],
            "resources": {"requests": {"cpu": "100m", "memory": "64Mi"}}},
            {"name": "sidecar", "image": "busybox:1.36", "command": ["sh", "-c", "sleep 3600"]}]}
    }))
    .unwrap()
}

async fn create_many(c: &Client, ns: &str, prefix: &str, n: usize, concurrency: usize) -> Duration {
    let start = Instant::now();
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for _ in 0..concurrency {
        let c = c.clone();
        let next = next.clone();
        let ns = ns.to_string();
        let prefix = prefix.to_string();
        tasks.push(tokio::spawn(async move {
            loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                if i >= n {
                    return;
                }
                let (s, b) = send(
                    &c,
                    "POST",
                    &format!("/api/v1/namespaces/{ns}/pods"),
                    "application/json",
                    Some(pod(&ns, &format!("{prefix}-{i}"))),
                )
                .await;
                assert_eq!(s, 201, "{}", String::from_utf8_lossy(&b));
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    start.elapsed()
}

fn pct(v: &mut [f64], p: f64) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let idx = ((v.len() as f64 - 1.0) * p).round() as usize;
    v[idx]
}

const TABLE: &str = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json";

async fn run(creates: usize, concurrency: usize) {
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    // on the project's own disk (not a tmpfs), so that fsync is real
    let dir = std::env::current_dir()
        .unwrap()
        .join(format!("target/apiserver-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let child = Command::new(std::env::current_exe().unwrap())
        .args(["serve", dir.to_str().unwrap(), &port.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let server = Server {
        child,
        dir: dir.clone(),
    };
    let pid = server.child.id();
    // wait until it serves
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "server did not start");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let c = client(&dir, port).await;
    for ns in ["bench-creates", "bench-1k", "bench-5k", "bench-10k"] {
        let (s, _) = send(
            &c,
            "POST",
            "/api/v1/namespaces",
            "application/json",
            Some(
                serde_json::to_vec(
                    &json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}),
                )
                .unwrap(),
            ),
        )
        .await;
        assert_eq!(s, 201);
    }
    let rss_empty = rss_kib(pid);
    println!(
        "podnet API server benchmark (2-core VM, server in its own process, controllers off, data on {})",
        dir.display()
    );
    println!();

    // 1. durable creates per second
    let took = create_many(&c, "bench-creates", "c", creates, concurrency).await;
    let rate = creates as f64 / took.as_secs_f64();
    println!(
        "durable creates/s      {rate:>9.0}   target >= 2000    ({:.2}x)   [{creates} pods, {concurrency} concurrent clients over HTTPS, each acknowledged after its fsync'd group commit]",
        rate / 2000.0
    );

    // 2. Table lists
    create_many(&c, "bench-1k", "p", 1000, concurrency).await;
    create_many(&c, "bench-5k", "p", 5000, concurrency).await;
    create_many(&c, "bench-10k", "p", 10000, concurrency).await;
    for (ns, n, target) in [
        ("bench-1k", 1000, None),
        ("bench-5k", 5000, Some(150.0)),
        ("bench-10k", 10000, None),
    ] {
        let mut times = Vec::new();
        for _ in 0..7 {
            let t0 = Instant::now();
            let (s, body) = send(
                &c,
                "GET",
                &format!("/api/v1/namespaces/{ns}/pods"),
                TABLE,
                None,
            )
            .await;
            times.push(t0.elapsed().as_secs_f64() * 1000.0);
            assert_eq!(s, 200);
            let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
            assert_eq!(v["rows"].as_array().unwrap().len(), n);
        }
        let med = pct(&mut times, 0.5);
        match target {
            Some(t) => println!(
                "Table list {n:>5} pods  {med:>7.1} ms   target < {t:.0} ms   ({:.2}x of budget)   [median of 7]",
                med / t
            ),
            None => println!("Table list {n:>5} pods  {med:>7.1} ms   (no target)   [median of 7]"),
        }
    }

    // 3. watch delivery latency, 100 watchers
    let watchers = 100;
    let events = 200;
    let sent: Arc<std::sync::Mutex<std::collections::HashMap<String, Instant>>> = Arc::default();
    let (lat_tx, mut lat_rx) = tokio::sync::mpsc::unbounded_channel::<f64>();
    let (_, list) = send(
        &c,
        "GET",
        "/api/v1/namespaces/bench-creates/configmaps",
        "application/json",
        None,
    )
    .await;
    let rv =
        serde_json::from_slice::<serde_json::Value>(&list).unwrap()["metadata"]["resourceVersion"]
            .as_str()
            .unwrap()
            .to_string();
    let mut ready = Vec::new();
    for _ in 0..watchers {
        let c = c.clone();
        let sent = sent.clone();
        let lat_tx = lat_tx.clone();
        let rv = rv.clone();
        let (rtx, rrx) = tokio::sync::oneshot::channel::<()>();
        ready.push(rrx);
        tokio::spawn(async move {
            let req = http::Request::get(format!("/api/v1/namespaces/bench-creates/configmaps?watch=true&resourceVersion={rv}&timeoutSeconds=120")).body(Vec::new()).unwrap();
            let resp = c.send(req.map(kube::client::Body::from)).await.unwrap();
            let _ = rtx.send(());
            let stream = http_body_util::BodyStream::new(resp.into_body())
                .filter_map(|f| async move { f.ok().and_then(|f| f.into_data().ok()) })
                .map(Ok::<_, std::io::Error>);
            let reader = tokio_util_lines(Box::pin(stream));
            let mut lines = reader;
            let mut got = 0;
            while let Ok(Some(line)) = lines.next_line().await {
                let now = Instant::now();
                let v: serde_json::Value = serde_json::from_str(&line).unwrap();
                let name = v["object"]["metadata"]["name"]
                    .as_str()
                    .unwrap_or("")
                    .to_string();
                if let Some(t0) = sent.lock().unwrap().get(&name) {
                    let _ = lat_tx.send(now.duration_since(*t0).as_secs_f64() * 1000.0);
                }
                got += 1;
                if got == events {
                    return;
                }
            }
        });
    }
    drop(lat_tx);
    for r in ready {
        let _ = r.await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    for i in 0..events {
        let name = format!("w-{i}");
        sent.lock().unwrap().insert(name.clone(), Instant::now());
        let body = serde_json::to_vec(&json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, "data": {"k": "v"}})).unwrap();
        let (s, _) = send(
            &c,
            "POST",
            "/api/v1/namespaces/bench-creates/configmaps",
            "application/json",
            Some(body),
        )
        .await;
        assert_eq!(s, 201);
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let mut lats = Vec::new();
    while let Some(l) = lat_rx.recv().await {
        lats.push(l);
    }
    assert_eq!(
        lats.len(),
        watchers * events,
        "every watcher sees every event"
    );
    let p50 = pct(&mut lats, 0.5);
    let p99 = pct(&mut lats, 0.99);
    println!(
        "watch delivery p50     {p50:>7.2} ms   (no target)   [{watchers} watchers x {events} events, from the write request to each watcher's line]"
    );
    println!(
        "watch delivery p99     {p99:>7.2} ms   target < 10 ms    ({:.2}x of budget)",
        p99 / 10.0
    );

    // 4. memory per 10k pods vs the stored JSON
    let (_, all) = send(
        &c,
        "GET",
        "/api/v1/namespaces/bench-10k/pods",
        "application/json",
        None,
    )
    .await;
    let v: serde_json::Value = serde_json::from_slice(&all).unwrap();
    let json_bytes: usize = v["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| serde_json::to_vec(p).unwrap().len())
        .sum();
    let total_pods: usize = creates + 16000;
    let rss_now = rss_kib(pid);
    let per_10k = (rss_now.saturating_sub(rss_empty)) as f64 * 1024.0 * 10000.0 / total_pods as f64;
    let ratio = per_10k / json_bytes as f64;
    println!(
        "memory per 10k pods    {:>7.1} MiB   stored JSON {:.1} MiB   ratio {ratio:.2}x   target < 3x   [RSS {} -> {} MiB for {total_pods} pods + {events} configmaps]",
        per_10k / 1048576.0,
        json_bytes as f64 / 1048576.0,
        rss_empty / 1024,
        rss_now / 1024
    );
    drop(server);
}

/// Lines of a byte stream.
fn tokio_util_lines(
    s: std::pin::Pin<
        Box<dyn futures_util::Stream<Item = Result<bytes::Bytes, std::io::Error>> + Send>,
    >,
) -> tokio::io::Lines<tokio::io::BufReader<StreamReader>> {
    tokio::io::BufReader::new(StreamReader {
        inner: s,
        buf: bytes::Bytes::new(),
    })
    .lines()
}

struct StreamReader {
    inner: std::pin::Pin<
        Box<dyn futures_util::Stream<Item = Result<bytes::Bytes, std::io::Error>> + Send>,
    >,
    buf: bytes::Bytes,
}

impl tokio::io::AsyncRead for StreamReader {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        out: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        use std::task::Poll;
        loop {
            if !self.buf.is_empty() {
                let n = self.buf.len().min(out.remaining());
                out.put_slice(&self.buf[..n]);
                let rest = self.buf.split_off(n);
                self.buf = rest;
                return Poll::Ready(Ok(()));
            }
            match self.inner.as_mut().poll_next(cx) {
                Poll::Ready(Some(Ok(b))) => self.buf = b,
                Poll::Ready(Some(Err(e))) => return Poll::Ready(Err(e)),
                Poll::Ready(None) => return Poll::Ready(Ok(())),
                Poll::Pending => return Poll::Pending,
            }
        }
    }
}
