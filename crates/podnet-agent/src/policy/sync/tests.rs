use super::*;
use crate::policy::model::{NamedPort, Protocol, policy};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use serde_json::json;
use std::sync::{Arc, Mutex};

/// Records transactions; fails the next one when asked.
#[derive(Clone, Default)]
struct Recorder {
    scripts: Arc<Mutex<Vec<String>>>,
    fail_next: Arc<Mutex<bool>>,
}

impl Apply for Recorder {
    fn apply(&mut self, script: &str) -> Result<(), podnet_nft::Error> {
        if std::mem::take(&mut *self.fail_next.lock().unwrap()) {
            return Err(podnet_nft::Error::Rejected {
                stderr: "Error: No such file or directory".into(),
                exists: false,
            });
        }
        self.scripts.lock().unwrap().push(script.to_string());
        Ok(())
    }
}

fn pod(ip: &str, label: &str) -> PodInfo {
    PodInfo {
        uid: Default::default(),
        namespace: "x".into(),
        ip: ip.parse().unwrap(),
        node: "n1".into(),
        labels: json!({"pod": label}).as_object().cloned().unwrap(),
        ports: vec![NamedPort {
            name: "http".into(),
            protocol: Protocol::Tcp,
            port: 80,
        }],
    }
}

fn pol(name: &str, spec: serde_json::Value) -> Policy {
    let obj: NetworkPolicy = serde_json::from_value(json!({
        "metadata": {"namespace": "x", "name": name}, "spec": spec}))
    .unwrap();
    policy(&obj).unwrap()
}

fn syncer() -> (Syncer, Recorder) {
    let r = Recorder::default();
    (
        Syncer::with_applier(Base::new("t"), "n1", Box::new(r.clone())),
        r,
    )
}

#[test]
fn first_sync_replaces_then_changes_are_incremental() {
    let (mut s, rec) = syncer();
    s.set_pod(Key::new("x", "a"), Some(pod("10.0.0.1", "a")));
    s.set_pod(Key::new("x", "b"), Some(pod("10.0.0.2", "b")));
    s.set_policy(
        Key::new("x", "p"),
        Some(pol(
            "p",
            json!({"podSelector": {"matchLabels": {"pod": "a"}},
            "ingress": [{"from": [{"podSelector": {"matchLabels": {"pod": "b"}}}]}]}),
        )),
    );
    let r = s.sync().unwrap();
    assert!(r.full);
    assert!(rec.scripts.lock().unwrap()[0].starts_with("add table inet t\ndelete table inet t\n"));
    // Nothing changed: nothing applied.
    assert_eq!(s.sync().unwrap(), SyncReport::default());
    // A new peer pod (of this node): one element and the end of its start-up hold, nothing else.
    s.set_pod(Key::new("x", "c"), Some(pod("10.0.0.3", "b")));
    let r = s.sync().unwrap();
    assert!(!r.full);
    let last = rec.scripts.lock().unwrap().last().unwrap().clone();
    let lines: Vec<&str> = last.lines().collect();
    assert_eq!(lines.len(), 3, "{last}");
    assert!(
        lines[0].starts_with("add element inet t sel-") && lines[0].ends_with("{ 10.0.0.3 }"),
        "{last}"
    );
    assert_eq!(lines[2], "delete element inet t-pending pods { 10.0.0.3 }");
    // The policy gone: x/a open again, its objects removed.
    s.set_policy(Key::new("x", "p"), None);
    s.sync().unwrap();
    let last = rec.scripts.lock().unwrap().last().unwrap().clone();
    assert!(
        last.contains("delete element inet t ingress-pods { 10.0.0.1 }"),
        "{last}"
    );
    assert!(last.contains("delete chain inet t pol-in-x/p"), "{last}");
    assert!(last.contains("delete set inet t sel-"), "{last}");
    assert!(s.applied().is_empty());
}

#[test]
fn a_failed_transaction_is_followed_by_a_replacement() {
    let (mut s, rec) = syncer();
    s.sync().unwrap();
    *rec.fail_next.lock().unwrap() = true;
    s.set_pod(Key::new("x", "a"), Some(pod("10.0.0.1", "a")));
    s.set_policy(
        Key::new("x", "p"),
        Some(pol("p", json!({"podSelector": {}}))),
    );
    assert!(s.sync().is_err());
    assert!(s.pending());
    let r = s.sync().unwrap();
    assert!(r.full);
    let last = rec.scripts.lock().unwrap().last().unwrap().clone();
    assert!(last.contains("delete table inet t"));
    assert!(last.contains("add chain inet t pod-in-x/a"));
}

#[test]
fn the_periodic_refill_keeps_counters_and_drops_what_is_gone() {
    let (mut s, rec) = syncer();
    s.set_pod(Key::new("x", "a"), Some(pod("10.0.0.1", "a")));
    s.set_policy(
        Key::new("x", "p"),
        Some(pol("p", json!({"podSelector": {}}))),
    );
    s.sync().unwrap();
    // A change the syncer misses the application of cannot happen; a refill must still drop what
    // the state no longer wants.
    s.set_policy(Key::new("x", "p"), None);
    s.request_full();
    let r = s.sync().unwrap();
    assert!(r.full);
    let last = rec.scripts.lock().unwrap().last().unwrap().clone();
    assert!(
        last.starts_with("add table inet t\nflush table inet t\n"),
        "{last}"
    );
    assert!(last.contains("delete chain inet t pod-in-x/a"));
    assert!(last.contains("delete chain inet t pol-in-x/p"));
    assert!(last.contains("delete counter inet t drop-in-x/p"));
    assert!(!last.contains("delete table"));
}

/// Every transaction that programs a pod of this node clears its start-up hold, a rebuild those of
/// all of them; other nodes' pods and pods that lose their address to an earlier claim are not
/// cleared.
#[test]
fn programming_a_pod_clears_its_hold() {
    use crate::policy::model::PodInfo;
    let applied = std::sync::Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    struct Record(std::sync::Arc<std::sync::Mutex<Vec<String>>>);
    impl Apply for Record {
        fn apply(&mut self, script: &str) -> Result<(), podnet_nft::Error> {
            self.0.lock().unwrap().push(script.to_string());
            Ok(())
        }
    }
    let pod = |ip: &str, node: &str| PodInfo {
        uid: Default::default(),
        namespace: "x".into(),
        ip: ip.parse().unwrap(),
        node: node.into(),
        labels: Default::default(),
        ports: vec![],
    };
    let clear = |ip: &str| format!("delete element inet podnet-policy-pending pods {{ {ip} }}");
    let mut s = Syncer::with_applier(
        Base::new("podnet-policy"),
        "n1",
        Box::new(Record(applied.clone())),
    );
    s.set_pod(Key::new("x", "a"), Some(pod("10.0.0.1", "n1")));
    s.set_pod(Key::new("x", "far"), Some(pod("10.0.9.9", "n2")));
    s.sync().unwrap();
    let first = applied.lock().unwrap().last().unwrap().clone();
    assert!(first.contains(&clear("10.0.0.1")), "{first}");
    assert!(!first.contains(&clear("10.0.9.9")), "{first}");
    // A new pod with no policy at all: its transaction has nothing else, and still clears it.
    s.set_pod(Key::new("x", "b"), Some(pod("10.0.0.2", "n1")));
    s.sync().unwrap();
    let tx = applied.lock().unwrap().last().unwrap().clone();
    assert_eq!(
        tx,
        format!(
            "add element inet podnet-policy-pending pods {{ 10.0.0.2 }}\n{}\n",
            clear("10.0.0.2")
        )
    );
    // A pod changed in place keeps no hold to clear.
    let mut relabelled = pod("10.0.0.2", "n1");
    relabelled.labels.insert("k".into(), json!("v"));
    s.set_pod(Key::new("x", "b"), Some(relabelled));
    let n = applied.lock().unwrap().len();
    s.sync().unwrap();
    assert!(
        applied.lock().unwrap()[n..]
            .iter()
            .all(|tx| !tx.contains(&clear("10.0.0.2")))
    );
    // The pod made again under its name and address, seen as one change (a relist after the watch
    // broke shows only the new one): a new UID, so a new hold to clear.
    let mut again = pod("10.0.0.2", "n1");
    again.uid = "uid-2".into();
    s.set_pod(Key::new("x", "b"), Some(again));
    s.sync().unwrap();
    let tx = applied.lock().unwrap().last().unwrap().clone();
    assert!(tx.contains(&clear("10.0.0.2")), "{tx}");
    // A pod claiming an address another pod still holds (x/a gone, its deletion not seen yet) is
    // not the one programmed there: its hold stays until the address is its own, even though x/a
    // is rendered again.
    s.set_pod(Key::new("x", "z"), Some(pod("10.0.0.1", "n1")));
    let n = applied.lock().unwrap().len();
    s.sync().unwrap();
    assert!(
        applied.lock().unwrap()[n..]
            .iter()
            .all(|tx| !tx.contains(&clear("10.0.0.1")))
    );
    s.set_pod(Key::new("x", "a"), None);
    s.sync().unwrap();
    let tx = applied.lock().unwrap().last().unwrap().clone();
    assert!(tx.contains(&clear("10.0.0.1")), "{tx}");
}
