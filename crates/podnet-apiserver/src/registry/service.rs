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

fn service_type(v: &Value) -> &str {
    v.pointer("/spec/type")
        .and_then(Value::as_str)
        .unwrap_or("ClusterIP")
}

fn spec_field<'a>(v: &'a Value, field: &str) -> Option<&'a Value> {
    v.get("spec").and_then(|s| s.get(field))
}

/// On an update that changes the type, drops what only the old type needed and the client carried
/// over unchanged, as kube-apiserver's `dropTypeDependentFields` does: the allocated nodePorts (and the
/// externalTrafficPolicy defaulted with them) of a NodePort Service switched to ClusterIP, the
/// clusterIP of one switched to ExternalName. Without this the carried-over values fail validation,
/// so `kubectl patch -p '{"spec":{"type":"ClusterIP"}}'` and a helm rollback across the type change
/// are refused. A value the client changed stays, and validation judges it.
pub fn drop_type_dependent_fields(new: &mut Value, old: &Value) {
    let (old_ty, new_ty) = (service_type(old).to_string(), service_type(new).to_string());
    let external = |t: &str| t == "NodePort" || t == "LoadBalancer";
    let same = |new: &Value, f: &str| spec_field(new, f) == spec_field(old, f);
    let mut drop = Vec::new();
    if old_ty != "ExternalName" && new_ty == "ExternalName" {
        if same(new, "clusterIP") && same(new, "clusterIPs") {
            drop.extend(["clusterIP", "clusterIPs"]);
        }
        drop.extend(
            ["ipFamilies", "ipFamilyPolicy"]
                .into_iter()
                .filter(|f| same(new, f)),
        );
    }
    let drop_node_ports = external(&old_ty)
        && !external(&new_ty)
        && node_ports(new).iter().all(|p| node_ports(old).contains(p));
    if external(&old_ty) && !external(&new_ty) && same(new, "externalTrafficPolicy") {
        drop.push("externalTrafficPolicy");
    }
    let local_lb = |v: &Value, t: &str| {
        t == "LoadBalancer" && spec_field(v, "externalTrafficPolicy") == Some(&json!("Local"))
    };
    if local_lb(old, &old_ty) && !local_lb(new, &new_ty) && same(new, "healthCheckNodePort") {
        drop.push("healthCheckNodePort");
    }
    if old_ty == "LoadBalancer" && new_ty != "LoadBalancer" {
        drop.extend(
            ["allocateLoadBalancerNodePorts", "loadBalancerClass"]
                .into_iter()
                .filter(|f| same(new, f)),
        );
    }
    let Some(spec) = new.get_mut("spec").and_then(Value::as_object_mut) else {
        return;
    };
    for f in drop {
        spec.remove(f);
    }
    if drop_node_ports && let Some(Value::Array(ports)) = spec.get_mut("ports") {
        for p in ports.iter_mut().filter_map(Value::as_object_mut) {
            p.remove("nodePort");
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

#[cfg(test)]
mod tests {
    use super::*;

    fn node_port_service() -> Value {
        json!({"spec": {"type": "NodePort", "clusterIP": "10.96.0.10", "clusterIPs": ["10.96.0.10"],
            "ipFamilies": ["IPv4"], "ipFamilyPolicy": "SingleStack", "externalTrafficPolicy": "Cluster",
            "ports": [{"port": 80, "protocol": "TCP", "nodePort": 30080}]}})
    }

    #[test]
    fn a_type_change_drops_what_only_the_old_type_needed() {
        let old = node_port_service();
        let mut new = old.clone();
        new["spec"]["type"] = json!("ClusterIP");
        drop_type_dependent_fields(&mut new, &old);
        assert_eq!(
            new["spec"]["ports"],
            json!([{"port": 80, "protocol": "TCP"}])
        );
        assert!(new["spec"].get("externalTrafficPolicy").is_none());
        assert_eq!(new["spec"]["clusterIP"], "10.96.0.10");

        let mut new = old.clone();
        new["spec"]["type"] = json!("ExternalName");
        new["spec"]["externalName"] = json!("example.com");
        drop_type_dependent_fields(&mut new, &old);
        for f in ["clusterIP", "clusterIPs", "ipFamilies", "ipFamilyPolicy"] {
            assert!(new["spec"].get(f).is_none(), "{f} kept");
        }
    }

    #[test]
    fn values_the_client_changed_are_left_for_validation() {
        let old = node_port_service();
        let mut new = old.clone();
        new["spec"]["type"] = json!("ClusterIP");
        new["spec"]["ports"][0]["nodePort"] = json!(30081);
        drop_type_dependent_fields(&mut new, &old);
        assert_eq!(new["spec"]["ports"][0]["nodePort"], 30081);
        // no type change: nothing moves
        let mut same = old.clone();
        drop_type_dependent_fields(&mut same, &old);
        assert_eq!(same, old);
    }
}
