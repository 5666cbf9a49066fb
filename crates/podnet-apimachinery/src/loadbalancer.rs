//! LoadBalancer address assignment: what a cloud's service controller (or MetalLB's controller)
//! decides for one Service, from the Service and every other Service. No state of its own: the
//! addresses in use are read from the Services' `status.loadBalancer.ingress`, so a restarted control
//! plane decides exactly as before, and two Services holding one address (a restored backup, a
//! hand-edited status) are told apart by age: the older keeps it.

use crate::object;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::net::Ipv4Addr;

/// The addresses to hand out (inclusive).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pool {
    pub first: Ipv4Addr,
    pub last: Ipv4Addr,
}

impl Pool {
    pub fn contains(&self, ip: Ipv4Addr) -> bool {
        (self.first..=self.last).contains(&ip)
    }

    fn iter(&self) -> impl Iterator<Item = Ipv4Addr> {
        (u32::from(self.first)..=u32::from(self.last)).map(Ipv4Addr::from)
    }
}

/// What to do with one Service's `status.loadBalancer`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Nothing to write.
    Unchanged,
    /// Write this address as the Service's only ingress entry.
    Assign(Ipv4Addr),
    /// Remove the pool's addresses from the status (the Service is no LoadBalancer any more).
    Release,
    /// No address can be given now; the message says why (for an event).
    Pending(String),
}

/// Whether the pool's controller is responsible for a Service: type LoadBalancer without a
/// `loadBalancerClass` (a class names another implementation, which is then the one to answer).
pub fn is_ours(svc: &Value) -> bool {
    object::str_at(svc, "spec.type") == Some("LoadBalancer")
        && object::str_at(svc, "spec.loadBalancerClass").is_none()
}

/// The pool's addresses a Service's status holds.
pub fn held(pool: &Pool, svc: &Value) -> Vec<Ipv4Addr> {
    svc.pointer("/status/loadBalancer/ingress")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|i| i.get("ip")?.as_str()?.parse::<Ipv4Addr>().ok())
        .filter(|ip| pool.contains(*ip))
        .collect()
}

/// Which of two Services claiming one address keeps it: the older, then by namespace and name.
fn seniority(svc: &Value) -> (String, String, String) {
    (
        object::meta_str(svc, "creationTimestamp")
            .unwrap_or_default()
            .to_string(),
        object::namespace(svc).to_string(),
        object::name(svc).to_string(),
    )
}

/// Decides for `svc`; `all` is every Service (it may include `svc` itself, recognised by namespace
/// and name).
pub fn decide(pool: &Pool, svc: &Value, all: &[Value]) -> Decision {
    let mine = held(pool, svc);
    if !is_ours(svc) || object::is_deleting(svc) {
        // A Service switched away from LoadBalancer gives its address back. One of another class
        // keeps whatever its own implementation wrote.
        let lb = object::str_at(svc, "spec.type") == Some("LoadBalancer");
        return if !mine.is_empty() && !lb {
            Decision::Release
        } else {
            Decision::Unchanged
        };
    }
    let me = (object::namespace(svc), object::name(svc));
    let my_rank = seniority(svc);
    // Every pool address another Service holds, with whether that Service outranks this one.
    let mut taken: BTreeMap<Ipv4Addr, bool> = BTreeMap::new();
    for other in all {
        if (object::namespace(other), object::name(other)) == me {
            continue;
        }
        let senior = !is_ours(other) || seniority(other) < my_rank;
        for ip in held(pool, other) {
            *taken.entry(ip).or_default() |= senior;
        }
    }
    let status_is = |ip: Ipv4Addr| {
        svc.pointer("/status/loadBalancer/ingress")
            .and_then(Value::as_array)
            .is_some_and(|l| l.len() == 1 && l[0].get("ip") == Some(&json!(ip.to_string())))
    };
    let requested = object::str_at(svc, "spec.loadBalancerIP").filter(|s| !s.is_empty());
    if let Some(req) = requested {
        let Ok(ip) = req.parse::<Ipv4Addr>() else {
            return Decision::Pending(format!("loadBalancerIP {req:?} is not an IPv4 address"));
        };
        if !pool.contains(ip) {
            return Decision::Pending(format!(
                "loadBalancerIP {ip} is outside the pool {}-{}",
                pool.first, pool.last
            ));
        }
        // An address another Service holds is never taken from it by asking (whatever the two
        // Services' ages: a Service made long ago and switched to LoadBalancer later would otherwise
        // outrank the holder); only when both already hold it does the older keep it.
        let in_use = match taken.get(&ip) {
            Some(&senior) => senior || !mine.contains(&ip),
            None => false,
        };
        if in_use {
            return Decision::Pending(format!("loadBalancerIP {ip} is in use by another Service"));
        }
        return if status_is(ip) {
            Decision::Unchanged
        } else {
            Decision::Assign(ip)
        };
    }
    // Keep an address already held unless an older Service holds it too.
    if let Some(ip) = mine.iter().copied().find(|ip| taken.get(ip) != Some(&true)) {
        return if status_is(ip) {
            Decision::Unchanged
        } else {
            Decision::Assign(ip)
        };
    }
    match pool.iter().find(|ip| !taken.contains_key(ip)) {
        Some(ip) => Decision::Assign(ip),
        None => Decision::Pending(format!(
            "no address left in the pool {}-{}",
            pool.first, pool.last
        )),
    }
}

/// Applies a decision to the Service's status; returns whether it changed.
pub fn apply(pool: &Pool, svc: &mut Value, d: &Decision) -> bool {
    let new_ingress: Vec<Value> = match d {
        Decision::Unchanged | Decision::Pending(_) => return false,
        Decision::Assign(ip) => vec![json!({"ip": ip.to_string(), "ipMode": "VIP"})],
        Decision::Release => svc
            .pointer("/status/loadBalancer/ingress")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter(|i| {
                !i.get("ip")
                    .and_then(Value::as_str)
                    .and_then(|s| s.parse::<Ipv4Addr>().ok())
                    .is_some_and(|ip| pool.contains(ip))
            })
            .cloned()
            .collect(),
    };
    let lb = if new_ingress.is_empty() {
        json!({})
    } else {
        json!({ "ingress": new_ingress })
    };
    if svc.pointer("/status/loadBalancer") == Some(&lb) {
        return false;
    }
    if !svc.get("status").is_some_and(Value::is_object) {
        svc["status"] = json!({});
    }
    svc["status"]["loadBalancer"] = lb;
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn pool() -> Pool {
        Pool {
            first: Ipv4Addr::new(203, 0, 113, 100),
            last: Ipv4Addr::new(203, 0, 113, 103),
        }
    }

    fn svc(name: &str, ty: &str, created: u32) -> Value {
        json!({
            "metadata": {"name": name, "namespace": "default",
                         "creationTimestamp": format!("2026-01-01T00:00:{created:02}Z")},
            "spec": {"type": ty},
            "status": {"loadBalancer": {}},
        })
    }

    fn settle(all: &mut [Value]) {
        // what the controller converges to: each Service reconciled in turn until nothing changes
        for _ in 0..all.len() + 2 {
            let mut changed = false;
            for i in 0..all.len() {
                let d = decide(&pool(), &all[i], all);
                changed |= apply(&pool(), &mut all[i], &d);
            }
            if !changed {
                return;
            }
        }
        panic!("did not settle");
    }

    #[test]
    fn first_free_address_then_stable() {
        let mut all = vec![svc("a", "LoadBalancer", 1), svc("b", "LoadBalancer", 2)];
        settle(&mut all);
        assert_eq!(held(&pool(), &all[0]), [Ipv4Addr::new(203, 0, 113, 100)]);
        assert_eq!(held(&pool(), &all[1]), [Ipv4Addr::new(203, 0, 113, 101)]);
        assert_eq!(
            all[0]["status"]["loadBalancer"]["ingress"][0]["ipMode"],
            "VIP"
        );
        assert_eq!(decide(&pool(), &all[0], &all), Decision::Unchanged);
    }

    #[test]
    fn type_change_releases_and_the_address_is_reused() {
        let mut all = vec![svc("a", "LoadBalancer", 1)];
        settle(&mut all);
        all[0]["spec"]["type"] = json!("ClusterIP");
        assert_eq!(decide(&pool(), &all[0], &all), Decision::Release);
        settle(&mut all);
        assert_eq!(all[0]["status"]["loadBalancer"], json!({}));
        all.push(svc("b", "LoadBalancer", 2));
        settle(&mut all);
        assert_eq!(held(&pool(), &all[1]), [Ipv4Addr::new(203, 0, 113, 100)]);
    }

    #[test]
    fn another_class_is_left_alone() {
        let mut s = svc("a", "LoadBalancer", 1);
        s["spec"]["loadBalancerClass"] = json!("example.com/other");
        assert_eq!(decide(&pool(), &s, &[]), Decision::Unchanged);
    }

    #[test]
    fn exhausted_pool_waits_and_requested_addresses_are_checked() {
        let mut all: Vec<Value> = (0..5)
            .map(|i| svc(&format!("s{i}"), "LoadBalancer", i))
            .collect();
        settle(&mut all);
        match decide(&pool(), &all[4], &all) {
            Decision::Pending(m) => assert!(m.contains("no address left"), "{m}"),
            d => panic!("{d:?}"),
        }
        let mut r = svc("r", "LoadBalancer", 9);
        r["spec"]["loadBalancerIP"] = json!("203.0.113.101");
        assert!(matches!(decide(&pool(), &r, &all), Decision::Pending(m) if m.contains("in use")));
        r["spec"]["loadBalancerIP"] = json!("198.51.100.1");
        assert!(matches!(decide(&pool(), &r, &all), Decision::Pending(m) if m.contains("outside")));
        // once s1 goes, the requested address is free
        all.remove(1);
        r["spec"]["loadBalancerIP"] = json!("203.0.113.101");
        assert_eq!(
            decide(&pool(), &r, &all),
            Decision::Assign(Ipv4Addr::new(203, 0, 113, 101))
        );
    }

    #[test]
    fn the_older_of_two_holders_keeps_the_address() {
        let mut old = svc("old", "LoadBalancer", 1);
        let mut young = svc("young", "LoadBalancer", 2);
        let d = Decision::Assign(Ipv4Addr::new(203, 0, 113, 102));
        apply(&pool(), &mut old, &d);
        apply(&pool(), &mut young, &d);
        let mut all = vec![young, old];
        settle(&mut all);
        assert_eq!(held(&pool(), &all[1]), [Ipv4Addr::new(203, 0, 113, 102)]);
        assert_eq!(held(&pool(), &all[0]), [Ipv4Addr::new(203, 0, 113, 100)]);
    }

    /// An older Service asking for a younger one's address waits: the holder keeps it.
    #[test]
    fn a_requested_address_is_not_taken_from_its_holder() {
        let mut all = vec![svc("victim", "LoadBalancer", 5)];
        settle(&mut all);
        let mut old = svc("old", "ClusterIP", 1);
        old["spec"]["type"] = json!("LoadBalancer");
        old["spec"]["loadBalancerIP"] = json!("203.0.113.100");
        all.push(old);
        settle(&mut all);
        assert_eq!(held(&pool(), &all[0]), [Ipv4Addr::new(203, 0, 113, 100)]);
        assert!(held(&pool(), &all[1]).is_empty());
        assert!(
            matches!(decide(&pool(), &all[1], &all), Decision::Pending(m) if m.contains("in use"))
        );
    }

    #[derive(Debug, Clone)]
    enum Op {
        Create(u8, bool),
        Delete(u8),
        SetType(u8, bool),
        Reconcile(u8),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            (0u8..8, any::<bool>()).prop_map(|(n, lb)| Op::Create(n, lb)),
            (0u8..8).prop_map(Op::Delete),
            (0u8..8, any::<bool>()).prop_map(|(n, lb)| Op::SetType(n, lb)),
            (0u8..8).prop_map(Op::Reconcile),
        ]
    }

    proptest! {
        /// Whatever the order of changes and of reconciles (a restart is a reconcile of every
        /// Service from the store alone), once every Service is reconciled no address is held twice,
        /// no non-LoadBalancer Service holds one, and every LoadBalancer Service has one while the
        /// pool has room.
        #[test]
        fn no_address_is_ever_held_twice(ops in proptest::collection::vec(op(), 1..60)) {
            let mut all: Vec<Value> = Vec::new();
            let mut clock = 0u32;
            for op in ops {
                let find = |all: &Vec<Value>, n: u8| {
                    all.iter().position(|s| object::name(s) == format!("s{n}"))
                };
                match op {
                    Op::Create(n, lb) => if find(&all, n).is_none() {
                        clock += 1;
                        let ty = if lb { "LoadBalancer" } else { "ClusterIP" };
                        all.push(svc(&format!("s{n}"), ty, clock % 60));
                    },
                    Op::Delete(n) => if let Some(i) = find(&all, n) { all.remove(i); },
                    Op::SetType(n, lb) => if let Some(i) = find(&all, n) {
                        all[i]["spec"]["type"] = json!(if lb { "LoadBalancer" } else { "ClusterIP" });
                    },
                    Op::Reconcile(n) => if let Some(i) = find(&all, n) {
                        let d = decide(&pool(), &all[i], &all);
                        apply(&pool(), &mut all[i], &d);
                    },
                }
            }
            settle(&mut all);
            let mut seen = std::collections::BTreeSet::new();
            let mut lbs = 0;
            for s in &all {
                let h = held(&pool(), s);
                prop_assert!(h.len() <= 1);
                if is_ours(s) { lbs += 1; } else { prop_assert!(h.is_empty()); }
                for ip in h { prop_assert!(seen.insert(ip), "{ip} held twice"); }
            }
            prop_assert_eq!(seen.len(), lbs.min(4));
        }
    }
}
