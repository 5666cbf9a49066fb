//! The `podnet-cni` network configuration, as the runtime hands it over on stdin.
//!
//! Unknown fields are ignored (CNI expects plugins to tolerate runtime additions); every known field is
//! checked, and a bad one produces an error naming it. Nothing here touches the system.

use super::error::{CniError, ErrorCode};
use super::fields::{FieldError, Fields};
use super::result::{CniResult, Dns};
use super::version::{self, CniVersion};
use crate::names;
use ipnet::{IpNet, Ipv4Net};
use serde_json::Value;
use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;

pub const DEFAULT_BRIDGE: &str = "cni0";
pub const DEFAULT_MTU: u32 = 1500;
pub const DEFAULT_DATA_DIR: &str = "/var/lib/podnet/ipam";

/// The plugin's whole configuration after defaults and validation.
#[derive(Debug, Clone, PartialEq)]
pub struct NetConf {
    pub cni_version: CniVersion,
    pub name: String,
    pub plugin_type: String,
    pub bridge: String,
    pub mtu: u32,
    pub ip_masq: bool,
    /// Destinations inside it are not masqueraded: pods see each other's real addresses.
    pub cluster_cidr: Ipv4Net,
    pub hairpin_mode: bool,
    pub ipam: Ipam,
    /// Where the plugin keeps its state for this network (`<dataDir>/<name>/`): `ipam.dataDir` with the
    /// built-in IPAM, the top-level `dataDir` when IPAM is delegated.
    pub data_dir: PathBuf,
    pub dns: Dns,
    pub runtime: RuntimeConfig,
    pub prev_result: Option<CniResult>,
    /// GC only: the attachments that are still valid. `None` when the key is absent.
    pub valid_attachments: Option<Vec<Attachment>>,
    pub disable_check: bool,
    pub disable_gc: bool,
    /// The config exactly as received, for delegated plugins (they get the complete config).
    pub raw: Value,
}

/// Where addresses come from.
#[derive(Debug, Clone, PartialEq)]
pub enum Ipam {
    /// podnet's own allocator.
    Builtin(BuiltinIpam),
    /// Another IPAM plugin, found on `CNI_PATH`, executed per the spec's delegation protocol.
    Delegated { plugin: String },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuiltinIpam {
    pub subnet: Ipv4Net,
    pub range_start: Ipv4Addr,
    pub range_end: Ipv4Addr,
    pub gateway: Ipv4Addr,
    pub routes: Vec<IpamRoute>,
    pub data_dir: PathBuf,
}

/// A route the pod gets: to `dst` via `gw`, or via the subnet's gateway when `gw` is not given.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IpamRoute {
    pub dst: IpNet,
    pub gw: Option<Ipv4Addr>,
}

/// Capability arguments the runtime filled in.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RuntimeConfig {
    pub port_mappings: Vec<PortMapping>,
    /// The `ips` capability: addresses the runtime asks for (the first IPv4 one is used).
    pub ips: Vec<IpAddr>,
}

#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    Tcp,
    Udp,
    Sctp,
}

impl Protocol {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Tcp => "tcp",
            Self::Udp => "udp",
            Self::Sctp => "sctp",
        }
    }
}

#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
pub struct PortMapping {
    #[serde(rename = "hostPort")]
    pub host_port: u16,
    #[serde(rename = "containerPort")]
    pub container_port: u16,
    pub protocol: Protocol,
    /// Only traffic to this node address is mapped; `None` maps every local address.
    #[serde(rename = "hostIP", default, skip_serializing_if = "Option::is_none")]
    pub host_ip: Option<Ipv4Addr>,
}

/// One `(containerID, ifname)` pair from `cni.dev/valid-attachments`.
#[derive(
    Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
pub struct Attachment {
    #[serde(rename = "containerID")]
    pub container_id: String,
    pub ifname: String,
}

impl From<FieldError> for CniError {
    fn from(e: FieldError) -> Self {
        CniError::new(ErrorCode::InvalidConfig, e.to_string())
    }
}

fn invalid(field: &str, problem: impl Into<String>) -> CniError {
    CniError::new(
        ErrorCode::InvalidConfig,
        format!("{field}: {}", problem.into()),
    )
}

/// Reads just enough of stdin to know which version to answer in, even when the rest is unusable.
pub fn sniff_version(stdin: &[u8]) -> Option<String> {
    let v: Value = serde_json::from_slice(stdin).ok()?;
    v.get("cniVersion")?.as_str().map(str::to_string)
}

impl NetConf {
    /// Parses and validates the configuration from stdin bytes.
    pub fn parse(stdin: &[u8]) -> Result<NetConf, CniError> {
        let raw: Value = serde_json::from_slice(stdin).map_err(|e| {
            CniError::new(
                ErrorCode::Decode,
                "network configuration on stdin is not valid JSON",
            )
            .with_details(e.to_string())
        })?;
        let obj = raw.as_object().ok_or_else(|| {
            CniError::new(
                ErrorCode::Decode,
                "network configuration on stdin must be a JSON object",
            )
        })?;
        let f = Fields::new(obj, "");

        let versions = f.strings("cniVersions")?;
        let cni_version = version::negotiate(f.string("cniVersion")?, &versions)
            .map_err(|e| CniError::new(ErrorCode::IncompatibleVersion, e.to_string()))?;

        let name = f
            .string("name")?
            .ok_or_else(|| invalid("name", "missing network name"))?
            .to_string();
        if !names::is_valid_cni_identifier(&name) {
            return Err(invalid(
                "name",
                format!(
                    "{name:?} must start with a letter or digit and contain only letters, digits, '_', '.' and '-'"
                ),
            ));
        }
        let plugin_type = f.string("type")?.unwrap_or("podnet-cni").to_string();

        let bridge = f.string("bridge")?.unwrap_or(DEFAULT_BRIDGE).to_string();
        if let Err(problem) = names::check_ifname(&bridge) {
            return Err(invalid("bridge", format!("{bridge:?} {problem}")));
        }
        let mtu = f
            .uint("mtu", 68, 65535)?
            .map(|m| m as u32)
            .unwrap_or(DEFAULT_MTU);
        let ip_masq = f.bool("ipMasq")?.unwrap_or(false);
        let hairpin_mode = f.bool("hairpinMode")?.unwrap_or(true);

        let ipam = parse_ipam(&f)?;
        let data_dir = match &ipam {
            Ipam::Builtin(b) => b.data_dir.clone(),
            Ipam::Delegated { .. } => {
                let d = PathBuf::from(f.string("dataDir")?.unwrap_or(DEFAULT_DATA_DIR));
                if !d.is_absolute() {
                    return Err(invalid(
                        "dataDir",
                        format!("{:?} must be an absolute path", d.display().to_string()),
                    ));
                }
                d
            }
        };
        let cluster_cidr = match f.parsed::<IpNet>("clusterCIDR", "a CIDR such as 10.244.0.0/16")? {
            None => match &ipam {
                Ipam::Builtin(b) => b.subnet,
                // With a delegated IPAM we cannot know the pool: without clusterCIDR only the
                // loopback-free default applies, so ask for it when masquerading.
                Ipam::Delegated { .. } if ip_masq => {
                    return Err(invalid(
                        "clusterCIDR",
                        "required with ipMasq when ipam.type delegates to another plugin",
                    ));
                }
                Ipam::Delegated { .. } => "0.0.0.0/32".parse().expect("literal"),
            },
            Some(IpNet::V4(c)) => {
                if c.network() != c.addr() {
                    return Err(invalid(
                        "clusterCIDR",
                        format!("{c} has host bits set; did you mean {}?", c.trunc()),
                    ));
                }
                c
            }
            Some(IpNet::V6(c)) => {
                return Err(CniError::new(
                    ErrorCode::UnsupportedField,
                    format!("clusterCIDR: {c}: IPv6 is not supported by podnet-cni yet"),
                ));
            }
        };
        if let Ipam::Builtin(b) = &ipam
            && !cluster_cidr.contains(&b.subnet)
        {
            return Err(invalid(
                "ipam.subnet",
                format!("{} is not inside clusterCIDR {cluster_cidr}", b.subnet),
            ));
        }

        let dns = match f.raw("dns") {
            None => Dns::default(),
            Some(v) => {
                serde_json::from_value(v.clone()).map_err(|e| invalid("dns", e.to_string()))?
            }
        };
        let runtime = parse_runtime_config(&f)?;
        let prev_result = match f.raw("prevResult") {
            None => None,
            Some(v) => Some(
                CniResult::from_json(v)
                    .map_err(|e| CniError::new(ErrorCode::Decode, format!("prevResult.{e}")))?,
            ),
        };
        let valid_attachments = match f.raw("cni.dev/valid-attachments") {
            None => None,
            Some(v) => Some(
                serde_json::from_value::<Vec<Attachment>>(v.clone()).map_err(|e| {
                    CniError::new(ErrorCode::Decode, format!("cni.dev/valid-attachments: {e}"))
                })?,
            ),
        };

        Ok(NetConf {
            cni_version,
            name,
            plugin_type,
            bridge,
            mtu,
            ip_masq,
            cluster_cidr,
            hairpin_mode,
            ipam,
            data_dir,
            dns,
            runtime,
            prev_result,
            valid_attachments,
            disable_check: f.bool("disableCheck")?.unwrap_or(false),
            disable_gc: f.bool("disableGC")?.unwrap_or(false),
            raw,
        })
    }
}

fn parse_ipam(f: &Fields<'_>) -> Result<Ipam, CniError> {
    let ipam = f
        .object("ipam")?
        .ok_or_else(|| invalid("ipam", "missing; podnet-cni needs at least ipam.subnet"))?;
    match ipam.string("type")? {
        None | Some("podnet") | Some("podnet-cni") => {}
        Some(plugin) => {
            if plugin.is_empty() || plugin.contains('/') || plugin.contains('\\') {
                return Err(invalid(
                    "ipam.type",
                    format!("{plugin:?} is not a plugin name"),
                ));
            }
            return Ok(Ipam::Delegated {
                plugin: plugin.to_string(),
            });
        }
    }

    let subnet = match ipam.parsed::<IpNet>("subnet", "a CIDR such as 10.244.1.0/24")? {
        None => return Err(invalid("ipam.subnet", "missing")),
        Some(IpNet::V6(s)) => {
            return Err(CniError::new(
                ErrorCode::UnsupportedField,
                format!("ipam.subnet: {s}: IPv6 is not supported by podnet-cni yet"),
            ));
        }
        Some(IpNet::V4(s)) => s,
    };
    if subnet.network() != subnet.addr() {
        return Err(invalid(
            "ipam.subnet",
            format!(
                "{subnet} has host bits set; did you mean {}?",
                subnet.trunc()
            ),
        ));
    }
    if subnet.prefix_len() > 30 {
        return Err(invalid(
            "ipam.subnet",
            format!("{subnet} is too small: it needs room for a gateway and a pod"),
        ));
    }
    let first_host = Ipv4Addr::from(u32::from(subnet.network()) + 1);
    let last_host = Ipv4Addr::from(u32::from(subnet.broadcast()) - 1);
    let usable = |field: &str, a: Ipv4Addr| -> Result<Ipv4Addr, CniError> {
        if a < first_host || a > last_host {
            return Err(invalid(
                field,
                format!("{a} is not a host address of {subnet}"),
            ));
        }
        Ok(a)
    };

    let gateway = match ipam.parsed::<Ipv4Addr>("gateway", "an IPv4 address")? {
        None => first_host,
        Some(g) => usable("ipam.gateway", g)?,
    };
    let range_start = match ipam.parsed::<Ipv4Addr>("rangeStart", "an IPv4 address")? {
        None => first_host,
        Some(a) => usable("ipam.rangeStart", a)?,
    };
    let range_end = match ipam.parsed::<Ipv4Addr>("rangeEnd", "an IPv4 address")? {
        None => last_host,
        Some(a) => usable("ipam.rangeEnd", a)?,
    };
    if range_start > range_end {
        return Err(invalid(
            "ipam.rangeStart",
            format!("{range_start} is after rangeEnd {range_end}"),
        ));
    }
    let pool = u32::from(range_end) - u32::from(range_start) + 1;
    let gateway_in_range = (range_start..=range_end).contains(&gateway);
    if pool - u32::from(gateway_in_range) == 0 {
        return Err(invalid(
            "ipam.rangeStart",
            format!("range {range_start}-{range_end} holds no address besides the gateway"),
        ));
    }

    let routes = match ipam.array("routes")? {
        None => vec![IpamRoute {
            dst: "0.0.0.0/0".parse().expect("literal"),
            gw: None,
        }],
        Some(list) => {
            let mut out = Vec::with_capacity(list.len());
            for (i, r) in list.iter().enumerate() {
                let field = format!("ipam.routes[{i}].dst");
                let dst = r
                    .get("dst")
                    .and_then(Value::as_str)
                    .ok_or_else(|| invalid(&field, "missing"))?
                    .parse::<IpNet>()
                    .map_err(|_| invalid(&field, "not a CIDR"))?;
                if !dst.addr().is_ipv4() {
                    return Err(invalid(
                        &field,
                        format!("{dst} is IPv6 but the subnet is IPv4"),
                    ));
                }
                let gw_field = format!("ipam.routes[{i}].gw");
                let gw = match r.get("gw").filter(|v| !v.is_null()) {
                    None => None,
                    Some(v) => {
                        let gw = v
                            .as_str()
                            .and_then(|s| s.parse::<Ipv4Addr>().ok())
                            .ok_or_else(|| {
                                invalid(&gw_field, format!("{v} is not an IPv4 address"))
                            })?;
                        // The pod reaches only its own subnet directly: a next hop elsewhere could
                        // never be resolved on its interface.
                        if !subnet.contains(&gw) {
                            return Err(invalid(
                                &gw_field,
                                format!("{gw} is not in the subnet {subnet}"),
                            ));
                        }
                        Some(gw)
                    }
                };
                out.push(IpamRoute {
                    dst: dst.trunc(),
                    gw,
                });
            }
            out
        }
    };
    let data_dir = PathBuf::from(ipam.string("dataDir")?.unwrap_or(DEFAULT_DATA_DIR));
    if !data_dir.is_absolute() {
        return Err(invalid(
            "ipam.dataDir",
            format!(
                "{:?} must be an absolute path",
                data_dir.display().to_string()
            ),
        ));
    }
    Ok(Ipam::Builtin(BuiltinIpam {
        subnet,
        range_start,
        range_end,
        gateway,
        routes,
        data_dir,
    }))
}

fn parse_runtime_config(f: &Fields<'_>) -> Result<RuntimeConfig, CniError> {
    let Some(rc) = f.object("runtimeConfig")? else {
        return Ok(RuntimeConfig::default());
    };
    let mut out = RuntimeConfig::default();
    if let Some(list) = rc.array("portMappings")? {
        for (i, m) in list.iter().enumerate() {
            let path = format!("runtimeConfig.portMappings[{i}]");
            let obj = m
                .as_object()
                .ok_or_else(|| invalid(&path, "expected an object"))?;
            let mf = Fields::new(obj, &path);
            let host_port = mf
                .uint("hostPort", 1, 65535)?
                .ok_or_else(|| invalid(&mf.path_of("hostPort"), "missing"))?
                as u16;
            let container_port = mf
                .uint("containerPort", 1, 65535)?
                .ok_or_else(|| invalid(&mf.path_of("containerPort"), "missing"))?
                as u16;
            let protocol = match mf
                .string("protocol")?
                .map(str::to_ascii_lowercase)
                .as_deref()
            {
                None | Some("") | Some("tcp") => Protocol::Tcp,
                Some("udp") => Protocol::Udp,
                Some("sctp") => Protocol::Sctp,
                Some(other) => {
                    return Err(invalid(
                        &mf.path_of("protocol"),
                        format!("{other:?} is not tcp, udp or sctp"),
                    ));
                }
            };
            let host_ip = match mf.string("hostIP")? {
                None | Some("") | Some("0.0.0.0") => None,
                Some(s) => match s.parse::<IpAddr>() {
                    Ok(IpAddr::V4(a)) => Some(a),
                    // The runtime sends one entry per family; an IPv6 mapping cannot apply to an IPv4
                    // pod, so it is skipped, as the reference portmap plugin does.
                    Ok(IpAddr::V6(_)) => continue,
                    Err(_) => {
                        return Err(invalid(
                            &mf.path_of("hostIP"),
                            format!("{s:?} is not an IP address"),
                        ));
                    }
                },
            };
            out.port_mappings.push(PortMapping {
                host_port,
                container_port,
                protocol,
                host_ip,
            });
        }
        out.port_mappings.sort();
        out.port_mappings.dedup();
    }
    for (i, s) in rc.strings("ips")?.iter().enumerate() {
        let addr = s.split('/').next().unwrap_or_default();
        let ip = addr.parse::<IpAddr>().map_err(|_| {
            invalid(
                &format!("runtimeConfig.ips[{i}]"),
                format!("{s:?} is not an IP address"),
            )
        })?;
        out.ips.push(ip);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parse(v: Value) -> Result<NetConf, CniError> {
        NetConf::parse(v.to_string().as_bytes())
    }

    fn base() -> Value {
        json!({"cniVersion": "1.1.0", "name": "podnet", "type": "podnet-cni",
               "ipam": {"subnet": "10.244.1.0/24"}})
    }

    #[test]
    fn the_documented_example_parses_with_defaults() {
        let c = parse(json!({"cniVersion": "1.1.0", "name": "podnet", "type": "podnet-cni",
            "bridge": "cni0", "mtu": 1500, "ipMasq": true, "clusterCIDR": "10.244.0.0/16", "hairpinMode": true,
            "ipam": {"subnet": "10.244.1.0/24", "dataDir": "/var/lib/podnet/ipam"},
            "capabilities": {"portMappings": true}, "someFutureField": [1, 2]}))
        .unwrap();
        assert_eq!(c.cni_version, CniVersion::V1_1_0);
        assert!(c.ip_masq && c.hairpin_mode);
        assert_eq!(c.cluster_cidr.to_string(), "10.244.0.0/16");
        let Ipam::Builtin(b) = &c.ipam else {
            panic!("builtin")
        };
        assert_eq!(b.gateway.to_string(), "10.244.1.1");
        assert_eq!(b.range_start.to_string(), "10.244.1.1");
        assert_eq!(b.range_end.to_string(), "10.244.1.254");
        assert_eq!(
            b.routes,
            vec![IpamRoute {
                dst: "0.0.0.0/0".parse().unwrap(),
                gw: None
            }]
        );
    }

    #[test]
    fn minimal_config_takes_defaults() {
        let c = parse(base()).unwrap();
        assert_eq!(c.bridge, "cni0");
        assert_eq!(c.mtu, 1500);
        assert!(!c.ip_masq);
        assert_eq!(c.cluster_cidr.to_string(), "10.244.1.0/24");
    }

    fn err_of(v: Value) -> CniError {
        parse(v).unwrap_err()
    }

    #[test]
    fn bad_input_names_the_field_and_uses_the_spec_code() {
        let mut v = base();
        v["ipam"]["subnet"] = json!("10.244.1.0/33");
        let e = err_of(v);
        assert_eq!(e.code, ErrorCode::InvalidConfig);
        assert!(e.msg.starts_with("ipam.subnet:"), "{}", e.msg);

        let mut v = base();
        v["clusterCIDR"] = json!("10.245.0.0/16");
        let e = err_of(v);
        assert_eq!(e.code, ErrorCode::InvalidConfig);
        assert!(e.msg.contains("not inside clusterCIDR"), "{}", e.msg);

        let mut v = base();
        v["mtu"] = json!(10);
        assert!(err_of(v).msg.starts_with("mtu:"));

        let mut v = base();
        v["cniVersion"] = json!("0.2.0");
        assert_eq!(err_of(v).code, ErrorCode::IncompatibleVersion);

        let e = NetConf::parse(b"{\"cniVersion\": \"1.1.0\", \"name\"").unwrap_err();
        assert_eq!(e.code, ErrorCode::Decode);

        let mut v = base();
        v["name"] = json!("bad name");
        assert!(err_of(v).msg.starts_with("name:"));

        let mut v = base();
        v["ipam"]["subnet"] = json!("fd00::/64");
        assert_eq!(err_of(v).code, ErrorCode::UnsupportedField);

        let mut v = base();
        v["ipam"]["subnet"] = json!("10.244.1.7/24");
        assert!(err_of(v).msg.contains("did you mean 10.244.1.0/24"));

        let mut v = base();
        v["ipam"]["gateway"] = json!("10.244.2.1");
        assert!(err_of(v).msg.starts_with("ipam.gateway:"));

        let mut v = base();
        v["bridge"] = json!("a-name-that-is-too-long");
        assert!(err_of(v).msg.starts_with("bridge:"));

        let mut v = base();
        v.as_object_mut().unwrap().remove("ipam");
        assert!(err_of(v).msg.starts_with("ipam:"));
    }

    #[test]
    fn routes_may_name_their_own_gateway() {
        let mut v = base();
        v["ipam"]["routes"] =
            json!([{"dst": "0.0.0.0/0"}, {"dst": "192.0.2.0/24", "gw": "10.244.1.254"}]);
        let Ipam::Builtin(b) = parse(v).unwrap().ipam else {
            panic!("builtin")
        };
        assert_eq!(b.routes[1].gw, Some("10.244.1.254".parse().unwrap()));
        let mut v = base();
        v["ipam"]["routes"] = json!([{"dst": "192.0.2.0/24", "gw": "10.9.9.9"}]);
        assert!(err_of(v).msg.starts_with("ipam.routes[0].gw:"));
    }

    #[test]
    fn port_mappings_are_read_and_checked() {
        let mut v = base();
        v["runtimeConfig"] = json!({"portMappings": [
            {"hostPort": 8080, "containerPort": 80, "protocol": "TCP"},
            {"hostPort": 8053, "containerPort": 53, "protocol": "udp", "hostIP": "10.100.0.2"},
            {"hostPort": 8080, "containerPort": 80, "protocol": "tcp", "hostIP": "::"}
        ]});
        let c = parse(v).unwrap();
        assert_eq!(
            c.runtime.port_mappings.len(),
            2,
            "the IPv6 duplicate is skipped"
        );
        let mut v = base();
        v["runtimeConfig"] = json!({"portMappings": [{"hostPort": 0, "containerPort": 80}]});
        assert!(
            err_of(v)
                .msg
                .starts_with("runtimeConfig.portMappings[0].hostPort:")
        );
    }

    #[test]
    fn delegated_ipam_is_recognised() {
        let v = json!({"cniVersion": "0.4.0", "name": "n", "ipam": {"type": "host-local", "subnet": "10.1.0.0/24"}});
        let c = parse(v).unwrap();
        assert_eq!(
            c.ipam,
            Ipam::Delegated {
                plugin: "host-local".into()
            }
        );
        let v = json!({"cniVersion": "0.4.0", "name": "n", "ipMasq": true, "ipam": {"type": "host-local"}});
        assert!(err_of(v).msg.starts_with("clusterCIDR:"));
    }

    #[test]
    fn gc_attachments_are_read() {
        let mut v = base();
        v["cni.dev/valid-attachments"] = json!([{"containerID": "abc", "ifname": "eth0"}]);
        let c = parse(v).unwrap();
        assert_eq!(c.valid_attachments.unwrap()[0].container_id, "abc");
    }

    mod properties {
        use super::*;
        use proptest::prelude::*;

        /// Any JSON value, bounded in depth and size.
        fn any_json() -> impl Strategy<Value = Value> {
            let leaf = prop_oneof![
                Just(Value::Null),
                any::<bool>().prop_map(Value::Bool),
                any::<i64>().prop_map(|n| json!(n)),
                any::<f64>()
                    .prop_filter("finite", |f| f.is_finite())
                    .prop_map(|f| json!(f)),
                "[ -~]{0,24}".prop_map(Value::String),
                prop_oneof![
                    Just("10.244.1.0/24"),
                    Just("1.1.0"),
                    Just("0.4.0"),
                    Just("cni0"),
                    Just("::1/64")
                ]
                .prop_map(|s| Value::String(s.to_string())),
            ];
            leaf.prop_recursive(3, 32, 6, |inner| {
                prop_oneof![
                    proptest::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
                    proptest::collection::btree_map("[a-zA-Z]{1,12}", inner, 0..6)
                        .prop_map(|m| Value::Object(m.into_iter().collect())),
                ]
            })
        }

        const KEYS: [&str; 14] = [
            "cniVersion",
            "cniVersions",
            "name",
            "type",
            "bridge",
            "mtu",
            "ipMasq",
            "clusterCIDR",
            "hairpinMode",
            "ipam",
            "dns",
            "runtimeConfig",
            "prevResult",
            "cni.dev/valid-attachments",
        ];

        proptest! {
            /// Untrusted bytes never panic the parser, and every refusal carries a spec code a
            /// runtime understands for bad input.
            #[test]
            fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
                if let Err(e) = NetConf::parse(&bytes) {
                    prop_assert!(matches!(e.code, ErrorCode::Decode | ErrorCode::InvalidConfig | ErrorCode::IncompatibleVersion | ErrorCode::UnsupportedField));
                }
            }

            /// A valid config with any known key replaced by any JSON value: parsed or refused with a
            /// message naming a field, never a panic.
            #[test]
            fn any_value_in_any_known_field(key in proptest::sample::select(KEYS.to_vec()), value in any_json()) {
                let mut v = base();
                v[key] = value;
                match NetConf::parse(v.to_string().as_bytes()) {
                    Ok(c) => prop_assert_eq!(c.name.is_empty(), false),
                    Err(e) => {
                        prop_assert!(!e.msg.is_empty());
                        prop_assert!(matches!(e.code, ErrorCode::Decode | ErrorCode::InvalidConfig | ErrorCode::IncompatibleVersion | ErrorCode::UnsupportedField));
                    }
                }
            }

            /// Valid configs parse to exactly what they say, with the pool inside the subnet.
            #[test]
            fn valid_configs_parse_faithfully(
                a in 0u8..=255, b in 0u8..=255, prefix in 16u8..=28,
                mtu in 68u32..=9000, masq in any::<bool>(), hairpin in any::<bool>(),
                version in proptest::sample::select(vec!["0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"]),
            ) {
                let subnet = Ipv4Net::new(std::net::Ipv4Addr::new(10, a, b, 0), prefix).unwrap().trunc();
                let v = json!({"cniVersion": version, "name": "n", "mtu": mtu, "ipMasq": masq, "hairpinMode": hairpin,
                               "ipam": {"subnet": subnet.to_string()}});
                let c = NetConf::parse(v.to_string().as_bytes()).unwrap();
                prop_assert_eq!(c.cni_version.as_str(), version);
                prop_assert_eq!(c.mtu, mtu);
                prop_assert_eq!((c.ip_masq, c.hairpin_mode), (masq, hairpin));
                let Ipam::Builtin(ipam) = c.ipam else { panic!("builtin") };
                prop_assert_eq!(ipam.subnet, subnet);
                prop_assert!(subnet.contains(&ipam.gateway) && subnet.contains(&ipam.range_start) && subnet.contains(&ipam.range_end));
                prop_assert!(ipam.gateway != subnet.network() && ipam.range_end != subnet.broadcast());
            }
        }
    }
}
