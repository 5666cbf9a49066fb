//! Registry endpoints per registry host, configured as containerd's `hosts.toml` is.
//!
//! `<dir>/<registry-host>/hosts.toml` (also `<host>_<port>_` and the `_default` fallback, as containerd
//! looks them up) holds an optional `server = "URL"` (the upstream) and `[host."URL"]` tables with
//! `capabilities = ["pull", "resolve"]`. Hosts are tried in file order, the server last. Without a file
//! the upstream is the registry itself (`docker.io` means `https://registry-1.docker.io`).
//!
//! Plain HTTP is used only for loopback hosts and hosts listed insecure: any other `http://` endpoint is
//! refused by name rather than silently downgraded.

use std::net::IpAddr;
use std::path::{Path, PathBuf};

/// One place to fetch from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// `https` or `http`.
    pub scheme: String,
    /// Host as dialled (no brackets for IPv6).
    pub host: String,
    pub port: u16,
    /// Path prefix before `/<repository>/...`: `/v2` unless `override_path` says otherwise.
    pub path: String,
    /// May resolve tags to digests.
    pub resolve: bool,
    /// May serve blobs and manifests by digest.
    pub pull: bool,
    /// A mirror (anything but the upstream server): requests carry `?ns=<registry>` as containerd's do.
    pub mirror: bool,
}

impl Endpoint {
    /// `https://host:port` (brackets around IPv6 hosts).
    pub fn origin(&self) -> String {
        let host = if self.host.contains(':') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        };
        let default_port = if self.scheme == "https" { 443 } else { 80 };
        if self.port == default_port {
            format!("{}://{host}", self.scheme)
        } else {
            format!("{}://{host}:{}", self.scheme, self.port)
        }
    }
}

impl std::fmt::Display for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}{}", self.origin(), self.path)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum HostsError {
    #[error("read {path}: {cause}")]
    Read { path: String, cause: std::io::Error },
    #[error("parse {path}: {cause}")]
    Parse { path: String, cause: String },
    #[error("endpoint {url:?} for registry {registry}: {reason}")]
    Url {
        registry: String,
        url: String,
        reason: String,
    },
}

/// Where endpoints come from: a hosts directory (may be absent) and the hosts allowed plain HTTP.
#[derive(Debug, Clone, Default)]
pub struct Hosts {
    pub dir: Option<PathBuf>,
    pub insecure: Vec<String>,
}

#[derive(serde::Deserialize)]
struct HostsFile {
    server: Option<String>,
    #[serde(default)]
    host: toml::Table,
}

impl Hosts {
    pub fn new(dir: Option<PathBuf>, insecure: Vec<String>) -> Hosts {
        Hosts { dir, insecure }
    }

    /// The endpoints to try for `registry`, in order.
    pub fn endpoints(&self, registry: &str) -> Result<Vec<Endpoint>, HostsError> {
        let file = match &self.dir {
            Some(dir) => find_file(dir, registry),
            None => None,
        };
        let mut out = Vec::new();
        let mut server = None;
        if let Some(path) = file {
            let text = std::fs::read_to_string(&path).map_err(|cause| HostsError::Read {
                path: path.display().to_string(),
                cause,
            })?;
            let parsed: HostsFile = toml::from_str(&text).map_err(|e| HostsError::Parse {
                path: path.display().to_string(),
                cause: e.to_string(),
            })?;
            for (url, table) in parsed.host {
                let caps: Vec<String> = table
                    .get("capabilities")
                    .and_then(|c| c.as_array())
                    .map(|a| {
                        a.iter()
                            .filter_map(|v| v.as_str().map(str::to_string))
                            .collect()
                    })
                    .unwrap_or_else(|| vec!["pull".into(), "resolve".into()]);
                let override_path = table
                    .get("override_path")
                    .and_then(|v| v.as_bool())
                    .unwrap_or(false);
                let mut ep = self.parse_url(registry, &url, override_path)?;
                ep.pull = caps.iter().any(|c| c == "pull");
                ep.resolve = caps.iter().any(|c| c == "resolve");
                ep.mirror = true;
                out.push(ep);
            }
            server = parsed.server;
        }
        let server = match server {
            Some(s) => s,
            None => default_server(registry, self.plain_http_ok(host_of(registry))),
        };
        let mut up = self.parse_url(registry, &server, false)?;
        up.pull = true;
        up.resolve = true;
        up.mirror = false;
        out.push(up);
        Ok(out)
    }

    fn plain_http_ok(&self, host: &str) -> bool {
        is_loopback(host)
            || self
                .insecure
                .iter()
                .any(|h| h == host || host_of(h) == host)
    }

    fn parse_url(
        &self,
        registry: &str,
        url: &str,
        override_path: bool,
    ) -> Result<Endpoint, HostsError> {
        let bad = |reason: &str| HostsError::Url {
            registry: registry.to_string(),
            url: url.to_string(),
            reason: reason.to_string(),
        };
        let (scheme, rest) = url
            .split_once("://")
            .ok_or_else(|| bad("no scheme (want https:// or http://)"))?;
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], rest[i..].trim_end_matches('/')),
            None => (rest, ""),
        };
        let (host, port) = split_host_port(authority).ok_or_else(|| bad("bad host:port"))?;
        let port = match (port, scheme) {
            (Some(p), _) => p,
            (None, "https") => 443,
            (None, "http") => 80,
            _ => return Err(bad("scheme must be https or http")),
        };
        if scheme == "http" && !self.plain_http_ok(&host) && !self.plain_http_ok(authority) {
            return Err(bad(
                "plain HTTP is allowed only for loopback registries and --insecure-registry hosts",
            ));
        }
        if scheme != "https" && scheme != "http" {
            return Err(bad("scheme must be https or http"));
        }
        let path = if override_path || path.ends_with("/v2") {
            path.to_string()
        } else {
            format!("{path}/v2")
        };
        Ok(Endpoint {
            scheme: scheme.to_string(),
            host,
            port,
            path,
            resolve: true,
            pull: true,
            mirror: false,
        })
    }
}

fn find_file(dir: &Path, registry: &str) -> Option<PathBuf> {
    let mut names = vec![registry.to_string()];
    if let Some((h, p)) = registry.rsplit_once(':')
        && p.bytes().all(|b| b.is_ascii_digit())
    {
        names.push(format!("{h}_{p}_"));
    }
    names.push("_default".to_string());
    names
        .into_iter()
        .map(|n| dir.join(n).join("hosts.toml"))
        .find(|p| p.is_file())
}

fn default_server(registry: &str, plain: bool) -> String {
    if registry == crate::reference::DOCKER_HUB {
        return "https://registry-1.docker.io".to_string();
    }
    format!("{}://{registry}", if plain { "http" } else { "https" })
}

/// The host part of `host[:port]` / `[v6]:port`.
fn host_of(authority: &str) -> &str {
    if let Some(rest) = authority.strip_prefix('[') {
        return rest.split(']').next().unwrap_or(rest);
    }
    match authority.rsplit_once(':') {
        Some((h, p)) if p.bytes().all(|b| b.is_ascii_digit()) => h,
        _ => authority,
    }
}

fn split_host_port(authority: &str) -> Option<(String, Option<u16>)> {
    if let Some(rest) = authority.strip_prefix('[') {
        let (h, after) = rest.split_once(']')?;
        let port = match after.strip_prefix(':') {
            Some(p) => Some(p.parse().ok()?),
            None if after.is_empty() => None,
            None => return None,
        };
        return Some((h.to_string(), port));
    }
    match authority.rsplit_once(':') {
        Some((h, p)) => Some((h.to_string(), Some(p.parse().ok()?))),
        None if !authority.is_empty() => Some((authority.to_string(), None)),
        None => None,
    }
}

/// Loopback names and addresses (plain HTTP allowed, as Docker allows it for `localhost` registries).
pub fn is_loopback(host: &str) -> bool {
    let host = host_of(host);
    host == "localhost"
        || host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, host: &str, text: &str) {
        std::fs::create_dir_all(dir.join(host)).unwrap();
        std::fs::write(dir.join(host).join("hosts.toml"), text).unwrap();
    }

    #[test]
    fn mirrors_in_file_order_then_server() {
        let tmp = tempfile::tempdir().unwrap();
        write(
            tmp.path(),
            "docker.io",
            r#"server = "https://registry-1.docker.io"
[host."http://127.0.0.1:5000"]
  capabilities = ["pull", "resolve"]
[host."https://mirror.example/base"]
  capabilities = ["pull"]
"#,
        );
        let eps = Hosts::new(Some(tmp.path().into()), vec![])
            .endpoints("docker.io")
            .unwrap();
        let urls: Vec<String> = eps.iter().map(|e| e.to_string()).collect();
        assert_eq!(
            urls,
            [
                "http://127.0.0.1:5000/v2",
                "https://mirror.example/base/v2",
                "https://registry-1.docker.io/v2"
            ]
        );
        assert!(eps[0].resolve && eps[0].mirror);
        assert!(!eps[1].resolve && eps[1].pull);
        assert!(!eps[2].mirror);
    }

    #[test]
    fn defaults_without_a_file() {
        let h = Hosts::new(None, vec!["reg.lan:5000".into()]);
        assert_eq!(
            h.endpoints("quay.io").unwrap()[0].to_string(),
            "https://quay.io/v2"
        );
        assert_eq!(
            h.endpoints("localhost:5000").unwrap()[0].to_string(),
            "http://localhost:5000/v2"
        );
        assert_eq!(
            h.endpoints("reg.lan:5000").unwrap()[0].to_string(),
            "http://reg.lan:5000/v2"
        );
        assert_eq!(
            h.endpoints("docker.io").unwrap()[0].to_string(),
            "https://registry-1.docker.io/v2"
        );
    }

    #[test]
    fn plain_http_refused_for_remote_hosts() {
        let tmp = tempfile::tempdir().unwrap();
        write(tmp.path(), "_default", "[host.\"http://10.1.2.3:5000\"]\n");
        let e = Hosts::new(Some(tmp.path().into()), vec![])
            .endpoints("quay.io")
            .unwrap_err();
        assert!(e.to_string().contains("plain HTTP"), "{e}");
    }

    #[test]
    fn port_directory_forms() {
        let tmp = tempfile::tempdir().unwrap();
        write(
            tmp.path(),
            "reg_5000_",
            "server = \"https://elsewhere:7000\"\n",
        );
        let eps = Hosts::new(Some(tmp.path().into()), vec![])
            .endpoints("reg:5000")
            .unwrap();
        assert_eq!(eps[0].to_string(), "https://elsewhere:7000/v2");
    }
}
