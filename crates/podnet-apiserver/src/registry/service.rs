//! Service admission: ClusterIP and NodePort allocation on create and update, release on delete.

use std::net::Ipv4Addr;

use podnet_apimachinery::FieldError;
use serde_json::{Value, json};

use super::Api;
use crate::alloc::{AllocError, Allocator};

/// What one admission allocated (released again if the write fails).
#[derive(Debug, Default)]
pub struct Allocated {
    ips: Vec<Ipv4Addr>,
    ports: Vec<u16>,
}

fn cluster_ip(v: &Value) -> Option<Ipv4Addr> {
    v.pointer("/spec/clusterIP")
        .and_then(Value::as_str)
        .and_then(|s| s.parse().ok())
}

fn node_ports(v: &Value) -> Vec<u16> {
    v.pointer("/spec/ports")
        .and_then(Value::as_array)
        .map(|ps| {
            ps.iter()
                .filter_map(|p| p.get("nodePort").and_then(Value::as_u64))
                .filter(|n| *n != 0)
                .map(|n| n as u16)
                .collect()
        })
        .unwrap_or_default()
}

/// Marks a stored Service's allocations as used.
pub fn restore(a: &mut Allocator, v: &Value) {
    if let Some(ip) = cluster_ip(v) {
        a.restore_ip(ip);
    }
    for p in node_ports(v) {
        a.restore_port(p);
    }
}

pub fn release(api: &Api, got: &Allocated) {
    let mut a = api.allocator();
    for ip in &got.ips {
        a.release_ip(*ip);
    }
    for p in &got.ports {
        a.release_port(*p);
    }
}

/// Releases everything a deleted Service held.
pub fn release_all(api: &Api, v: &Value) {
    let mut a = api.allocator();
    if let Some(ip) = cluster_ip(v) {
        a.release_ip(ip);
    }
    for p in node_ports(v) {
        a.release_port(p);
    }
}

/// Releases what `old` held and `new` no longer does.
pub fn release_dropped(api: &Api, old: &Value, new: &Value) {
    let mut a = api.allocator();
    if let Some(ip) = cluster_ip(old)
        && cluster_ip(new) != Some(ip)
    {
        a.release_ip(ip);
    }
    let kept = node_ports(new);
    for p in node_ports(old) {
        if !kept.contains(&p) {
            a.release_port(p);
        }
    }
}

/// Allocates the ClusterIP and NodePorts `new` needs (keeping those of `old` on updates).
pub fn allocate(
    api: &Api,
    new: &mut Value,
    old: Option<&Value>,
) -> Result<Allocated, Vec<FieldError>> {
    let mut got = Allocated::default();
    let ty = new
        .pointer("/spec/type")
        .and_then(Value::as_str)
        .unwrap_or("ClusterIP")
        .to_string();
    let mut errs = Vec::new();
    let mut a = api.allocator();
    let spec = new.get_mut("spec").and_then(Value::as_object_mut);
    let Some(spec) = spec else { return Ok(got) };
    if ty == "ExternalName" {
        spec.remove("clusterIP");
        spec.remove("clusterIPs");
    } else {
        let old_ip = old.and_then(cluster_ip);
        let requested = spec
            .get("clusterIP")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        if requested == "None" {
            spec.insert("clusterIPs".into(), json!(["None"]));
        } else if requested.is_empty() && old_ip.is_some() {
            let ip = old_ip.expect("checked");
            spec.insert("clusterIP".into(), json!(ip.to_string()));
            spec.insert("clusterIPs".into(), json!([ip.to_string()]));
        } else {
            let want = if requested.is_empty() {
                None
            } else {
                match requested.parse::<Ipv4Addr>() {
                    Ok(ip) => Some(ip),
                    Err(_) => {
                        errs.push(FieldError::invalid(
                            "spec.clusterIPs[0]",
                            requested.as_str(),
                            "must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)",
                        ));
                        None
                    }
                }
            };
            if errs.is_empty() && (want.is_none() || want != old_ip) {
                match a.allocate_ip(want) {
                    Ok(ip) => {
                        got.ips.push(ip);
                        spec.insert("clusterIP".into(), json!(ip.to_string()));
                        spec.insert("clusterIPs".into(), json!([ip.to_string()]));
                    }
                    Err(AllocError::Taken) => errs.push(FieldError::invalid(
                        "spec.clusterIPs",
                        json!([requested]),
                        format!(
                            "failed to allocate IP {requested}: provided IP is already allocated"
                        ),
                    )),
                    Err(AllocError::OutOfRange(m) | AllocError::Full(m)) => errs.push(
                        FieldError::invalid("spec.clusterIPs", json!([requested]), m),
                    ),
                }
            } else if let Some(ip) = want {
                spec.insert("clusterIPs".into(), json!([ip.to_string()]));
            }
        }
        if !spec.contains_key("ipFamilies") {
            spec.insert("ipFamilies".into(), json!(["IPv4"]));
        }
        if !spec.contains_key("ipFamilyPolicy") {
            spec.insert("ipFamilyPolicy".into(), json!("SingleStack"));
        }
    }
    let wants_node_ports = ty == "NodePort" || ty == "LoadBalancer";
    let old_ports: Vec<(Value, Value, u64)> = old
        .and_then(|o| o.pointer("/spec/ports"))
        .and_then(Value::as_array)
        .map(|ps| {
            ps.iter()
                .filter_map(|p| {
                    Some((
                        p.get("port")?.clone(),
                        p.get("protocol").cloned().unwrap_or(json!("TCP")),
                        p.get("nodePort")?.as_u64()?,
                    ))
                })
                .collect()
        })
        .unwrap_or_default();
    let old_set: Vec<u64> = old_ports.iter().map(|(_, _, n)| *n).collect();
    if let Some(Value::Array(ports)) = spec.get_mut("ports") {
        for (i, p) in ports.iter_mut().enumerate() {
            let Value::Object(pm) = p else { continue };
            if !wants_node_ports {
                pm.remove("nodePort");
                continue;
            }
            let requested = pm
                .get("nodePort")
                .and_then(Value::as_u64)
                .filter(|n| *n != 0);
            let res = match requested {
                Some(n) if old_set.contains(&n) => continue,
                Some(n) => a.allocate_port(u16::try_from(n).ok().or(Some(0))),
                None => {
                    let same = old_ports.iter().find(|(port, proto, _)| {
                        Some(port) == pm.get("port") && Some(proto) == pm.get("protocol")
                    });
                    if let Some((_, _, n)) = same {
                        pm.insert("nodePort".into(), json!(n));
                        continue;
                    }
                    a.allocate_port(None)
                }
            };
            match res {
                Ok(n) => {
                    got.ports.push(n);
                    pm.insert("nodePort".into(), json!(n));
                }
                Err(AllocError::Taken) => errs.push(FieldError::invalid(
                    format!("spec.ports[{i}].nodePort"),
                    requested.unwrap_or(0),
                    "provided port is already allocated",
                )),
                Err(AllocError::OutOfRange(m) | AllocError::Full(m)) => {
                    errs.push(FieldError::invalid(
                        format!("spec.ports[{i}].nodePort"),
                        requested.unwrap_or(0),
                        m,
                    ))
                }
            }
        }
    }
    drop(a);
    if errs.is_empty() {
        Ok(got)
    } else {
        release(api, &got);
        Err(errs)
    }
}
