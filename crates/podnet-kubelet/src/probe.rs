//! Readiness, liveness and startup probes as kubelet runs them: when a probe is due (initial delay,
//! period), how results count (success and failure thresholds), and the network checks (httpGet,
//! tcpSocket) made from the node, which is where kubelet probes from. Exec probes run through the
//! runtime; the caller passes their outcome in.

use k8s_openapi::api::core::v1::{Container, Probe};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    Startup,
    Readiness,
    Liveness,
}

impl Kind {
    /// kubelet's word for it in events: `Liveness probe failed: ...`.
    pub fn word(self) -> &'static str {
        match self {
            Kind::Startup => "Startup",
            Kind::Readiness => "Readiness",
            Kind::Liveness => "Liveness",
        }
    }
}

/// One probe's timings and thresholds, with kubelet's defaults.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Timing {
    pub initial_delay: Duration,
    pub period: Duration,
    pub timeout: Duration,
    pub success_threshold: u32,
    pub failure_threshold: u32,
}

impl Timing {
    pub fn of(p: &Probe) -> Timing {
        let secs = |v: Option<i32>, d: i32| Duration::from_secs(v.unwrap_or(d).max(0) as u64);
        Timing {
            initial_delay: secs(p.initial_delay_seconds, 0),
            period: secs(p.period_seconds, 10).max(Duration::from_secs(1)),
            timeout: secs(p.timeout_seconds, 1).max(Duration::from_secs(1)),
            success_threshold: p.success_threshold.unwrap_or(1).max(1) as u32,
            failure_threshold: p.failure_threshold.unwrap_or(3).max(1) as u32,
        }
    }
}

/// The verdict of a probe's results so far.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Not enough results yet (readiness starts as not ready; liveness as alive).
    Unknown,
    Success,
    Failure,
}

/// The state of one probe of one container instance.
#[derive(Debug, Clone)]
pub struct Tracker {
    pub kind: Kind,
    pub timing: Timing,
    next: Instant,
    successes: u32,
    failures: u32,
    pub verdict: Verdict,
}

impl Tracker {
    pub fn new(kind: Kind, probe: &Probe, container_started: Instant) -> Tracker {
        let timing = Timing::of(probe);
        Tracker {
            kind,
            next: container_started + timing.initial_delay,
            timing,
            successes: 0,
            failures: 0,
            verdict: Verdict::Unknown,
        }
    }

    pub fn due(&self, now: Instant) -> bool {
        now >= self.next
    }

    pub fn next_due(&self) -> Instant {
        self.next
    }

    /// Records one result; returns the verdict when it changed.
    pub fn record(&mut self, ok: bool, now: Instant) -> Option<Verdict> {
        self.next = now + self.timing.period;
        let before = self.verdict;
        if ok {
            self.failures = 0;
            self.successes += 1;
            if self.successes >= self.timing.success_threshold {
                self.verdict = Verdict::Success;
            }
        } else {
            self.successes = 0;
            self.failures += 1;
            if self.failures >= self.timing.failure_threshold {
                self.verdict = Verdict::Failure;
                // A failed liveness or startup probe restarts the container; the counting starts over
                // for the next instance.
                if self.kind != Kind::Readiness {
                    self.failures = 0;
                }
            }
        }
        (before != self.verdict).then_some(self.verdict)
    }
}

/// What a probe checks, resolved against the container (named ports) and the pod's address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Check {
    Http {
        addr: SocketAddr,
        host: String,
        path: String,
        headers: Vec<(String, String)>,
        https: bool,
    },
    Tcp(SocketAddr),
    Exec(Vec<String>),
    Grpc(SocketAddr),
}

/// Resolves a probe's handler. `pod_ip` is where httpGet and tcpSocket connect unless `host` is set.
pub fn check_of(probe: &Probe, container: &Container, pod_ip: &str) -> Result<Check, String> {
    let port = |p: &IntOrString| -> Result<u16, String> {
        match p {
            IntOrString::Int(n) => u16::try_from(*n).map_err(|_| format!("invalid port {n}")),
            IntOrString::String(name) => container
                .ports
                .iter()
                .flatten()
                .find(|cp| cp.name.as_deref() == Some(name.as_str()))
                .and_then(|cp| u16::try_from(cp.container_port).ok())
                .ok_or_else(|| {
                    format!(
                        "port {name:?} is not a named port of container {}",
                        container.name
                    )
                }),
        }
    };
    let addr = |host: Option<&str>, p: u16| -> Result<SocketAddr, String> {
        let h = host.filter(|h| !h.is_empty()).unwrap_or(pod_ip);
        format!("{h}:{p}")
            .parse()
            .map_err(|_| format!("probe host {h:?} must be an IP address"))
    };
    if let Some(h) = &probe.http_get {
        let p = port(&h.port)?;
        return Ok(Check::Http {
            addr: addr(h.host.as_deref(), p)?,
            host: h
                .host
                .clone()
                .filter(|h| !h.is_empty())
                .unwrap_or_else(|| pod_ip.to_string()),
            path: h
                .path
                .clone()
                .filter(|p| !p.is_empty())
                .unwrap_or_else(|| "/".into()),
            headers: h
                .http_headers
                .iter()
                .flatten()
                .map(|hh| (hh.name.clone(), hh.value.clone()))
                .collect(),
            https: h.scheme.as_deref() == Some("HTTPS"),
        });
    }
    if let Some(t) = &probe.tcp_socket {
        return Ok(Check::Tcp(addr(t.host.as_deref(), port(&t.port)?)?));
    }
    if let Some(e) = &probe.exec {
        return Ok(Check::Exec(e.command.clone().unwrap_or_default()));
    }
    if let Some(g) = &probe.grpc {
        return Ok(Check::Grpc(addr(
            None,
            u16::try_from(g.port).map_err(|_| "invalid port".to_string())?,
        )?));
    }
    Err("probe has no handler".into())
}

/// A tcpSocket probe: the port accepts a connection within the timeout.
pub fn tcp(addr: SocketAddr, timeout: Duration) -> Result<(), String> {
    TcpStream::connect_timeout(&addr, timeout)
        .map(drop)
        .map_err(|e| format!("dial tcp {addr}: {e}"))
}

/// An httpGet probe over HTTP/1.1: a status from 200 to 399 within the timeout is success (kubelet's
/// rule). Only the status line is read.
pub fn http(
    addr: SocketAddr,
    host: &str,
    path: &str,
    headers: &[(String, String)],
    timeout: Duration,
) -> Result<(), String> {
    let url = format!("http://{addr}{path}");
    let fail = |e: std::io::Error| format!("Get \"{url}\": {e}");
    let mut s = TcpStream::connect_timeout(&addr, timeout)
        .map_err(|e| format!("Get \"{url}\": dial tcp {addr}: connect: {e}"))?;
    s.set_read_timeout(Some(timeout)).map_err(fail)?;
    s.set_write_timeout(Some(timeout)).map_err(fail)?;
    let mut req = format!("GET {path} HTTP/1.1\r\n");
    let has = |n: &str| headers.iter().any(|(k, _)| k.eq_ignore_ascii_case(n));
    if !has("host") {
        req.push_str(&format!("Host: {host}:{}\r\n", addr.port()));
    }
    if !has("user-agent") {
        req.push_str("User-Agent: kube-probe/1.35\r\n");
    }
    if !has("accept") {
        req.push_str("Accept: */*\r\n");
    }
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("Connection: close\r\n\r\n");
    s.write_all(req.as_bytes()).map_err(fail)?;
    let mut buf = [0u8; 256];
    let mut got = Vec::new();
    let deadline = Instant::now() + timeout;
    while !got.windows(2).any(|w| w == b"\r\n") && got.len() < 4096 {
        if Instant::now() >= deadline {
            return Err(format!(
                "Get \"{url}\": context deadline exceeded (Client.Timeout exceeded while awaiting headers)"
            ));
        }
        let n = s.read(&mut buf).map_err(|e| {
            if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) {
                format!("Get \"{url}\": context deadline exceeded (Client.Timeout exceeded while awaiting headers)")
            } else {
                fail(e)
            }
        })?;
        if n == 0 {
            break;
        }
        got.extend_from_slice(&buf[..n]);
    }
    let line = String::from_utf8_lossy(&got);
    let code: u16 = line
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| format!("Get \"{url}\": malformed HTTP response"))?;
    if (200..400).contains(&code) {
        Ok(())
    } else {
        Err(format!("HTTP probe failed with statuscode: {code}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn probe(v: serde_json::Value) -> Probe {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn thresholds_decide_the_verdict() {
        let t0 = Instant::now();
        let p = probe(
            json!({"exec": {"command": ["true"]}, "initialDelaySeconds": 5, "periodSeconds": 2, "failureThreshold": 2, "successThreshold": 2}),
        );
        let mut tr = Tracker::new(Kind::Readiness, &p, t0);
        assert!(!tr.due(t0));
        assert!(tr.due(t0 + Duration::from_secs(5)));
        assert_eq!(tr.record(true, t0), None);
        assert_eq!(tr.record(true, t0), Some(Verdict::Success));
        assert_eq!(tr.record(false, t0), None);
        assert_eq!(tr.record(false, t0), Some(Verdict::Failure));
        assert!(!tr.due(t0 + Duration::from_secs(1)));
        let mut live = Tracker::new(
            Kind::Liveness,
            &probe(json!({"exec": {"command": ["x"]}})),
            t0,
        );
        assert_eq!(live.timing.failure_threshold, 3);
        assert_eq!(live.record(false, t0), None);
        assert_eq!(live.record(false, t0), None);
        assert_eq!(live.record(false, t0), Some(Verdict::Failure));
    }

    #[test]
    fn handlers_resolve_named_ports() {
        let c: Container = serde_json::from_value(
            json!({"name": "web", "ports": [{"name": "http", "containerPort": 8080}]}),
        )
        .unwrap();
        let p = probe(
            json!({"httpGet": {"path": "/healthz", "port": "http", "httpHeaders": [{"name": "X-A", "value": "1"}]}}),
        );
        assert_eq!(
            check_of(&p, &c, "10.244.1.5").unwrap(),
            Check::Http {
                addr: "10.244.1.5:8080".parse().unwrap(),
                host: "10.244.1.5".into(),
                path: "/healthz".into(),
                headers: vec![("X-A".into(), "1".into())],
                https: false
            }
        );
        let bad = probe(json!({"tcpSocket": {"port": "nope"}}));
        assert!(
            check_of(&bad, &c, "10.244.1.5")
                .unwrap_err()
                .contains("not a named port")
        );
    }

    #[test]
    fn http_probes_read_the_status() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let server = std::thread::spawn(move || {
            for status in ["200 OK", "302 Found", "500 Internal Server Error"] {
                let (mut s, _) = listener.accept().unwrap();
                let mut buf = [0u8; 1024];
                let n = s.read(&mut buf).unwrap();
                assert!(String::from_utf8_lossy(&buf[..n]).contains("User-Agent: kube-probe/1.35"));
                s.write_all(format!("HTTP/1.1 {status}\r\nContent-Length: 0\r\n\r\n").as_bytes())
                    .unwrap();
            }
        });
        let t = Duration::from_secs(2);
        assert!(http(addr, "127.0.0.1", "/", &[], t).is_ok());
        assert!(http(addr, "127.0.0.1", "/", &[], t).is_ok());
        assert_eq!(
            http(addr, "127.0.0.1", "/", &[], t).unwrap_err(),
            "HTTP probe failed with statuscode: 500"
        );
        server.join().unwrap();
        let closed = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        assert!(tcp(closed, t).is_err());
    }
}
