//! A pod's status as kubelet reports it, computed from what the node knows about its sandbox and
//! containers: phase, conditions, container statuses, QoS class. Pure: the sync loop gathers the
//! facts, this decides what they mean.

use k8s_openapi::api::core::v1::{
    ContainerState, ContainerStateRunning, ContainerStateTerminated, ContainerStateWaiting,
    ContainerStatus, HostIP, Pod, PodCondition, PodIP, PodStatus,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use serde_json::Value;

/// What the node knows about one container (or init container).
#[derive(Debug, Clone, PartialEq)]
pub struct ContainerFacts {
    pub name: String,
    pub state: State,
    /// The previous instance's end, when it has restarted.
    pub last_terminated: Option<Terminated>,
    pub restart_count: i32,
    /// Readiness probe passing (or no probe and running).
    pub ready: bool,
    /// Startup probe passed (or none) while running.
    pub started: bool,
    pub image: String,
    pub image_id: String,
    pub container_id: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum State {
    Waiting {
        reason: String,
        message: Option<String>,
    },
    Running {
        started_at: jiff::Timestamp,
    },
    Terminated(Terminated),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Terminated {
    pub exit_code: i32,
    pub signal: Option<i32>,
    /// `Completed`, `Error`, `OOMKilled`, `ContainerCannotRun`, ...
    pub reason: String,
    pub message: Option<String>,
    pub started_at: Option<jiff::Timestamp>,
    pub finished_at: jiff::Timestamp,
    pub container_id: Option<String>,
}

/// What the node knows about the pod as a whole.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PodFacts {
    /// The sandbox runs with its network set up.
    pub sandbox_ready: bool,
    pub pod_ips: Vec<String>,
    pub host_ip: Option<String>,
    pub start_time: Option<jiff::Timestamp>,
    pub init: Vec<ContainerFacts>,
    pub containers: Vec<ContainerFacts>,
    /// Ephemeral containers (`kubectl debug`): started once, never restarted.
    pub ephemeral: Vec<ContainerFacts>,
    /// Set when the pod failed as a whole (e.g. `DeadlineExceeded`): phase Failed with this reason.
    pub failed: Option<(String, String)>,
}

fn time(t: jiff::Timestamp) -> Time {
    Time(t)
}

fn to_state(state: &State) -> ContainerState {
    match state {
        State::Waiting { reason, message } => ContainerState {
            waiting: Some(ContainerStateWaiting {
                reason: Some(reason.clone()),
                message: message.clone(),
            }),
            ..Default::default()
        },
        State::Running { started_at } => ContainerState {
            running: Some(ContainerStateRunning {
                started_at: Some(time(*started_at)),
            }),
            ..Default::default()
        },
        State::Terminated(t) => ContainerState {
            terminated: Some(to_terminated(t)),
            ..Default::default()
        },
    }
}

fn to_terminated(t: &Terminated) -> ContainerStateTerminated {
    ContainerStateTerminated {
        exit_code: t.exit_code,
        signal: t.signal,
        reason: Some(t.reason.clone()),
        message: t.message.clone(),
        started_at: t.started_at.map(time),
        finished_at: Some(time(t.finished_at)),
        container_id: t.container_id.clone(),
    }
}

fn container_status(c: &ContainerFacts) -> ContainerStatus {
    let running = matches!(c.state, State::Running { .. });
    ContainerStatus {
        name: c.name.clone(),
        state: Some(to_state(&c.state)),
        last_state: Some(match &c.last_terminated {
            Some(t) => ContainerState {
                terminated: Some(to_terminated(t)),
                ..Default::default()
            },
            None => ContainerState::default(),
        }),
        ready: c.ready && running,
        restart_count: c.restart_count,
        started: Some(c.started && running),
        image: c.image.clone(),
        image_id: c.image_id.clone(),
        container_id: c.container_id.clone(),
        ..Default::default()
    }
}

/// The phase kubelet reports (its `getPhase`).
pub fn phase(pod: &Pod, facts: &PodFacts) -> &'static str {
    if facts.failed.is_some() {
        return "Failed";
    }
    let policy = restart_policy(pod);
    let spec_inits = pod
        .spec
        .as_ref()
        .and_then(|s| s.init_containers.as_ref())
        .map_or(0, Vec::len);
    let inits_done = facts.init.len() == spec_inits
        && facts
            .init
            .iter()
            .all(|c| matches!(&c.state, State::Terminated(t) if t.exit_code == 0));
    if !inits_done {
        // An init container that failed for good fails the pod.
        let failed_for_good = policy == "Never"
            && facts
                .init
                .iter()
                .any(|c| matches!(&c.state, State::Terminated(t) if t.exit_code != 0));
        return if failed_for_good { "Failed" } else { "Pending" };
    }
    let spec_containers = pod.spec.as_ref().map_or(0, |s| s.containers.len());
    let (mut waiting, mut running, mut succeeded, mut failed) = (0, 0, 0, 0);
    for c in &facts.containers {
        match &c.state {
            State::Running { .. } => running += 1,
            State::Terminated(t) if t.exit_code == 0 => succeeded += 1,
            State::Terminated(_) => failed += 1,
            // A container waiting to restart after having run counts as running (kubelet's rule).
            State::Waiting { .. } if c.last_terminated.is_some() => running += 1,
            State::Waiting { .. } => waiting += 1,
        }
    }
    waiting += spec_containers.saturating_sub(facts.containers.len());
    if waiting > 0 {
        return "Pending";
    }
    if running > 0 {
        return "Running";
    }
    if failed == 0 && succeeded > 0 {
        return if policy == "Always" {
            "Running"
        } else {
            "Succeeded"
        };
    }
    if failed > 0 {
        return if policy == "Never" {
            "Failed"
        } else {
            "Running"
        };
    }
    "Pending"
}

pub fn restart_policy(pod: &Pod) -> String {
    pod.spec
        .as_ref()
        .and_then(|s| s.restart_policy.clone())
        .unwrap_or_else(|| "Always".into())
}

/// The QoS class: Guaranteed when every container's cpu and memory limits equal its requests,
/// BestEffort when no container asks for or limits anything, Burstable otherwise.
pub fn qos_class(pod: &Pod) -> &'static str {
    let Some(spec) = pod.spec.as_ref() else {
        return "BestEffort";
    };
    let all = spec
        .containers
        .iter()
        .chain(spec.init_containers.iter().flatten());
    let mut any = false;
    let mut guaranteed = true;
    for c in all {
        let r = c.resources.as_ref();
        let limits = r.and_then(|r| r.limits.clone()).unwrap_or_default();
        let requests = r.and_then(|r| r.requests.clone()).unwrap_or_default();
        if !limits.is_empty() || !requests.is_empty() {
            any = true;
        }
        for res in ["cpu", "memory"] {
            let Some(limit) = limits.get(res) else {
                guaranteed = false;
                continue;
            };
            // A missing request defaults to the limit.
            if let Some(req) = requests.get(res) {
                let eq = crate::process::quantity(&req.0).ok()
                    == crate::process::quantity(&limit.0).ok();
                if !eq {
                    guaranteed = false;
                }
            }
        }
    }
    match (any, guaranteed) {
        (false, _) => "BestEffort",
        (true, true) => "Guaranteed",
        (true, false) => "Burstable",
    }
}

fn condition(
    kind: &str,
    ok: bool,
    reason: Option<&str>,
    message: Option<String>,
    previous: Option<&PodStatus>,
    now: jiff::Timestamp,
) -> PodCondition {
    let status = if ok { "True" } else { "False" };
    // The transition time moves only when the status changes.
    let last_transition = previous
        .and_then(|p| p.conditions.as_ref())
        .and_then(|cs| cs.iter().find(|c| c.type_ == kind))
        .filter(|c| c.status == status)
        .and_then(|c| c.last_transition_time.clone())
        .unwrap_or(Time(now));
    PodCondition {
        type_: kind.to_string(),
        status: status.to_string(),
        reason: if ok { None } else { reason.map(str::to_string) },
        message: if ok { None } else { message },
        last_transition_time: Some(last_transition),
        last_probe_time: None,
        observed_generation: None,
    }
}

/// What the agent last wrote for a pod: the status and the pod's resourceVersion after the write.
#[derive(Debug, Clone, PartialEq)]
pub struct Posted {
    pub status: Value,
    pub resource_version: Option<u64>,
}

/// The agent's own last write, when it still stands: the watch's copy `pod` is older than the write
/// (so it cannot show it yet), or shows the same phase and condition statuses. `None` when another
/// writer changed them after the write (the node lifecycle controller marks the pods of an
/// unreachable node not Ready): the status is then built from `pod` and posted again, as kubelet's
/// status manager re-posts when the API's copy disagrees with its cache.
pub fn own_write_stands(pod: &Pod, posted: Option<&Posted>) -> Option<PodStatus> {
    let posted = posted?;
    let mine: PodStatus = serde_json::from_value(posted.status.clone()).ok()?;
    let watched: Option<u64> = pod
        .metadata
        .resource_version
        .as_deref()
        .and_then(|v| v.parse().ok());
    let behind = matches!((watched, posted.resource_version), (Some(w), Some(p)) if w < p);
    if behind {
        return Some(mine);
    }
    let theirs = pod.status.as_ref();
    let statuses = |s: Option<&PodStatus>| -> Vec<(String, String)> {
        let mut v: Vec<(String, String)> = s
            .and_then(|s| s.conditions.as_ref())
            .map(|cs| {
                cs.iter()
                    .map(|c| (c.type_.clone(), c.status.clone()))
                    .collect()
            })
            .unwrap_or_default();
        v.sort();
        v
    };
    let agree = theirs.and_then(|t| t.phase.as_ref()) == mine.phase.as_ref()
        && statuses(theirs) == statuses(Some(&mine));
    agree.then_some(mine)
}

/// The full status, keeping PodScheduled (the scheduler's) from `pod.status` and the conditions'
/// transition times from `last_posted` (what this agent last wrote for the pod), or from `pod.status`
/// when it has written nothing yet (a restarted agent).
///
/// `pod` comes from the agent's watch, which can lag behind the agent's own writes: a sync between a
/// status PATCH and its watch event sees the old conditions. Taking the transition times from that
/// copy would move Ready's lastTransitionTime to a later sync (the StatefulSet ordering check saw a
/// pod created "before" its predecessor was Ready). The kubelet's status manager keeps its own copy
/// for the same reason.
pub fn pod_status(
    pod: &Pod,
    facts: &PodFacts,
    last_posted: Option<&PodStatus>,
    now: jiff::Timestamp,
) -> PodStatus {
    let previous = pod.status.as_ref();
    let transitions = last_posted.or(previous);
    let phase = phase(pod, facts);
    let inits_ok = facts
        .init
        .iter()
        .all(|c| matches!(&c.state, State::Terminated(t) if t.exit_code == 0))
        && facts.init.len()
            == pod
                .spec
                .as_ref()
                .and_then(|s| s.init_containers.as_ref())
                .map_or(0, Vec::len);
    let incomplete: Vec<&str> = facts
        .init
        .iter()
        .filter(|c| !matches!(&c.state, State::Terminated(t) if t.exit_code == 0))
        .map(|c| c.name.as_str())
        .collect();
    let unready: Vec<String> = pod
        .spec
        .as_ref()
        .map(|s| {
            s.containers
                .iter()
                .filter(|sc| {
                    !facts.containers.iter().any(|c| {
                        c.name == sc.name && c.ready && matches!(c.state, State::Running { .. })
                    })
                })
                .map(|c| c.name.clone())
                .collect()
        })
        .unwrap_or_default();
    // A pod that completed is not ready, with kubelet's reason.
    let finished = phase == "Succeeded" || phase == "Failed";
    let (ready_reason, ready_message) = if finished {
        ("PodCompleted", None)
    } else {
        (
            "ContainersNotReady",
            Some(format!(
                "containers with unready status: [{}]",
                unready.join(" ")
            )),
        )
    };
    let containers_ready = unready.is_empty() && !finished;
    let mut conditions = vec![
        condition(
            "PodReadyToStartContainers",
            facts.sandbox_ready,
            None,
            None,
            transitions,
            now,
        ),
        condition(
            "Initialized",
            inits_ok,
            Some("ContainersNotInitialized"),
            Some(format!(
                "containers with incomplete status: [{}]",
                incomplete.join(" ")
            )),
            transitions,
            now,
        ),
        condition(
            "Ready",
            containers_ready,
            Some(ready_reason),
            ready_message.clone(),
            transitions,
            now,
        ),
        condition(
            "ContainersReady",
            containers_ready,
            Some(ready_reason),
            ready_message,
            transitions,
            now,
        ),
    ];
    if let Some(scheduled) = previous
        .and_then(|p| p.conditions.as_ref())
        .and_then(|cs| cs.iter().find(|c| c.type_ == "PodScheduled"))
    {
        conditions.push(scheduled.clone());
    }
    let (reason, message) = match &facts.failed {
        Some((r, m)) => (Some(r.clone()), Some(m.clone())),
        None => (None, None),
    };
    PodStatus {
        phase: Some(phase.to_string()),
        conditions: Some(conditions),
        host_ip: facts.host_ip.clone(),
        host_ips: facts.host_ip.clone().map(|ip| vec![HostIP { ip }]),
        pod_ip: facts.pod_ips.first().cloned(),
        pod_ips: (!facts.pod_ips.is_empty()).then(|| {
            facts
                .pod_ips
                .iter()
                .map(|ip| PodIP { ip: ip.clone() })
                .collect()
        }),
        start_time: facts
            .start_time
            .map(time)
            .or_else(|| previous.and_then(|p| p.start_time.clone())),
        qos_class: Some(qos_class(pod).to_string()),
        init_container_statuses: (!facts.init.is_empty())
            .then(|| facts.init.iter().map(container_status).collect()),
        container_statuses: Some(facts.containers.iter().map(container_status).collect()),
        ephemeral_container_statuses: (!facts.ephemeral.is_empty())
            .then(|| facts.ephemeral.iter().map(container_status).collect()),
        reason,
        message,
        ..Default::default()
    }
}

#[cfg(test)]
mod tests;
