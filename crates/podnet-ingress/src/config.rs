//! What the proxy serves at one moment: the routing table with its backends and the certificates
//! by server name. A [`Snapshot`] is never changed: a new configuration is a new snapshot, published
//! through a `watch` channel, so each request (and each TLS handshake) sees one whole configuration,
//! and connections in flight are never dropped by a reload.

use crate::route::{RouteTable, normalise_host};
use rustls::sign::CertifiedKey;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;

/// A backend: a Service port and its ready endpoints.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Backend {
    /// For logs and error pages: `namespace/service:port`.
    pub name: String,
    pub endpoints: Vec<SocketAddr>,
}

/// Certificates by server name (exact, or `*.parent` for one label), for SNI. A client that sends no
/// name, or one without a certificate, gets none (the handshake fails): handing it some tenant's
/// certificate would tell any scanner that tenant's host names.
#[derive(Debug, Clone, Default)]
pub struct Certs {
    exact: HashMap<String, Arc<CertifiedKey>>,
    wildcard: HashMap<String, Arc<CertifiedKey>>,
}

impl Certs {
    /// Adds `key` for `host` (`*.example.com` for a wildcard); the first certificate for a name stays.
    pub fn add(&mut self, host: &str, key: Arc<CertifiedKey>) {
        let host = normalise_host(host);
        let map = match host.strip_prefix("*.") {
            Some(parent) => self.wildcard.entry(parent.to_string()),
            None => self.exact.entry(host),
        };
        map.or_insert(key);
    }

    /// The certificate for a server name: exact, then wildcard.
    pub fn find(&self, sni: Option<&str>) -> Option<Arc<CertifiedKey>> {
        let name = normalise_host(sni?);
        self.exact
            .get(&name)
            .or_else(|| {
                name.split_once('.')
                    .and_then(|(_, parent)| self.wildcard.get(parent))
            })
            .cloned()
    }

    pub fn is_empty(&self) -> bool {
        self.exact.is_empty() && self.wildcard.is_empty()
    }
}

/// One whole configuration.
#[derive(Debug, Clone)]
pub struct Snapshot {
    pub routes: RouteTable<Arc<Backend>>,
    pub certs: Certs,
}

impl Default for Snapshot {
    fn default() -> Self {
        Snapshot {
            routes: RouteTable::new(vec![], None),
            certs: Certs::default(),
        }
    }
}
