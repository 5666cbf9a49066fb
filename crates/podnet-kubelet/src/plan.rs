//! What to do next for a pod, from its spec and what runs: kubelet's `computePodActions`. Pure: the
//! sync loop observes the node, asks [`next_actions`], carries the actions out, and asks again.

use k8s_openapi::api::core::v1::Pod;

/// A container instance as the node sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObservedContainer {
    pub name: String,
    pub id: String,
    /// Which start of this container it is (0 for the first; the restart count).
    pub attempt: u32,
    pub image: String,
    pub state: ObservedState,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ObservedState {
    Created,
    Running,
    Exited { code: i32 },
}

/// The pod's sandbox and containers as the node sees them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Observed {
    /// The sandbox exists and its pause process lives.
    pub sandbox_ready: bool,
    /// A sandbox exists (alive or not) and must be removed before a new one is made.
    pub sandbox_exists: bool,
    /// The newest instance of each container, init containers included.
    pub containers: Vec<ObservedContainer>,
    /// Containers whose liveness (or startup) probe says they must be restarted.
    pub unhealthy: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Stop every container and the sandbox, and tear the network down (`reason` for the events).
    KillPod { reason: String },
    /// Make a new sandbox (network included).
    CreateSandbox,
    /// Start (create and start) this container, init or regular.
    Start { name: String, init: bool },
    /// Start this container, made (`runc create`) by an earlier sync that ended before starting it
    /// (the agent was restarted or killed in between): kubelet starts a Created container too.
    StartCreated { name: String, id: String },
    /// Stop this running container (`reason` is kubelet's message for the Killing event).
    Kill {
        name: String,
        id: String,
        reason: String,
    },
}

/// The pod finished: every container ended and none will restart.
pub fn terminal(pod: &Pod, observed: &Observed) -> bool {
    let Some(spec) = pod.spec.as_ref() else {
        return true;
    };
    let policy = crate::status::restart_policy(pod);
    if init_failed_for_good(pod, observed) {
        return true;
    }
    !spec.containers.is_empty()
        && spec
            .containers
            .iter()
            .all(|c| match find(observed, &c.name).map(|o| &o.state) {
                Some(ObservedState::Exited { code }) => {
                    policy == "Never" || (policy == "OnFailure" && *code == 0)
                }
                _ => false,
            })
}

fn find<'a>(observed: &'a Observed, name: &str) -> Option<&'a ObservedContainer> {
    observed.containers.iter().find(|c| c.name == name)
}

fn init_failed_for_good(pod: &Pod, observed: &Observed) -> bool {
    crate::status::restart_policy(pod) == "Never"
        && pod
            .spec
            .as_ref()
            .and_then(|s| s.init_containers.as_ref())
            .into_iter()
            .flatten()
            .any(|c| {
                matches!(find(observed, &c.name).map(|o| &o.state),
                    Some(ObservedState::Exited { code }) if *code != 0)
            })
}

/// The actions that move the pod towards its spec, in order. Containers that wait for a back-off are
/// still listed: the caller checks the back-off before starting them.
pub fn next_actions(pod: &Pod, observed: &Observed) -> Vec<Action> {
    let Some(spec) = pod.spec.as_ref() else {
        return Vec::new();
    };
    let policy = crate::status::restart_policy(pod);
    let restart = |code: i32| policy == "Always" || (policy == "OnFailure" && code != 0);
    let mut actions = Vec::new();

    if terminal(pod, observed) {
        if observed.sandbox_exists
            || observed
                .containers
                .iter()
                .any(|c| c.state == ObservedState::Running)
        {
            actions.push(Action::KillPod {
                reason: "pod finished".into(),
            });
        }
        return actions;
    }

    if !observed.sandbox_ready {
        // A dead sandbox takes its network with it: start over, as kubelet does ("Pod sandbox changed,
        // it will be killed and re-created.").
        if observed.sandbox_exists || !observed.containers.is_empty() {
            actions.push(Action::KillPod {
                reason: "pod sandbox changed, it will be killed and re-created".into(),
            });
        }
        actions.push(Action::CreateSandbox);
        let inits = spec.init_containers.as_deref().unwrap_or_default();
        match inits.first() {
            Some(first) => actions.push(Action::Start {
                name: first.name.clone(),
                init: true,
            }),
            None => actions.extend(spec.containers.iter().map(|c| Action::Start {
                name: c.name.clone(),
                init: false,
            })),
        }
        return actions;
    }

    // Init containers run one at a time, in order, each to success.
    for init in spec.init_containers.iter().flatten() {
        match find(observed, &init.name).map(|o| &o.state) {
            Some(ObservedState::Exited { code: 0 }) => continue,
            Some(ObservedState::Running) => return actions,
            Some(ObservedState::Created) => {
                let id = find(observed, &init.name)
                    .map(|o| o.id.clone())
                    .unwrap_or_default();
                actions.push(Action::StartCreated {
                    name: init.name.clone(),
                    id,
                });
                return actions;
            }
            Some(ObservedState::Exited { .. }) | None => {
                // A failed init container is retried unless the policy is Never (then the pod failed,
                // handled above as terminal).
                actions.push(Action::Start {
                    name: init.name.clone(),
                    init: true,
                });
                return actions;
            }
        }
    }

    for c in &spec.containers {
        let image = c.image.clone().unwrap_or_default();
        match find(observed, &c.name) {
            None => actions.push(Action::Start {
                name: c.name.clone(),
                init: false,
            }),
            Some(o) => match &o.state {
                ObservedState::Running => {
                    if observed.unhealthy.contains(&c.name) {
                        actions.push(Action::Kill {
                            name: c.name.clone(),
                            id: o.id.clone(),
                            reason: format!(
                                "Container {} failed liveness probe, will be restarted",
                                c.name
                            ),
                        });
                    } else if !image.is_empty() && o.image != image {
                        actions.push(Action::Kill {
                            name: c.name.clone(),
                            id: o.id.clone(),
                            reason: format!(
                                "Container {} definition changed, will be restarted",
                                c.name
                            ),
                        });
                    }
                }
                ObservedState::Created => actions.push(Action::StartCreated {
                    name: c.name.clone(),
                    id: o.id.clone(),
                }),
                ObservedState::Exited { code } => {
                    if restart(*code) {
                        actions.push(Action::Start {
                            name: c.name.clone(),
                            init: false,
                        });
                    }
                }
            },
        }
    }
    // ephemeral containers (`kubectl debug`) start once and are never restarted
    for e in spec.ephemeral_containers.iter().flatten() {
        if find(observed, &e.name).is_none() {
            actions.push(Action::Start {
                name: e.name.clone(),
                init: false,
            });
        }
    }
    actions
}

/// Whether the regular containers `names` (in start order) may be made at once, before the first
/// of them starts. Not when one but the last has a postStart hook: kubelet makes each container
/// (its subPath mounts resolved, its directories created) only after the previous one started and
/// its hook ran, and a hook may write what the next container mounts.
pub fn make_at_once(pod: &Pod, names: &[String]) -> bool {
    let Some(spec) = pod.spec.as_ref() else {
        return false;
    };
    let hooked = |name: &String| {
        spec.containers.iter().any(|c| {
            &c.name == name && c.lifecycle.as_ref().is_some_and(|l| l.post_start.is_some())
        })
    };
    names.len() >= 2 && !names[..names.len() - 1].iter().any(hooked)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(v: serde_json::Value) -> Pod {
        serde_json::from_value(v).unwrap()
    }

    fn c(name: &str, state: ObservedState) -> ObservedContainer {
        ObservedContainer {
            name: name.into(),
            id: format!("id-{name}"),
            attempt: 0,
            image: "busybox".into(),
            state,
        }
    }

    fn start(name: &str, init: bool) -> Action {
        Action::Start {
            name: name.into(),
            init,
        }
    }

    #[test]
    fn containers_are_made_at_once_unless_a_hook_runs_before_the_last() {
        let names = |n: &[&str]| n.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let plain = pod(json!({"spec": {"containers": [{"name": "a"}, {"name": "b"}]}}));
        assert!(make_at_once(&plain, &names(&["a", "b"])));
        assert!(!make_at_once(&plain, &names(&["a"])));
        let hook = json!({"postStart": {"exec": {"command": ["true"]}}});
        let first =
            pod(json!({"spec": {"containers": [{"name": "a", "lifecycle": hook}, {"name": "b"}]}}));
        assert!(!make_at_once(&first, &names(&["a", "b"])));
        let last =
            pod(json!({"spec": {"containers": [{"name": "a"}, {"name": "b", "lifecycle": hook}]}}));
        assert!(make_at_once(&last, &names(&["a", "b"])));
    }

    /// A container an earlier sync made but never started (the agent died between `runc create`
    /// and `runc start`) is started, after the ones before it; so is such an init container.
    #[test]
    fn created_containers_left_by_an_earlier_sync_are_started() {
        let p = pod(json!({"spec": {"containers": [
            {"name": "a", "image": "busybox"}, {"name": "b", "image": "busybox"}]}}));
        let o = Observed {
            sandbox_ready: true,
            sandbox_exists: true,
            containers: vec![c("b", ObservedState::Created)],
            unhealthy: vec![],
        };
        assert_eq!(
            next_actions(&p, &o),
            [
                start("a", false),
                Action::StartCreated {
                    name: "b".into(),
                    id: "id-b".into()
                }
            ]
        );
        let with_init = pod(
            json!({"spec": {"initContainers": [{"name": "i", "image": "busybox"}],
            "containers": [{"name": "a", "image": "busybox"}]}}),
        );
        let o = Observed {
            sandbox_ready: true,
            sandbox_exists: true,
            containers: vec![c("i", ObservedState::Created)],
            unhealthy: vec![],
        };
        assert_eq!(
            next_actions(&with_init, &o),
            [Action::StartCreated {
                name: "i".into(),
                id: "id-i".into()
            }]
        );
    }

    #[test]
    fn ephemeral_containers_start_once() {
        let p = pod(
            json!({"spec": {"containers": [{"name": "a", "image": "busybox"}],
            "ephemeralContainers": [{"name": "debugger", "image": "busybox"}]}}),
        );
        let running = Observed {
            sandbox_ready: true,
            sandbox_exists: true,
            containers: vec![c("a", ObservedState::Running)],
            unhealthy: vec![],
        };
        assert_eq!(next_actions(&p, &running), [start("debugger", false)]);
        let mut done = running.clone();
        done.containers
            .push(c("debugger", ObservedState::Exited { code: 0 }));
        assert!(
            next_actions(&p, &done).is_empty(),
            "an ephemeral container is not restarted"
        );
    }

    #[test]
    fn a_new_pod_gets_a_sandbox_then_its_first_init_container() {
        let p = pod(
            json!({"spec": {"initContainers": [{"name": "i1", "image": "busybox"}, {"name": "i2", "image": "busybox"}],
            "containers": [{"name": "a", "image": "busybox"}]}}),
        );
        assert_eq!(
            next_actions(&p, &Observed::default()),
            [Action::CreateSandbox, start("i1", true)]
        );
        let mut o = Observed {
            sandbox_ready: true,
            sandbox_exists: true,
            containers: vec![c("i1", ObservedState::Running)],
            ..Default::default()
        };
        assert!(next_actions(&p, &o).is_empty(), "wait for i1");
        o.containers = vec![c("i1", ObservedState::Exited { code: 0 })];
        assert_eq!(next_actions(&p, &o), [start("i2", true)]);
        o.containers
            .push(c("i2", ObservedState::Exited { code: 0 }));
        assert_eq!(next_actions(&p, &o), [start("a", false)]);
        o.containers[1].state = ObservedState::Exited { code: 1 };
        assert_eq!(
            next_actions(&p, &o),
            [start("i2", true)],
            "a failed init container is retried"
        );
    }

    #[test]
    fn restart_policies() {
        let mk = |policy: &str| {
            pod(
                json!({"spec": {"restartPolicy": policy, "containers": [{"name": "a", "image": "busybox"}]}}),
            )
        };
        let exited = |code| Observed {
            sandbox_ready: true,
            sandbox_exists: true,
            containers: vec![c("a", ObservedState::Exited { code })],
            ..Default::default()
        };
        assert_eq!(next_actions(&mk("Always"), &exited(0)), [start("a", false)]);
        assert_eq!(
            next_actions(&mk("OnFailure"), &exited(1)),
            [start("a", false)]
        );
        let done = next_actions(&mk("OnFailure"), &exited(0));
        assert!(
            matches!(done.as_slice(), [Action::KillPod { .. }]),
            "{done:?}"
        );
        assert!(terminal(&mk("Never"), &exited(3)));
        assert!(!terminal(&mk("Always"), &exited(3)));
    }

    #[test]
    fn a_dead_sandbox_restarts_the_pod_and_probes_restart_containers() {
        let p = pod(
            json!({"spec": {"containers": [{"name": "a", "image": "busybox"}, {"name": "b", "image": "nginx"}]}}),
        );
        let mut o = Observed {
            sandbox_ready: false,
            sandbox_exists: true,
            containers: vec![c("a", ObservedState::Running)],
            ..Default::default()
        };
        let acts = next_actions(&p, &o);
        assert!(matches!(acts[0], Action::KillPod { .. }));
        assert_eq!(
            acts[1..],
            [Action::CreateSandbox, start("a", false), start("b", false)]
        );
        o.sandbox_ready = true;
        o.unhealthy = vec!["a".into()];
        o.containers.push(c("b", ObservedState::Running));
        let acts = next_actions(&p, &o);
        assert!(
            matches!(&acts[0], Action::Kill { name, reason, .. } if name == "a" && reason.contains("liveness"))
        );
        assert!(
            matches!(&acts[1], Action::Kill { name, reason, .. } if name == "b" && reason.contains("definition changed"))
        );
    }
}
