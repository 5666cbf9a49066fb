//! Denied packets: decoded from NFLOG, kept in a bounded log file, counted per policy by the table's
//! counters, and reported readably (`podnet policy drops`).
//!
//! Every denied packet is counted (per policy by `drop-in-NS/POLICY` / `drop-eg-...` counters, per
//! pod by its chain's last rule); the log gets at most 10 a second per pod (the rule's limit), which
//! is enough to see what is being denied without letting a flood fill a disk.

use super::model::Direction;
use super::nflog::Logged;
use serde::{Deserialize, Serialize};
use std::io::{self, BufRead, Write};
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

/// The drop log's file name in a node agent's state directory.
pub const LOG_FILE: &str = "policy-drops.log";

/// The log file's size before it is rotated to `<file>.1` (one old file is kept).
pub const DEFAULT_MAX_BYTES: u64 = 1 << 20;

/// One denied packet.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Drop {
    /// Seconds since the epoch (UTC).
    pub time: u64,
    pub direction: String,
    /// The pod of this node whose policies denied it.
    pub pod: String,
    /// The policies isolating that pod for the direction (none of them allowed the packet).
    pub policies: Vec<String>,
    pub protocol: String,
    pub source: String,
    pub destination: String,
}

/// Reads a logged packet written by a pod chain's log rule.
pub fn decode(l: &Logged, time: u64) -> Option<Drop> {
    let rest = l.prefix.strip_prefix("podnet-policy ")?;
    let mut words = rest.splitn(4, ' ');
    let direction = match words.next()? {
        "ingress" => Direction::Ingress,
        "egress" => Direction::Egress,
        _ => return None,
    };
    let pod = words.next()?.to_string();
    if words.next()? != "by" {
        return None;
    }
    let ns = pod.split('/').next().unwrap_or_default();
    let policies = words
        .next()
        .unwrap_or_default()
        .split(',')
        .filter(|p| !p.is_empty())
        .map(|p| {
            if p.contains('/') || p.ends_with("...") {
                p.to_string()
            } else {
                format!("{ns}/{p}")
            }
        })
        .collect();
    let (protocol, source, destination) = match ipv4(&l.payload) {
        Some(h) => h,
        None => ("?".into(), "?".into(), "?".into()),
    };
    Some(Drop {
        time,
        direction: direction.word().to_string(),
        pod,
        policies,
        protocol,
        source,
        destination,
    })
}

/// Protocol, source and destination (with ports for TCP, UDP and SCTP) of an IPv4 packet.
fn ipv4(p: &[u8]) -> Option<(String, String, String)> {
    if p.len() < 20 || p[0] >> 4 != 4 {
        return None;
    }
    let ihl = usize::from(p[0] & 0x0f) * 4;
    let proto = p[9];
    let src = Ipv4Addr::new(p[12], p[13], p[14], p[15]);
    let dst = Ipv4Addr::new(p[16], p[17], p[18], p[19]);
    let name = match proto {
        1 => "ICMP".to_string(),
        6 => "TCP".into(),
        17 => "UDP".into(),
        132 => "SCTP".into(),
        n => format!("IP/{n}"),
    };
    let ports = matches!(proto, 6 | 17 | 132)
        .then(|| p.get(ihl..ihl + 4))
        .flatten()
        .map(|l4| {
            (
                u16::from_be_bytes([l4[0], l4[1]]),
                u16::from_be_bytes([l4[2], l4[3]]),
            )
        });
    Some(match ports {
        Some((s, d)) => (name, format!("{src}:{s}"), format!("{dst}:{d}")),
        None => (name, src.to_string(), dst.to_string()),
    })
}

/// An append-only log of drops, one JSON object a line, rotated at a size.
pub struct DropLog {
    path: PathBuf,
    max_bytes: u64,
}

impl DropLog {
    pub fn new(path: impl Into<PathBuf>, max_bytes: u64) -> DropLog {
        DropLog {
            path: path.into(),
            max_bytes,
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn append(&self, drops: &[Drop]) -> io::Result<()> {
        if drops.is_empty() {
            return Ok(());
        }
        if let Some(dir) = self.path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        if std::fs::metadata(&self.path).is_ok_and(|m| m.len() >= self.max_bytes) {
            std::fs::rename(&self.path, rotated(&self.path))?;
        }
        let mut text = String::new();
        for d in drops {
            text.push_str(&serde_json::to_string(d).map_err(io::Error::other)?);
            text.push('\n');
        }
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)?;
        f.write_all(text.as_bytes())
    }
}

fn rotated(path: &Path) -> PathBuf {
    let mut s = path.as_os_str().to_os_string();
    s.push(".1");
    PathBuf::from(s)
}

/// The last `limit` drops of a log (its rotated file first); lines that do not read are skipped.
pub fn read(path: &Path, limit: usize) -> io::Result<Vec<Drop>> {
    let mut out = Vec::new();
    for p in [rotated(path), path.to_path_buf()] {
        let f = match std::fs::File::open(&p) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e),
        };
        for line in io::BufReader::new(f).lines() {
            if let Ok(d) = serde_json::from_str::<Drop>(&line?) {
                out.push(d);
            }
        }
    }
    let skip = out.len().saturating_sub(limit);
    Ok(out.split_off(skip))
}

/// A per-policy drop counter of the table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Counter {
    pub direction: String,
    /// `namespace/name`, or the counter's own name when it was shortened.
    pub policy: String,
    pub packets: u64,
    pub bytes: u64,
}

/// Reads `nft -j list counters table inet <table>`.
pub fn counters(json: &str) -> Vec<Counter> {
    let Ok(v) = serde_json::from_str::<serde_json::Value>(json) else {
        return Vec::new();
    };
    let mut out: Vec<Counter> = v["nftables"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|o| {
            let c = o.get("counter")?;
            let name = c["name"].as_str()?;
            let (direction, policy) = if let Some(p) = name.strip_prefix("drop-in-") {
                ("ingress", p)
            } else if let Some(p) = name.strip_prefix("drop-eg-") {
                ("egress", p)
            } else {
                return None;
            };
            Some(Counter {
                direction: direction.into(),
                policy: policy.to_string(),
                packets: c["packets"].as_u64().unwrap_or(0),
                bytes: c["bytes"].as_u64().unwrap_or(0),
            })
        })
        .collect();
    out.sort_by(|a, b| (&a.policy, &a.direction).cmp(&(&b.policy, &b.direction)));
    out
}

/// `YYYY-MM-DDTHH:MM:SSZ` for seconds since the epoch.
pub fn utc(secs: u64) -> String {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    // Howard Hinnant's civil-from-days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// The report of one node: its counters, then its most recent drops.
pub fn report(node: &str, counters: &[Counter], drops: &[Drop]) -> String {
    let mut out = String::new();
    let pw = counters
        .iter()
        .map(|c| c.policy.len())
        .chain([6])
        .max()
        .unwrap_or(6);
    out.push_str(&format!("NODE {node}: packets denied, by policy\n"));
    if counters.is_empty() {
        out.push_str("  (no policy selects a pod of this node)\n");
    } else {
        out.push_str(&format!(
            "  {:<pw$}  {:<9}  {:>8}  {:>10}\n",
            "POLICY", "DIRECTION", "PACKETS", "BYTES"
        ));
        for c in counters {
            out.push_str(&format!(
                "  {:<pw$}  {:<9}  {:>8}  {:>10}\n",
                c.policy, c.direction, c.packets, c.bytes
            ));
        }
    }
    out.push_str(&format!(
        "NODE {node}: recent denied packets (oldest first)\n"
    ));
    if drops.is_empty() {
        out.push_str("  (none logged)\n");
        return out;
    }
    let podw = drops
        .iter()
        .map(|d| d.pod.len())
        .chain([3])
        .max()
        .unwrap_or(3);
    out.push_str(&format!(
        "  {:<20}  {:<9}  {:<podw$}  {:<5}  {:<21}  {:<21}  POLICIES\n",
        "TIME", "DIRECTION", "POD", "PROTO", "SOURCE", "DESTINATION"
    ));
    for d in drops {
        out.push_str(&format!(
            "  {:<20}  {:<9}  {:<podw$}  {:<5}  {:<21}  {:<21}  {}\n",
            utc(d.time),
            d.direction,
            d.pod,
            d.protocol,
            d.source,
            d.destination,
            d.policies.join(",")
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tcp_packet(src: [u8; 4], sport: u16, dst: [u8; 4], dport: u16) -> Vec<u8> {
        let mut p = vec![0x45, 0, 0, 40, 0, 0, 0x40, 0, 64, 6, 0, 0];
        p.extend_from_slice(&src);
        p.extend_from_slice(&dst);
        p.extend_from_slice(&sport.to_be_bytes());
        p.extend_from_slice(&dport.to_be_bytes());
        p.extend_from_slice(&[0; 16]);
        p
    }

    #[test]
    fn logged_packets_read_as_drops() {
        let l = Logged {
            prefix: "podnet-policy ingress x/a by deny-all,other/p".into(),
            payload: tcp_packet([10, 244, 2, 3], 41234, [10, 244, 1, 5], 80),
        };
        let d = decode(&l, 0).unwrap();
        assert_eq!(d.direction, "ingress");
        assert_eq!(d.pod, "x/a");
        assert_eq!(d.policies, vec!["x/deny-all", "other/p"]);
        assert_eq!(d.protocol, "TCP");
        assert_eq!(d.source, "10.244.2.3:41234");
        assert_eq!(d.destination, "10.244.1.5:80");
        let mut icmp = tcp_packet([1, 2, 3, 4], 0, [5, 6, 7, 8], 0);
        icmp[9] = 1;
        let d = decode(
            &Logged {
                prefix: "podnet-policy egress y/b by p".into(),
                payload: icmp,
            },
            0,
        )
        .unwrap();
        assert_eq!(
            (d.protocol.as_str(), d.source.as_str()),
            ("ICMP", "1.2.3.4")
        );
        assert!(
            decode(
                &Logged {
                    prefix: "something else".into(),
                    payload: vec![]
                },
                0
            )
            .is_none()
        );
    }

    #[test]
    fn times_read_as_utc() {
        assert_eq!(utc(0), "1970-01-01T00:00:00Z");
        assert_eq!(utc(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(utc(1_767_225_599), "2025-12-31T23:59:59Z");
    }

    #[test]
    fn the_log_rotates_and_reads_back_in_order() {
        let dir = std::env::temp_dir().join(format!("pnt-drops-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let log = DropLog::new(dir.join("drops.log"), 300);
        let d = |i: u64| Drop {
            time: i,
            direction: "ingress".into(),
            pod: "x/a".into(),
            policies: vec!["x/p".into()],
            protocol: "TCP".into(),
            source: "10.0.0.1:1".into(),
            destination: "10.0.0.2:80".into(),
        };
        for i in 0..10 {
            log.append(&[d(i)]).unwrap();
        }
        let all = read(log.path(), 100).unwrap();
        assert!(all.len() < 10, "the oldest rotated away");
        assert_eq!(all.last().unwrap().time, 9);
        assert!(all.windows(2).all(|w| w[0].time < w[1].time));
        assert_eq!(read(log.path(), 2).unwrap().len(), 2);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn counters_and_report() {
        let json = r#"{"nftables": [{"metainfo": {}}, {"counter": {"family": "inet", "name": "drop-in-x/deny-all", "table": "podnet-policy", "handle": 3, "packets": 12, "bytes": 720}},
            {"counter": {"family": "inet", "name": "drop-eg-x/deny-all", "table": "podnet-policy", "handle": 4, "packets": 0, "bytes": 0}}]}"#;
        let c = counters(json);
        assert_eq!(c.len(), 2);
        assert_eq!(c[1].policy, "x/deny-all");
        assert_eq!((c[1].direction.as_str(), c[1].packets), ("ingress", 12));
        let text = report("node1", &c, &[]);
        assert!(
            text.contains("x/deny-all  ingress          12         720"),
            "{text}"
        );
        assert!(text.contains("(none logged)"));
    }
}
