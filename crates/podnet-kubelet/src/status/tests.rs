use super::*;
use serde_json::json;

fn pod(v: serde_json::Value) -> Pod {
    serde_json::from_value(v).unwrap()
}

fn ts(s: &str) -> jiff::Timestamp {
    s.parse().unwrap()
}

fn running(name: &str, ready: bool) -> ContainerFacts {
    ContainerFacts {
        name: name.into(),
        state: State::Running {
            started_at: ts("2026-01-01T00:00:00Z"),
        },
        last_terminated: None,
        restart_count: 0,
        ready,
        started: true,
        image: "docker.io/library/nginx:latest".into(),
        image_id: "docker.io/library/nginx@sha256:aa".into(),
        container_id: Some("podnet://abc".into()),
    }
}

fn exited(name: &str, code: i32) -> ContainerFacts {
    ContainerFacts {
        state: State::Terminated(Terminated {
            exit_code: code,
            signal: None,
            reason: if code == 0 {
                "Completed".into()
            } else {
                "Error".into()
            },
            message: None,
            started_at: Some(ts("2026-01-01T00:00:00Z")),
            finished_at: ts("2026-01-01T00:00:05Z"),
            container_id: Some("podnet://abc".into()),
        }),
        ..running(name, false)
    }
}

#[test]
fn phases_follow_kubelet() {
    let two = pod(json!({"spec": {"containers": [{"name": "a"}, {"name": "b"}]}}));
    let mut f = PodFacts {
        containers: vec![running("a", true)],
        ..Default::default()
    };
    assert_eq!(phase(&two, &f), "Pending", "b has not started");
    f.containers.push(running("b", false));
    assert_eq!(phase(&two, &f), "Running");
    f.containers = vec![exited("a", 0), exited("b", 0)];
    assert_eq!(
        phase(&two, &f),
        "Running",
        "restartPolicy Always restarts them"
    );
    let never = pod(
        json!({"spec": {"restartPolicy": "Never", "containers": [{"name": "a"}, {"name": "b"}]}}),
    );
    assert_eq!(phase(&never, &f), "Succeeded");
    f.containers = vec![exited("a", 0), exited("b", 2)];
    assert_eq!(phase(&never, &f), "Failed");
    let on_failure = pod(
        json!({"spec": {"restartPolicy": "OnFailure", "containers": [{"name": "a"}, {"name": "b"}]}}),
    );
    assert_eq!(phase(&on_failure, &f), "Running");
    let mut crashing = exited("a", 1);
    crashing.state = State::Waiting {
        reason: "CrashLoopBackOff".into(),
        message: None,
    };
    crashing.last_terminated = Some(match exited("a", 1).state {
        State::Terminated(t) => t,
        _ => unreachable!(),
    });
    f.containers = vec![crashing, running("b", true)];
    assert_eq!(phase(&two, &f), "Running");
}

#[test]
fn init_containers_gate_the_pod() {
    let p = pod(
        json!({"spec": {"initContainers": [{"name": "i1"}, {"name": "i2"}], "containers": [{"name": "a"}]}}),
    );
    let f = PodFacts {
        init: vec![exited("i1", 0)],
        ..Default::default()
    };
    assert_eq!(phase(&p, &f), "Pending");
    let s = pod_status(&p, &f, None, ts("2026-01-01T00:00:10Z"));
    let init = s
        .conditions
        .unwrap()
        .into_iter()
        .find(|c| c.type_ == "Initialized")
        .unwrap();
    assert_eq!(init.status, "False");
    assert_eq!(init.reason.as_deref(), Some("ContainersNotInitialized"));
    let never = pod(
        json!({"spec": {"restartPolicy": "Never", "initContainers": [{"name": "i1"}], "containers": [{"name": "a"}]}}),
    );
    let f = PodFacts {
        init: vec![exited("i1", 1)],
        ..Default::default()
    };
    assert_eq!(phase(&never, &f), "Failed");
}

#[test]
fn conditions_and_statuses() {
    let p = pod(
        json!({"spec": {"containers": [{"name": "a"}, {"name": "b"}]},
        "status": {"conditions": [{"type": "PodScheduled", "status": "True"},
                                   {"type": "Ready", "status": "False", "lastTransitionTime": "2025-01-01T00:00:00Z"}]}}),
    );
    let f = PodFacts {
        sandbox_ready: true,
        pod_ips: vec!["10.244.1.5".into()],
        host_ip: Some("10.100.0.2".into()),
        containers: vec![running("a", true), running("b", false)],
        ..Default::default()
    };
    let now = ts("2026-01-01T00:00:10Z");
    let s = pod_status(&p, &f, None, now);
    assert_eq!(s.phase.as_deref(), Some("Running"));
    assert_eq!(s.pod_ip.as_deref(), Some("10.244.1.5"));
    assert_eq!(s.qos_class.as_deref(), Some("BestEffort"));
    let conds = s.conditions.unwrap();
    let ready = conds.iter().find(|c| c.type_ == "Ready").unwrap();
    assert_eq!(ready.status, "False");
    assert_eq!(
        ready.message.as_deref(),
        Some("containers with unready status: [b]")
    );
    // Same status as before: the transition time is kept.
    assert_eq!(
        ready.last_transition_time.as_ref().unwrap().0,
        ts("2025-01-01T00:00:00Z")
    );
    assert!(
        conds
            .iter()
            .any(|c| c.type_ == "PodScheduled" && c.status == "True")
    );
    let statuses = s.container_statuses.unwrap();
    assert!(statuses[0].ready && !statuses[1].ready);
    assert_eq!(statuses[0].started, Some(true));
}

#[test]
fn transition_times_come_from_the_agents_own_last_write_not_a_lagging_watch_copy() {
    // The watch's copy still shows Ready False (the agent's PATCH to True has not come back yet).
    let stale = pod(json!({"spec": {"containers": [{"name": "a"}]},
        "status": {"conditions": [{"type": "Ready", "status": "False", "lastTransitionTime": "2026-01-01T00:00:00Z"}]}}));
    let f = PodFacts {
        sandbox_ready: true,
        containers: vec![running("a", true)],
        ..Default::default()
    };
    let first = pod_status(&stale, &f, None, ts("2026-01-01T00:00:01Z"));
    let ready_at = |s: &PodStatus| {
        s.conditions
            .as_ref()
            .unwrap()
            .iter()
            .find(|c| c.type_ == "Ready")
            .map(|c| (c.status.clone(), c.last_transition_time.as_ref().unwrap().0))
            .unwrap()
    };
    assert_eq!(
        ready_at(&first),
        ("True".to_string(), ts("2026-01-01T00:00:01Z"))
    );
    // A later sync with the same stale copy keeps the time the agent wrote.
    let later = pod_status(&stale, &f, Some(&first), ts("2026-01-01T00:00:05Z"));
    assert_eq!(
        ready_at(&later),
        ("True".to_string(), ts("2026-01-01T00:00:01Z"))
    );
    // A real change still moves it.
    let down = PodFacts {
        containers: vec![running("a", false)],
        ..f
    };
    let dropped = pod_status(&stale, &down, Some(&later), ts("2026-01-01T00:00:09Z"));
    assert_eq!(
        ready_at(&dropped),
        ("False".to_string(), ts("2026-01-01T00:00:09Z"))
    );
}

/// The agent's last write stands while the watch lags behind it, and gives way when another writer
/// changed the pod after it (the node lifecycle controller marking the pods of an unreachable node
/// not Ready): the status is then built from the API's copy and differs, so it is posted again.
#[test]
fn the_agents_last_write_stands_until_another_writer_changes_the_pod() {
    let f = PodFacts {
        sandbox_ready: true,
        containers: vec![running("a", true)],
        ..Default::default()
    };
    let spec = json!({"containers": [{"name": "a"}]});
    let fresh = pod(json!({"metadata": {"resourceVersion": "4"}, "spec": spec,
        "status": {"conditions": [{"type": "Ready", "status": "False", "lastTransitionTime": "2026-01-01T00:00:00Z"}]}}));
    let ours = pod_status(&fresh, &f, None, ts("2026-01-01T00:00:01Z"));
    let posted = Posted {
        status: serde_json::to_value(&ours).unwrap(),
        resource_version: Some(5),
    };
    // The watch has not delivered the write yet (rv 4 < 5): the write stands, nothing new to send.
    let kept = own_write_stands(&fresh, Some(&posted)).expect("the write stands");
    let again = pod_status(&fresh, &f, Some(&kept), ts("2026-01-01T00:00:09Z"));
    assert_eq!(serde_json::to_value(&again).unwrap(), posted.status);
    // The watch delivered it: the same.
    let mut caught_up: Pod =
        serde_json::from_value(json!({"metadata": {"resourceVersion": "5"}, "spec": spec}))
            .unwrap();
    caught_up.status = Some(ours.clone());
    assert!(own_write_stands(&caught_up, Some(&posted)).is_some());
    // The controller marked it not Ready later (rv 7): the write no longer stands, and the status
    // built from the API's copy differs from the last write, so it is posted.
    let marked = pod(json!({"metadata": {"resourceVersion": "7"}, "spec": spec,
        "status": {"phase": "Running", "conditions": [{"type": "Ready", "status": "False", "lastTransitionTime": "2026-01-01T00:00:30Z"}]}}));
    assert!(own_write_stands(&marked, Some(&posted)).is_none());
    let reposted = pod_status(&marked, &f, None, ts("2026-01-01T00:01:00Z"));
    assert_ne!(serde_json::to_value(&reposted).unwrap(), posted.status);
    let ready = reposted
        .conditions
        .unwrap()
        .into_iter()
        .find(|c| c.type_ == "Ready")
        .unwrap();
    assert_eq!(ready.status, "True");
    assert_eq!(
        ready.last_transition_time.unwrap().0,
        ts("2026-01-01T00:01:00Z")
    );
    // Nothing written yet (a restarted agent): the API's copy.
    assert!(own_write_stands(&marked, None).is_none());
}

#[test]
fn qos_classes() {
    let be = pod(json!({"spec": {"containers": [{"name": "a"}]}}));
    assert_eq!(qos_class(&be), "BestEffort");
    let g = pod(
        json!({"spec": {"containers": [{"name": "a", "resources": {"limits": {"cpu": "1", "memory": "64Mi"}}}]}}),
    );
    assert_eq!(qos_class(&g), "Guaranteed");
    let g2 = pod(
        json!({"spec": {"containers": [{"name": "a", "resources": {"limits": {"cpu": "1", "memory": "64Mi"}, "requests": {"cpu": "1000m", "memory": "64Mi"}}}]}}),
    );
    assert_eq!(qos_class(&g2), "Guaranteed");
    let b = pod(
        json!({"spec": {"containers": [{"name": "a", "resources": {"requests": {"cpu": "100m"}}}]}}),
    );
    assert_eq!(qos_class(&b), "Burstable");
}
