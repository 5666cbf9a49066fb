//! The `podnet-cni` network configuration, as the runtime hands it over on stdin.
//!
//! Unknown fields are ignored (CNI expects plugins to tolerate runtime additions); every known field is
//! checked, and a bad one produces an error naming it. Nothing here touches the system.
//!
//! Keys match by Go's rule (exact spelling first, else case-insensitively; see [`super::fields`]), in
//! every object read here, so configurations and capability arguments written for the Go plugins work
//! unchanged: containerd 1.6/1.7 send `runtimeConfig.portMappings` as `{"HostPort":..,"ContainerPort":..}`.
//!
//! How strictly a verb reads depends on what it needs ([`NetConf::parse_for`]): ADD and STATUS refuse
//! any bad field; CHECK and GC set aside the fields they do not use; DEL sets aside everything but the
//! network's name, since a failed DEL leaves the runtime's sandbox stuck.

use super::error::{CniError, ErrorCode};
use super::fields::{self, FieldError, Fields};
use super::request::Command;
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
    /// `spoofCheck`: frames from a pod's port must carry the pod's own MAC and addresses (IPv4, its
    /// IPv6 link-local, ARP sender), as kernel-side anti-spoofing on the bridge port.
    pub spoof_check: bool,
    /// `policyHold`: a new pod's address is held for the node's NetworkPolicy agent (when its table
    /// exists) until the agent has programmed the pod. Only for attachments the agent will see as
    /// pods in the API (a kubelet's); attachments made by hand would stay held.
    pub policy_hold: bool,
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

/// Capability arguments the runtime filled in (`runtimeConfig`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RuntimeConfig {
    pub port_mappings: Vec<PortMapping>,
    /// The `ips` capability: addresses the runtime asks for (the first IPv4 one is used).
    pub ips: Vec<IpAddr>,
    /// The `mac` capability: the pod interface's MAC address (else one derived from its address).
    pub mac: Option<[u8; 6]>,
    /// Capabilities that were asked for but have no effect with podnet-cni, each with why (logged).
    pub ignored: Vec<String>,
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
    fields::lookup(v.as_object()?, "cniVersion")
        .ok()
        .flatten()?
        .as_str()
        .map(str::to_string)
}

/// The configuration as one verb reads it: what it could use, and the problems it set aside.
#[derive(Debug, Clone)]
pub struct Parsed {
    pub conf: NetConf,
    /// Problems in fields this verb does not need, replaced by their defaults (always empty for ADD and
    /// STATUS). The plugin logs them on stderr.
    pub ignored: Vec<CniError>,
}

/// Groups of fields, by what they are for; a verb needs some of them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Part {
    Version,
    /// `bridge`.
    Bridge,
    /// `type`, `mtu`, `hairpinMode`, `spoofCheck`, `policyHold`: how an attachment is made.
    Link,
    /// `ipMasq`, `clusterCIDR`.
    Masq,
    /// `ipam` and the top-level `dataDir`: where addresses and state live.
    Ipam,
    Dns,
    Runtime,
    PrevResult,
    ValidAttachments,
    DisableCheck,
    DisableGc,
}

/// Whether `command` depends on `part`. A verb refuses a bad field it needs; a bad field it does not
/// need is set aside (logged, default used). ADD and STATUS need everything: STATUS answers "would ADD
/// work". DEL needs nothing but the network's name: it undoes from podnet's own records, so no field of
/// the configuration may stop it (a failed DEL leaves the sandbox stuck; the runtime retries forever).
fn needs(command: Command, part: Part) -> bool {
    use Part::*;
    match command {
        Command::Add | Command::Status | Command::Version => true,
        // CHECK compares the attachment with prevResult and the records; capability arguments, DNS and
        // GC input play no part in that.
        Command::Check => !matches!(part, Dns | Runtime | ValidAttachments | DisableGc),
        // GC deletes: the list of valid attachments, where state lives, the bridge (strays without an
        // alias hang on it) and disableGC must be exactly right; the rest plays no part.
        Command::Gc => matches!(part, Version | Bridge | Ipam | ValidAttachments | DisableGc),
        Command::Del => false,
    }
}

/// Reads parts of the configuration for one verb, setting aside problems in parts it does not need.
struct Reader {
    command: Command,
    ignored: Vec<CniError>,
}

impl Reader {
    fn take<T>(
        &mut self,
        part: Part,
        read: Result<T, CniError>,
        fallback: impl FnOnce() -> T,
    ) -> Result<T, CniError> {
        match read {
            Ok(v) => Ok(v),
            Err(e) if !needs(self.command, part) => {
                self.ignored.push(e);
                Ok(fallback())
            }
            Err(e) => Err(e),
        }
    }
}

impl NetConf {
    /// Parses and validates the configuration from stdin bytes, as ADD reads it: every field checked.
    pub fn parse(stdin: &[u8]) -> Result<NetConf, CniError> {
        Self::parse_for(Command::Add, stdin).map(|p| p.conf)
    }

    /// Parses the configuration as `command` needs it. Fields the verb needs are validated as for
    /// ADD; problems in the others are returned in [`Parsed::ignored`] with defaults in their place.
    /// Whatever the verb, the stdin must be a JSON object with a usable `name`: without it nothing
    /// podnet made can be found (DEL treats that as nothing to undo).
    pub fn parse_for(command: Command, stdin: &[u8]) -> Result<Parsed, CniError> {
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
        let mut r = Reader {
            command,
            ignored: Vec::new(),
        };

        let cni_version = r.take(Part::Version, read_version(&f), || CniVersion::LATEST)?;
        let name = read_name(&f)?;
        let plugin_type = r.take(
            Part::Link,
            f.string("type")
                .map(|t| t.unwrap_or("podnet-cni").to_string())
                .map_err(CniError::from),
            || "podnet-cni".to_string(),
        )?;
        let bridge = r.take(Part::Bridge, read_bridge(&f), || DEFAULT_BRIDGE.to_string())?;
        let mtu = r.take(
            Part::Link,
            f.uint("mtu", 68, 65535)
                .map(|m| m.map_or(DEFAULT_MTU, |m| m as u32))
                .map_err(CniError::from),
            || DEFAULT_MTU,
        )?;
        let ip_masq = r.take(
            Part::Masq,
            f.bool("ipMasq")
                .map(|b| b.unwrap_or(false))
                .map_err(CniError::from),
            || false,
        )?;
        let hairpin_mode = r.take(
            Part::Link,
            f.bool("hairpinMode")
                .map(|b| b.unwrap_or(true))
                .map_err(CniError::from),
            || true,
        )?;
        let spoof_check = r.take(
            Part::Link,
            f.bool("spoofCheck")
                .map(|b| b.unwrap_or(false))
                .map_err(CniError::from),
            || false,
        )?;
        let policy_hold = r.take(
            Part::Link,
            f.bool("policyHold")
                .map(|b| b.unwrap_or(false))
                .map_err(CniError::from),
            || false,
        )?;

        let ipam = r.take(Part::Ipam, parse_ipam(&f), || fallback_ipam(&f))?;
        let data_dir = match &ipam {
            Ipam::Builtin(b) => b.data_dir.clone(),
            Ipam::Delegated { .. } => r.take(Part::Ipam, read_data_dir(&f, "dataDir"), || {
                PathBuf::from(DEFAULT_DATA_DIR)
            })?,
        };
        let cluster_cidr = r.take(
            Part::Masq,
            read_cluster_cidr(&f, &ipam, ip_masq),
            || match &ipam {
                Ipam::Builtin(b) => b.subnet,
                Ipam::Delegated { .. } => "0.0.0.0/32".parse().expect("literal"),
            },
        )?;
        let dns = r.take(Part::Dns, read_dns(&f), Dns::default)?;
        let runtime = r.take(
            Part::Runtime,
            parse_runtime_config(&f),
            RuntimeConfig::default,
        )?;
        let prev_result = r.take(Part::PrevResult, read_prev_result(&f), || None)?;
        let valid_attachments =
            r.take(Part::ValidAttachments, read_valid_attachments(&f), || None)?;
        let disable_check = r.take(
            Part::DisableCheck,
            f.bool("disableCheck")
                .map(|b| b.unwrap_or(false))
                .map_err(CniError::from),
            || false,
        )?;
        let disable_gc = r.take(
            Part::DisableGc,
            f.bool("disableGC")
                .map(|b| b.unwrap_or(false))
                .map_err(CniError::from),
            || false,
        )?;

        Ok(Parsed {
            conf: NetConf {
                cni_version,
                name,
                plugin_type,
                bridge,
                mtu,
                ip_masq,
                cluster_cidr,
                hairpin_mode,
                spoof_check,
                policy_hold,
                ipam,
                data_dir,
                dns,
                runtime,
                prev_result,
                valid_attachments,
                disable_check,
                disable_gc,
                raw,
            },
            ignored: r.ignored,
        })
    }
}

fn read_version(f: &Fields<'_>) -> Result<CniVersion, CniError> {
    let versions = f.strings("cniVersions")?;
    version::negotiate(f.string("cniVersion")?, &versions)
        .map_err(|e| CniError::new(ErrorCode::IncompatibleVersion, e.to_string()))
}

fn read_name(f: &Fields<'_>) -> Result<String, CniError> {
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
    Ok(name)
}

fn read_bridge(f: &Fields<'_>) -> Result<String, CniError> {
    let bridge = f.string("bridge")?.unwrap_or(DEFAULT_BRIDGE).to_string();
    if let Err(problem) = names::check_ifname(&bridge) {
        return Err(invalid("bridge", format!("{bridge:?} {problem}")));
    }
    Ok(bridge)
}

fn read_data_dir(f: &Fields<'_>, key: &str) -> Result<PathBuf, CniError> {
    let d = PathBuf::from(f.string(key)?.unwrap_or(DEFAULT_DATA_DIR));
    if !d.is_absolute() {
        return Err(invalid(
            &f.path_of(key),
            format!("{:?} must be an absolute path", d.display().to_string()),
        ));
    }
    Ok(d)
}

/// Where state lives when `ipam` is unusable, for DEL: whatever of `ipam.type` and the data directory
/// can still be read, defaults for the rest. The pool itself is unknown; nothing DEL does needs it.
fn fallback_ipam(f: &Fields<'_>) -> Ipam {
    let ipam = f.object("ipam").ok().flatten();
    let plugin = ipam
        .as_ref()
        .and_then(|i| i.string("type").ok().flatten())
        .filter(|p| {
            !matches!(*p, "podnet" | "podnet-cni")
                && !p.is_empty()
                && !p.contains('/')
                && !p.contains('\\')
        });
    if let Some(plugin) = plugin {
        return Ipam::Delegated {
            plugin: plugin.to_string(),
        };
    }
    let data_dir = ipam
        .as_ref()
        .and_then(|i| read_data_dir(i, "dataDir").ok())
        .unwrap_or_else(|| PathBuf::from(DEFAULT_DATA_DIR));
    let any: Ipv4Net = "0.0.0.0/0".parse().expect("literal");
    Ipam::Builtin(BuiltinIpam {
        subnet: any,
        range_start: Ipv4Addr::UNSPECIFIED,
        range_end: Ipv4Addr::UNSPECIFIED,
        gateway: Ipv4Addr::UNSPECIFIED,
        routes: Vec::new(),
        data_dir,
    })
}

fn read_cluster_cidr(f: &Fields<'_>, ipam: &Ipam, ip_masq: bool) -> Result<Ipv4Net, CniError> {
    let cluster_cidr = match f.parsed::<IpNet>("clusterCIDR", "a CIDR such as 10.244.0.0/16")? {
        None => match ipam {
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
    if let Ipam::Builtin(b) = ipam
        && !cluster_cidr.contains(&b.subnet)
    {
        return Err(invalid(
            "ipam.subnet",
            format!("{} is not inside clusterCIDR {cluster_cidr}", b.subnet),
        ));
    }
    Ok(cluster_cidr)
}

/// A serde-derived value under `key`, its keys matched by Go's rule (see [`fields`]).
fn read_derived<T: serde::de::DeserializeOwned>(
    f: &Fields<'_>,
    key: &str,
    names: &[&str],
    code: ErrorCode,
) -> Result<Option<T>, CniError> {
    let Some(v) = f.raw(key)? else {
        return Ok(None);
    };
    let field = f.path_of(key);
    let v = fields::canonical(v, names).map_err(|e| CniError::new(code, format!("{field}.{e}")))?;
    serde_json::from_value(v)
        .map(Some)
        .map_err(|e| CniError::new(code, format!("{field}: {e}")))
}

const DNS_KEYS: [&str; 4] = ["nameservers", "domain", "search", "options"];

fn read_dns(f: &Fields<'_>) -> Result<Dns, CniError> {
    Ok(read_derived(f, "dns", &DNS_KEYS, ErrorCode::InvalidConfig)?.unwrap_or_default())
}

fn read_prev_result(f: &Fields<'_>) -> Result<Option<CniResult>, CniError> {
    match f.raw("prevResult")? {
        None => Ok(None),
        Some(v) => CniResult::from_json(v)
            .map(Some)
            .map_err(|e| CniError::new(ErrorCode::Decode, format!("prevResult.{e}"))),
    }
}

fn read_valid_attachments(f: &Fields<'_>) -> Result<Option<Vec<Attachment>>, CniError> {
    const KEY: &str = "cni.dev/valid-attachments";
    let Some(list) = f
        .array(KEY)
        .map_err(|e| CniError::new(ErrorCode::Decode, e.to_string()))?
    else {
        return Ok(None);
    };
    let mut out = Vec::with_capacity(list.len());
    for (i, a) in list.iter().enumerate() {
        let field = format!("{KEY}[{i}]");
        let a = fields::canonical(a, &["containerID", "ifname"])
            .map_err(|e| CniError::new(ErrorCode::Decode, format!("{field}.{e}")))?;
        out.push(
            serde_json::from_value(a)
                .map_err(|e| CniError::new(ErrorCode::Decode, format!("{field}: {e}")))?,
        );
    }
    Ok(Some(out))
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
                let obj = r
                    .as_object()
                    .ok_or_else(|| invalid(&format!("ipam.routes[{i}]"), "expected an object"))?;
                let rf = Fields::new(obj, &format!("ipam.routes[{i}]"));
                let dst = rf
                    .string("dst")?
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
                let gw = match rf.raw("gw")? {
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
    let data_dir = read_data_dir(&ipam, "dataDir")?;
    Ok(Ipam::Builtin(BuiltinIpam {
        subnet,
        range_start,
        range_end,
        gateway,
        routes,
        data_dir,
    }))
}

/// Capability arguments (CNI conventions), read with Go's key rule so both the conventions' keys
/// (`hostPort`) and the Go field names containerd's go-cni sends (`HostPort`) work. podnet honours
/// `portMappings`, `ips` and `mac`; it accepts and ignores the rest (`bandwidth`, `ipRanges`, `dns`,
/// `aliases`, `cgroupPath`, `io.kubernetes.cri.pod-annotations`, ...), noting in
/// [`RuntimeConfig::ignored`] those whose absence of effect a user would want to know about.
fn parse_runtime_config(f: &Fields<'_>) -> Result<RuntimeConfig, CniError> {
    let Some(rc) = f.object("runtimeConfig")? else {
        return Ok(RuntimeConfig::default());
    };
    let mut out = RuntimeConfig::default();
    if let Some(list) = rc.array("portMappings")? {
        for (i, m) in list.iter().enumerate() {
            if let Some(mapping) =
                read_port_mapping(m, &format!("runtimeConfig.portMappings[{i}]"))?
            {
                out.port_mappings.push(mapping);
            }
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
    if let Some(s) = rc.string("mac")?.filter(|s| !s.is_empty()) {
        out.mac =
            Some(parse_mac(s).map_err(|p| invalid("runtimeConfig.mac", format!("{s:?} {p}")))?);
    }
    // Shaping and per-pod ranges are not podnet's: say so when they were asked for, so nobody thinks
    // a limit applies. The values are not validated: podnet does not read them.
    if let Some(bw) = rc.raw("bandwidth")?.and_then(Value::as_object) {
        let set = ["ingressRate", "egressRate"].iter().any(|k| {
            fields::lookup(bw, k)
                .ok()
                .flatten()
                .and_then(Value::as_u64)
                .unwrap_or(0)
                > 0
        });
        if set {
            out.ignored.push(
                "runtimeConfig.bandwidth: podnet-cni does not shape traffic; chain the bandwidth plugin after it".into(),
            );
        }
    }
    if rc
        .raw("ipRanges")?
        .and_then(Value::as_array)
        .is_some_and(|r| !r.is_empty())
    {
        out.ignored.push(
            "runtimeConfig.ipRanges: podnet-cni allocates from ipam.subnet; per-pod ranges are not supported".into(),
        );
    }
    Ok(out)
}

/// One `portMappings` entry; `None` for an IPv6 one (an IPv4 pod cannot take it).
fn read_port_mapping(m: &Value, path: &str) -> Result<Option<PortMapping>, CniError> {
    let obj = m
        .as_object()
        .ok_or_else(|| invalid(path, "expected an object"))?;
    let mf = Fields::new(obj, path);
    let host_port = mf
        .uint("hostPort", 1, 65535)?
        .ok_or_else(|| invalid(&mf.path_of("hostPort"), "missing"))? as u16;
    let container_port =
        mf.uint("containerPort", 1, 65535)?
            .ok_or_else(|| invalid(&mf.path_of("containerPort"), "missing"))? as u16;
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
            // The runtime sends one entry per family; an IPv6 mapping cannot apply to an IPv4 pod, so
            // it is skipped, as the reference portmap plugin does.
            Ok(IpAddr::V6(_)) => return Ok(None),
            Err(_) => {
                return Err(invalid(
                    &mf.path_of("hostIP"),
                    format!("{s:?} is not an IP address"),
                ));
            }
        },
    };
    Ok(Some(PortMapping {
        host_port,
        container_port,
        protocol,
        host_ip,
    }))
}

/// A unicast Ethernet address, `aa:bb:cc:dd:ee:ff` (or with `-`).
fn parse_mac(s: &str) -> Result<[u8; 6], &'static str> {
    let parts: Vec<&str> = s.split([':', '-']).collect();
    let mut mac = [0u8; 6];
    if parts.len() != 6 {
        return Err("is not a MAC address (six hex octets)");
    }
    for (o, p) in mac.iter_mut().zip(&parts) {
        if p.len() != 2 {
            return Err("is not a MAC address (six hex octets)");
        }
        *o = u8::from_str_radix(p, 16).map_err(|_| "is not a MAC address (six hex octets)")?;
    }
    if mac[0] & 1 == 1 {
        return Err("is a multicast address; an interface needs a unicast one");
    }
    if mac == [0; 6] {
        return Err("is the zero address");
    }
    Ok(mac)
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
        assert!(
            !c.spoof_check,
            "off unless asked for, as the reference plugins' macspoofchk"
        );
        assert!(!c.policy_hold, "off unless asked for");
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

    /// What containerd 1.6/1.7 (go-cni) puts in `runtimeConfig`: Go field names, no JSON tags.
    fn containerd_runtime_config() -> Value {
        json!({
            "portMappings": [
                {"HostPort": 18080, "ContainerPort": 80, "Protocol": "tcp", "HostIP": ""},
                {"HostPort": 18053, "ContainerPort": 53, "Protocol": "udp", "HostIP": "10.100.0.2"}
            ],
            "bandwidth": {"IngressRate": 10000000, "IngressBurst": 2147483647, "EgressRate": 0, "EgressBurst": 0},
            "dns": {"Servers": ["10.96.0.10"], "Searches": ["default.svc.cluster.local"], "Options": ["ndots:5"]},
            "cgroupPath": "/kubepods/besteffort/pod1234",
            "io.kubernetes.cri.pod-annotations": {"kubernetes.io/ingress-bandwidth": "10M"}
        })
    }

    #[test]
    fn containerd_go_field_names_are_read() {
        let mut v = base();
        v["runtimeConfig"] = containerd_runtime_config();
        let c = parse(v).unwrap();
        assert_eq!(
            c.runtime.port_mappings,
            vec![
                PortMapping {
                    host_port: 18053,
                    container_port: 53,
                    protocol: Protocol::Udp,
                    host_ip: Some("10.100.0.2".parse().unwrap())
                },
                PortMapping {
                    host_port: 18080,
                    container_port: 80,
                    protocol: Protocol::Tcp,
                    host_ip: None
                },
            ]
        );
        assert_eq!(c.runtime.ignored.len(), 1, "{:?}", c.runtime.ignored);
        assert!(c.runtime.ignored[0].starts_with("runtimeConfig.bandwidth:"));
    }

    #[test]
    fn every_capability_is_accepted_in_the_conventions_keys() {
        let mut v = base();
        v["runtimeConfig"] = json!({
            "portMappings": [{"hostPort": 8080, "containerPort": 80, "protocol": "tcp", "hostIP": "0.0.0.0"}],
            "ipRanges": [[{"subnet": "10.244.1.0/24", "rangeStart": "10.244.1.10", "rangeEnd": "10.244.1.20", "gateway": "10.244.1.1"}]],
            "bandwidth": {"ingressRate": 0, "ingressBurst": 0, "egressRate": 0, "egressBurst": 0},
            "dns": {"servers": ["10.96.0.10"], "searches": ["svc.cluster.local"], "options": ["ndots:5"]},
            "ips": ["10.244.1.7/24", "fd00::7/64"],
            "mac": "c2:11:22:33:44:55",
            "infinibandGUID": "c2:11:22:33:44:55:66:77",
            "deviceID": "0000:04:00.5",
            "aliases": ["web", "web.default"],
            "cgroupPath": "/kubelet.slice/kubelet-kubepods.slice",
            "io.kubernetes.cri.pod-annotations": {"a": "b"}
        });
        let c = parse(v).unwrap();
        assert_eq!(c.runtime.port_mappings.len(), 1);
        assert_eq!(c.runtime.port_mappings[0].host_ip, None);
        assert_eq!(
            c.runtime.ips,
            vec![
                "10.244.1.7".parse::<IpAddr>().unwrap(),
                "fd00::7".parse().unwrap()
            ]
        );
        assert_eq!(c.runtime.mac, Some([0xc2, 0x11, 0x22, 0x33, 0x44, 0x55]));
        assert_eq!(
            c.runtime.ignored.len(),
            1,
            "ipRanges asked for, not applied"
        );
        assert!(c.runtime.ignored[0].starts_with("runtimeConfig.ipRanges:"));

        // The same in Go field names.
        let mut v = base();
        v["RuntimeConfig"] = json!({
            "PortMappings": [{"HostPort": 8080, "ContainerPort": 80, "Protocol": "TCP", "HostIP": "0.0.0.0"}],
            "IPRanges": [[{"Subnet": "10.244.1.0/24"}]],
            "IPs": ["10.244.1.7"],
            "MAC": "C2-11-22-33-44-55",
        });
        let c = parse(v).unwrap();
        assert_eq!(c.runtime.port_mappings.len(), 1);
        assert_eq!(c.runtime.ips, vec!["10.244.1.7".parse::<IpAddr>().unwrap()]);
        assert_eq!(c.runtime.mac, Some([0xc2, 0x11, 0x22, 0x33, 0x44, 0x55]));
    }

    #[test]
    fn a_bad_runtime_config_is_refused_on_add_by_name() {
        for (rc, field) in [
            (
                json!({"portMappings": [{"HostPort": 0, "ContainerPort": 80}]}),
                "runtimeConfig.portMappings[0].hostPort",
            ),
            (
                json!({"portMappings": [{"containerPort": 80}]}),
                "runtimeConfig.portMappings[0].hostPort",
            ),
            (
                json!({"portMappings": [{"hostPort": 1, "containerPort": 80, "protocol": "icmp"}]}),
                "runtimeConfig.portMappings[0].protocol",
            ),
            (
                json!({"portMappings": {"hostPort": 1}}),
                "runtimeConfig.portMappings",
            ),
            (json!({"ips": ["10.244.1.300"]}), "runtimeConfig.ips[0]"),
            (json!({"mac": "01:00:5e:00:00:01"}), "runtimeConfig.mac"),
            (json!({"mac": "c2:11:22:33:44"}), "runtimeConfig.mac"),
            (json!("not an object"), "runtimeConfig"),
        ] {
            let mut v = base();
            v["runtimeConfig"] = rc.clone();
            let e = err_of(v);
            assert_eq!(e.code, ErrorCode::InvalidConfig, "{rc}: {e}");
            assert!(e.msg.starts_with(&format!("{field}:")), "{rc}: {}", e.msg);
        }
    }

    #[test]
    fn del_reads_only_the_name_and_sets_everything_else_aside() {
        let broken = json!({"cniVersion": "0.2.0", "name": "podnet", "mtu": "big", "bridge": "a bridge name far too long",
            "ipMasq": "yes", "clusterCIDR": 7, "hairpinMode": 1, "dns": [1],
            "ipam": {"subnet": "10.244.1.0/40", "dataDir": "/var/lib/pnt-ipam"},
            "runtimeConfig": {"portMappings": [{"HostPort": "eighty"}]},
            "prevResult": {"ips": "none"}, "cni.dev/valid-attachments": 3, "disableCheck": "no", "disableGC": "no"});
        let p = NetConf::parse_for(Command::Del, broken.to_string().as_bytes()).unwrap();
        assert_eq!(p.conf.name, "podnet");
        assert_eq!(
            p.conf.data_dir,
            PathBuf::from("/var/lib/pnt-ipam"),
            "state is still found"
        );
        assert_eq!(p.conf.cni_version, CniVersion::LATEST);
        let fields: Vec<&str> = p
            .ignored
            .iter()
            .map(|e| e.msg.split(':').next().unwrap())
            .collect();
        for f in [
            "cniVersion 0.2.0 is not supported (supported",
            "mtu",
            "bridge",
            "ipMasq",
            "ipam.subnet",
            "dns",
            "runtimeConfig.portMappings[0].hostPort",
            "prevResult.ips",
            "cni.dev/valid-attachments",
            "disableCheck",
            "disableGC",
        ] {
            assert!(
                fields
                    .iter()
                    .any(|g| g.starts_with(f.split(' ').next().unwrap())),
                "{f} in {fields:?}"
            );
        }
        // The same input is refused by ADD.
        assert!(NetConf::parse(broken.to_string().as_bytes()).is_err());

        // A delegated IPAM is still known as such, so DEL reaches it.
        let v = json!({"cniVersion": "1.0.0", "name": "n", "ipMasq": true, "ipam": {"type": "host-local"}});
        let p = NetConf::parse_for(Command::Del, v.to_string().as_bytes()).unwrap();
        assert_eq!(
            p.conf.ipam,
            Ipam::Delegated {
                plugin: "host-local".into()
            }
        );
        assert_eq!(p.ignored.len(), 1, "clusterCIDR: {:?}", p.ignored);

        // Without a usable name nothing can be found: an error (the plugin turns it into "nothing to undo").
        for v in [json!({"cniVersion": "1.0.0"}), json!({"name": "../x"})] {
            assert!(NetConf::parse_for(Command::Del, v.to_string().as_bytes()).is_err());
        }
    }

    #[test]
    fn check_and_gc_set_aside_only_what_they_do_not_use() {
        let mut v = base();
        v["runtimeConfig"] = json!({"portMappings": [{"hostPort": "x"}]});
        v["dns"] = json!("8.8.8.8");
        let p = NetConf::parse_for(Command::Check, v.to_string().as_bytes()).unwrap();
        assert_eq!(p.ignored.len(), 2);
        let p = NetConf::parse_for(Command::Gc, v.to_string().as_bytes()).unwrap();
        assert_eq!(p.ignored.len(), 2);
        assert_eq!(
            NetConf::parse_for(Command::Status, v.to_string().as_bytes())
                .unwrap_err()
                .code,
            ErrorCode::InvalidConfig,
            "STATUS says whether ADD would work"
        );

        // CHECK needs prevResult and what it checks against.
        let mut v = base();
        v["prevResult"] = json!({"ips": 5});
        assert_eq!(
            NetConf::parse_for(Command::Check, v.to_string().as_bytes())
                .unwrap_err()
                .code,
            ErrorCode::Decode
        );
        let mut v = base();
        v["hairpinMode"] = json!("on");
        assert!(NetConf::parse_for(Command::Check, v.to_string().as_bytes()).is_err());
        let p = NetConf::parse_for(Command::Gc, v.to_string().as_bytes()).unwrap();
        assert_eq!(p.ignored.len(), 1, "GC does not care about hairpin");

        // GC deletes: a bad list of valid attachments must never read as "none are valid".
        let mut v = base();
        v["cni.dev/valid-attachments"] = json!([{"containerID": 5, "ifname": "eth0"}]);
        assert_eq!(
            NetConf::parse_for(Command::Gc, v.to_string().as_bytes())
                .unwrap_err()
                .code,
            ErrorCode::Decode
        );
        v["cni.dev/valid-attachments"] = json!({"containerID": "a"});
        assert_eq!(
            NetConf::parse_for(Command::Gc, v.to_string().as_bytes())
                .unwrap_err()
                .code,
            ErrorCode::Decode
        );
        let mut v = base();
        v["disableGC"] = json!("true");
        assert!(NetConf::parse_for(Command::Gc, v.to_string().as_bytes()).is_err());
    }

    #[test]
    fn every_key_matches_in_any_case() {
        let v = json!({"CNIVERSION": "1.0.0", "Name": "podnet", "Type": "podnet-cni", "BRIDGE": "br9", "Mtu": 1400,
            "IPMasq": true, "ClusterCidr": "10.244.0.0/16", "HAIRPINMODE": false, "DisableCheck": true, "DisableGc": true,
            "IPAM": {"Subnet": "10.244.1.0/24", "Gateway": "10.244.1.254", "RangeStart": "10.244.1.10", "RANGEEND": "10.244.1.20",
                     "DataDir": "/var/lib/pnt-x", "Routes": [{"Dst": "0.0.0.0/0"}, {"DST": "192.0.2.0/24", "GW": "10.244.1.1"}]},
            "DNS": {"Nameservers": ["10.96.0.10"], "Search": ["svc"]},
            "PrevResult": {"Interfaces": [{"Name": "eth0", "Sandbox": "/run/netns/x", "Mac": "0a:58:0a:f4:01:05"}],
                           "IPs": [{"Address": "10.244.1.5/24", "Gateway": "10.244.1.1", "Interface": 0, "Version": "4"}],
                           "Routes": [{"Dst": "0.0.0.0/0", "Gw": "10.244.1.1"}], "Dns": {"Nameservers": ["1.1.1.1"]}},
            "CNI.dev/Valid-Attachments": [{"ContainerId": "abc", "IfName": "eth0"}]});
        let c = parse(v).unwrap();
        assert_eq!(
            (c.cni_version, c.name.as_str(), c.bridge.as_str(), c.mtu),
            (CniVersion::V1_0_0, "podnet", "br9", 1400)
        );
        assert!(c.ip_masq && !c.hairpin_mode && c.disable_check && c.disable_gc);
        assert_eq!(c.cluster_cidr.to_string(), "10.244.0.0/16");
        let Ipam::Builtin(b) = &c.ipam else {
            panic!("builtin")
        };
        assert_eq!(
            (
                b.gateway.to_string(),
                b.range_start.to_string(),
                b.range_end.to_string()
            ),
            (
                "10.244.1.254".into(),
                "10.244.1.10".into(),
                "10.244.1.20".into()
            )
        );
        assert_eq!(b.routes[1].gw, Some("10.244.1.1".parse().unwrap()));
        assert_eq!(c.data_dir, PathBuf::from("/var/lib/pnt-x"));
        assert_eq!(c.dns.nameservers, vec!["10.96.0.10"]);
        assert_eq!(c.dns.search, vec!["svc"]);
        let prev = c.prev_result.unwrap();
        assert_eq!(prev.interfaces[0].sandbox.as_deref(), Some("/run/netns/x"));
        assert_eq!(prev.ips[0].interface, Some(0));
        assert_eq!(prev.routes[0].gw, Some("10.244.1.1".parse().unwrap()));
        assert_eq!(prev.dns.nameservers, vec!["1.1.1.1"]);
        assert_eq!(
            c.valid_attachments.unwrap()[0],
            Attachment {
                container_id: "abc".into(),
                ifname: "eth0".into()
            }
        );
        assert_eq!(
            sniff_version(br#"{"CniVersion": "0.4.0"}"#).as_deref(),
            Some("0.4.0")
        );
    }

    #[test]
    fn the_exact_spelling_wins_and_case_variants_may_not_disagree() {
        let mut v = base();
        v["mtu"] = json!(1400);
        v["MTU"] = json!(9000);
        assert_eq!(parse(v).unwrap().mtu, 1400);
        let mut v = base();
        v["Mtu"] = json!(1400);
        v["MTU"] = json!(9000);
        let e = err_of(v);
        assert_eq!(e.code, ErrorCode::InvalidConfig);
        assert!(e.msg.starts_with("mtu: ambiguous"), "{}", e.msg);
        let mut v = base();
        v["runtimeConfig"] =
            json!({"portMappings": [{"HostPort": 80, "HOSTPORT": 81, "containerPort": 80}]});
        assert!(
            err_of(v)
                .msg
                .starts_with("runtimeConfig.portMappings[0].hostPort: ambiguous")
        );
        let mut v = base();
        v["prevResult"] = json!({"IPs": [], "Ips": [{"address": "10.0.0.2/24"}]});
        assert!(err_of(v).msg.starts_with("prevResult.ips: ambiguous"));
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

        /// A config using every key podnet reads.
        fn full_config() -> Value {
            json!({"cniVersion": "1.0.0", "cniVersions": ["0.4.0", "1.0.0"], "name": "podnet", "type": "podnet-cni",
                "bridge": "br9", "mtu": 1400, "ipMasq": true, "clusterCIDR": "10.244.0.0/16", "hairpinMode": false,
                "disableCheck": true, "disableGC": false,
                "ipam": {"type": "podnet", "subnet": "10.244.1.0/24", "gateway": "10.244.1.254", "rangeStart": "10.244.1.10",
                         "rangeEnd": "10.244.1.20", "dataDir": "/var/lib/pnt-x",
                         "routes": [{"dst": "0.0.0.0/0"}, {"dst": "192.0.2.0/24", "gw": "10.244.1.1"}]},
                "dns": {"nameservers": ["10.96.0.10"], "domain": "cluster.local", "search": ["svc"], "options": ["ndots:5"]},
                "runtimeConfig": {"portMappings": [{"hostPort": 8080, "containerPort": 80, "protocol": "udp", "hostIP": "10.100.0.2"}],
                                  "ips": ["10.244.1.12/24"], "mac": "c2:11:22:33:44:55",
                                  "bandwidth": {"ingressRate": 1000, "egressRate": 0}, "ipRanges": [[{"subnet": "10.244.1.0/24"}]]},
                "prevResult": {"interfaces": [{"name": "eth0", "mac": "0a:58:0a:f4:01:05", "mtu": 1400, "sandbox": "/run/netns/x",
                                               "socketPath": "/s", "pciID": "0000:00:01.0"}],
                               "ips": [{"address": "10.244.1.5/24", "gateway": "10.244.1.1", "interface": 0}],
                               "routes": [{"dst": "0.0.0.0/0", "gw": "10.244.1.1", "mtu": 1400, "advmss": 1360,
                                           "priority": 5, "table": 10, "scope": 0}],
                               "dns": {"nameservers": ["1.1.1.1"], "domain": "d", "search": ["s"], "options": ["o"]}},
                "cni.dev/valid-attachments": [{"containerID": "abc", "ifname": "eth0"}]})
        }

        /// `v` with the case of key letters flipped where `flips` says (cycled).
        fn recase(v: &Value, flips: &[bool], i: &mut usize) -> Value {
            match v {
                Value::Object(m) => Value::Object(
                    m.iter()
                        .map(|(k, v)| {
                            let key: String = k
                                .chars()
                                .map(|c| {
                                    *i += 1;
                                    if flips[*i % flips.len()] {
                                        if c.is_ascii_lowercase() {
                                            c.to_ascii_uppercase()
                                        } else {
                                            c.to_ascii_lowercase()
                                        }
                                    } else {
                                        c
                                    }
                                })
                                .collect();
                            (key, recase(v, flips, i))
                        })
                        .collect(),
                ),
                Value::Array(a) => Value::Array(a.iter().map(|v| recase(v, flips, i)).collect()),
                other => other.clone(),
            }
        }

        const KEYS: [&str; 17] = [
            "disableCheck",
            "disableGC",
            "dataDir",
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

            /// Any capitalisation of every key (top level, ipam, routes, runtimeConfig, prevResult, GC
            /// list) reads exactly as the canonical spelling does: Go's rule, which the reference
            /// plugins and containerd rely on.
            #[test]
            fn any_capitalisation_of_known_keys_reads_the_same(flips in proptest::collection::vec(any::<bool>(), 1..64)) {
                let canonical = full_config();
                let mut i = 0usize;
                let recased = recase(&canonical, &flips, &mut i);
                let mut a = NetConf::parse(canonical.to_string().as_bytes()).unwrap();
                let mut b = NetConf::parse(recased.to_string().as_bytes())
                    .map_err(|e| TestCaseError::fail(format!("{recased}: {e}")))?;
                a.raw = Value::Null;
                b.raw = Value::Null;
                prop_assert_eq!(a, b);
            }

            /// DEL's promise: whatever any field but the name holds (in any capitalisation), DEL reads
            /// the configuration, so it can always undo what ADD made; and no verb panics on it.
            #[test]
            fn del_reads_any_value_in_any_field_but_the_name(
                key in proptest::sample::select(KEYS.iter().copied().filter(|k| *k != "name").collect::<Vec<_>>()),
                upper in any::<bool>(),
                value in any_json(),
            ) {
                let mut v = base();
                let key = if upper { key.to_ascii_uppercase() } else { key.to_string() };
                v[key.as_str()] = value;
                let text = v.to_string();
                let del = NetConf::parse_for(Command::Del, text.as_bytes());
                prop_assert!(del.is_ok(), "{text}: {:?}", del.err());
                prop_assert_eq!(del.unwrap().conf.name, "podnet");
                for command in [Command::Add, Command::Check, Command::Gc, Command::Status] {
                    let _ = NetConf::parse_for(command, text.as_bytes());
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
