//! The ADD result (and `prevResult`), modelled once as the 1.1.0 superset and written in whatever version
//! the runtime speaks.

use super::fields;
use super::version::CniVersion;
use ipnet::IpNet;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use std::net::IpAddr;

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Interface {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mac: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mtu: Option<u32>,
    /// The netns path for interfaces inside the container; absent for host interfaces.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sandbox: Option<String>,
    #[serde(
        rename = "socketPath",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub socket_path: Option<String>,
    #[serde(rename = "pciID", default, skip_serializing_if = "Option::is_none")]
    pub pci_id: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IpConfig {
    /// The address with its prefix length, host bits kept (e.g. `10.244.1.5/24`).
    pub address: IpNet,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway: Option<IpAddr>,
    /// Index into `interfaces`; absent in results of IPAM plugins.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interface: Option<usize>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Route {
    pub dst: IpNet,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gw: Option<IpAddr>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mtu: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub advmss: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub table: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<u8>,
}

impl Route {
    pub fn new(dst: IpNet, gw: Option<IpAddr>) -> Self {
        Self {
            dst,
            gw,
            mtu: None,
            advmss: None,
            priority: None,
            table: None,
            scope: None,
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Dns {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub nameservers: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub domain: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub search: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub options: Vec<String>,
}

impl Dns {
    pub fn is_empty(&self) -> bool {
        self.nameservers.is_empty()
            && self.domain.is_none()
            && self.search.is_empty()
            && self.options.is_empty()
    }
}

/// An ADD result. Also the shape of a delegated IPAM plugin's result (no interfaces, no indexes).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CniResult {
    pub interfaces: Vec<Interface>,
    pub ips: Vec<IpConfig>,
    pub routes: Vec<Route>,
    pub dns: Dns,
}

/// Why a result could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ResultError {
    #[error("{field}: {problem}")]
    Field { field: String, problem: String },
}

fn field_err(field: impl Into<String>, problem: impl Into<String>) -> ResultError {
    ResultError::Field {
        field: field.into(),
        problem: problem.into(),
    }
}

/// An error from [`fields::canonical`] (`search: ambiguous: ...`) for the object at `at`.
fn ambiguous(at: &str, e: String) -> ResultError {
    match e.split_once(": ") {
        Some((key, problem)) => field_err(format!("{at}.{key}"), problem),
        None => field_err(at, e),
    }
}

const INTERFACE_KEYS: [&str; 6] = ["name", "mac", "mtu", "sandbox", "socketPath", "pciID"];
const IP_KEYS: [&str; 3] = ["address", "gateway", "interface"];
const ROUTE_KEYS: [&str; 7] = ["dst", "gw", "mtu", "advmss", "priority", "table", "scope"];
const DNS_KEYS: [&str; 4] = ["nameservers", "domain", "search", "options"];

/// A list of serde-derived objects, their keys matched by Go's rule.
fn list_of<T: serde::de::DeserializeOwned>(
    v: Option<&Value>,
    field: &str,
    names: &[&str],
) -> Result<Vec<T>, ResultError> {
    let Some(v) = v else {
        return Ok(Vec::new());
    };
    let list = v
        .as_array()
        .ok_or_else(|| field_err(field, "expected a list"))?;
    list.iter()
        .enumerate()
        .map(|(n, item)| {
            let at = format!("{field}[{n}]");
            let item = fields::canonical(item, names).map_err(|e| ambiguous(&at, e))?;
            serde_json::from_value(item).map_err(|e| field_err(&at, e.to_string()))
        })
        .collect()
}

impl CniResult {
    /// Writes the result as the spec of `version` shapes it: `ips[].version` up to 0.4.0, the 1.1.0
    /// interface and route fields only from 1.1.0 on.
    pub fn to_json(&self, version: CniVersion) -> Value {
        let mut out = Map::new();
        out.insert("cniVersion".into(), json!(version.as_str()));
        if !self.interfaces.is_empty() {
            let ifaces: Vec<Value> = self
                .interfaces
                .iter()
                .map(|i| {
                    let mut v = serde_json::to_value(i).expect("interface serializes");
                    if !version.has_extended_fields() {
                        let m = v.as_object_mut().expect("object");
                        for k in ["mtu", "socketPath", "pciID"] {
                            m.remove(k);
                        }
                    }
                    v
                })
                .collect();
            out.insert("interfaces".into(), Value::Array(ifaces));
        }
        let ips: Vec<Value> = self
            .ips
            .iter()
            .map(|ip| {
                let mut v = serde_json::to_value(ip).expect("ip serializes");
                if version.ips_carry_version() {
                    let family = if ip.address.addr().is_ipv4() {
                        "4"
                    } else {
                        "6"
                    };
                    v.as_object_mut()
                        .expect("object")
                        .insert("version".into(), json!(family));
                }
                v
            })
            .collect();
        if !ips.is_empty() {
            out.insert("ips".into(), Value::Array(ips));
        }
        if !self.routes.is_empty() {
            let routes: Vec<Value> = self
                .routes
                .iter()
                .map(|r| {
                    let mut v = serde_json::to_value(r).expect("route serializes");
                    if !version.has_extended_fields() {
                        let m = v.as_object_mut().expect("object");
                        for k in ["mtu", "advmss", "priority", "table", "scope"] {
                            m.remove(k);
                        }
                    }
                    v
                })
                .collect();
            out.insert("routes".into(), Value::Array(routes));
        }
        out.insert(
            "dns".into(),
            serde_json::to_value(&self.dns).expect("dns serializes"),
        );
        Value::Object(out)
    }

    /// Reads a result of any supported version (0.3.0 to 1.1.0): a `prevResult`, a cached result or a
    /// delegated plugin's output. The pre-0.3 shape (`ip4`/`ip6`) is rejected by name. Keys match by
    /// Go's rule (exact spelling first, else case-insensitively; see [`super::fields`]), as the Go
    /// plugins that write results also read them.
    pub fn from_json(value: &Value) -> Result<Self, ResultError> {
        let obj = value
            .as_object()
            .ok_or_else(|| field_err("result", "expected a JSON object"))?;
        let get = |key: &str| -> Result<Option<&Value>, ResultError> {
            fields::lookup(obj, key)
                .map(|v| v.filter(|v| !v.is_null()))
                .map_err(|keys| {
                    field_err(
                        key,
                        format!(
                            "ambiguous: {} differ only in case and hold different values",
                            keys.join(" and ")
                        ),
                    )
                })
        };
        if get("ip4")?.is_some() || get("ip6")?.is_some() {
            return Err(field_err(
                "result",
                "the pre-0.3.0 result shape (ip4/ip6) is not supported",
            ));
        }
        let interfaces: Vec<Interface> =
            list_of(get("interfaces")?, "interfaces", &INTERFACE_KEYS)?;
        let mut ips = Vec::new();
        if let Some(list) = get("ips")? {
            let list = list
                .as_array()
                .ok_or_else(|| field_err("ips", "expected a list"))?;
            for (n, ip) in list.iter().enumerate() {
                let field = format!("ips[{n}]");
                // 0.3.x/0.4.0 carry "version"; we derive the family from the address instead.
                let ip = fields::canonical(ip, &IP_KEYS).map_err(|e| ambiguous(&field, e))?;
                let parsed: IpConfig =
                    serde_json::from_value(ip).map_err(|e| field_err(&field, e.to_string()))?;
                if let Some(i) = parsed.interface
                    && i >= interfaces.len()
                    && !interfaces.is_empty()
                {
                    return Err(field_err(
                        format!("ips[{n}].interface"),
                        format!("index {i} has no interface"),
                    ));
                }
                ips.push(parsed);
            }
        }
        let routes = list_of(get("routes")?, "routes", &ROUTE_KEYS)?;
        let dns = match get("dns")? {
            None => Dns::default(),
            Some(v) => {
                let v = fields::canonical(v, &DNS_KEYS).map_err(|e| ambiguous("dns", e))?;
                serde_json::from_value(v).map_err(|e| field_err("dns", e.to_string()))?
            }
        };
        Ok(Self {
            interfaces,
            ips,
            routes,
            dns,
        })
    }

    /// Appends what this plugin made to a previous result, re-basing interface indexes, as a chained
    /// interface plugin must.
    pub fn append(&mut self, mut ours: CniResult) {
        let base = self.interfaces.len();
        for ip in &mut ours.ips {
            ip.interface = ip.interface.map(|i| i + base);
        }
        self.interfaces.extend(ours.interfaces);
        self.ips.extend(ours.ips);
        self.routes.extend(ours.routes);
        if self.dns.is_empty() {
            self.dns = ours.dns;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> CniResult {
        CniResult {
            interfaces: vec![
                Interface {
                    name: "pnv0123".into(),
                    mac: Some("aa:bb:cc:dd:ee:ff".into()),
                    mtu: Some(1450),
                    ..Default::default()
                },
                Interface {
                    name: "eth0".into(),
                    mac: Some("0a:58:0a:f4:01:05".into()),
                    mtu: Some(1450),
                    sandbox: Some("/run/netns/p".into()),
                    ..Default::default()
                },
            ],
            ips: vec![IpConfig {
                address: "10.244.1.5/24".parse().unwrap(),
                gateway: Some("10.244.1.1".parse().unwrap()),
                interface: Some(1),
            }],
            routes: vec![Route {
                mtu: Some(1450),
                ..Route::new(
                    "0.0.0.0/0".parse().unwrap(),
                    Some("10.244.1.1".parse().unwrap()),
                )
            }],
            dns: Dns::default(),
        }
    }

    #[test]
    fn old_versions_carry_ip_version_and_drop_new_fields() {
        let v = sample().to_json(CniVersion::V0_4_0);
        assert_eq!(v["cniVersion"], "0.4.0");
        assert_eq!(v["ips"][0]["version"], "4");
        assert_eq!(v["ips"][0]["address"], "10.244.1.5/24");
        assert!(v["interfaces"][0].get("mtu").is_none());
        assert!(v["routes"][0].get("mtu").is_none());
    }

    #[test]
    fn v1_0_drops_ip_version_and_v1_1_keeps_mtu() {
        let v10 = sample().to_json(CniVersion::V1_0_0);
        assert!(v10["ips"][0].get("version").is_none());
        assert!(v10["interfaces"][1].get("mtu").is_none());
        let v11 = sample().to_json(CniVersion::V1_1_0);
        assert_eq!(v11["interfaces"][1]["mtu"], 1450);
        assert_eq!(v11["routes"][0]["mtu"], 1450);
        assert_eq!(v11["interfaces"][1]["sandbox"], "/run/netns/p");
        assert!(v11["interfaces"][0].get("sandbox").is_none());
    }

    #[test]
    fn round_trips_through_every_version() {
        for version in CniVersion::SUPPORTED {
            let json = sample().to_json(version);
            let back = CniResult::from_json(&json).unwrap();
            assert_eq!(back.ips, sample().ips, "{version}");
            assert_eq!(back.interfaces.len(), 2);
        }
    }

    #[test]
    fn rejects_legacy_shape_and_bad_indexes() {
        assert!(CniResult::from_json(&json!({"ip4": {"ip": "10.0.0.2/24"}})).is_err());
        let bad = json!({"interfaces": [{"name": "eth0"}], "ips": [{"address": "10.0.0.2/24", "interface": 3}]});
        let err = CniResult::from_json(&bad).unwrap_err();
        assert!(err.to_string().contains("ips[0].interface"), "{err}");
    }

    #[test]
    fn append_rebases_interface_indexes() {
        let mut prev = sample();
        prev.append(sample());
        assert_eq!(prev.interfaces.len(), 4);
        assert_eq!(prev.ips[1].interface, Some(3));
    }

    proptest::proptest! {
        /// prevResult is untrusted input: any JSON reads as a result or a field-naming error.
        #[test]
        fn any_json_is_read_or_refused(text in "[\\[\\]{}\":,0-9a-z./ ]{0,120}") {
            if let Ok(v) = serde_json::from_str::<Value>(&text) {
                let _ = CniResult::from_json(&v);
            }
        }
    }
}
