//! Puts the default ClusterRoles and ClusterRoleBindings in place at every start (kube-apiserver's
//! RBAC bootstrap hook): missing ones are created, stored ones get back the rules, subjects, labels
//! and annotations they lack (unless annotated `rbac.authorization.kubernetes.io/autoupdate:
//! "false"`), then the aggregated roles are filled so that `admin`, `edit` and `view` hold their
//! rules before the first request.

use std::sync::Arc;

use podnet_apimachinery::rbac::{self, defaults};
use podnet_apimachinery::{ApiError, object, resources};
use serde_json::Value;

use crate::registry::{Api, WriteOptions};

pub async fn reconcile(api: &Arc<Api>) -> Result<(), ApiError> {
    let roles = resources::find(rbac::GROUP, "v1", "clusterroles").expect("served");
    let bindings = resources::find(rbac::GROUP, "v1", "clusterrolebindings").expect("served");
    for (def, objects) in [
        (roles, defaults::cluster_roles()),
        (bindings, defaults::cluster_role_bindings()),
    ] {
        for default in objects {
            let name = object::name(&default).to_string();
            if api.get_entry(def, "", &name).is_err() {
                match api.create(def, "", default, &WriteOptions::default()).await {
                    Ok(_) => {}
                    Err(e) if e.reason == "AlreadyExists" => {}
                    Err(e) => return Err(e),
                }
                continue;
            }
            api.mutate(def, "", &name, None, |stored| {
                match defaults::reconcile(stored, &default) {
                    Some(fixed) => {
                        *stored = fixed;
                        true
                    }
                    None => false,
                }
            })
            .await?;
        }
    }
    // admin aggregates edit, which aggregates view: one pass per level
    for _ in 0..3 {
        aggregate_all(api).await?;
    }
    Ok(())
}

/// Gives every aggregating ClusterRole the rules of the roles it selects; true when one changed.
pub async fn aggregate_all(api: &Arc<Api>) -> Result<bool, ApiError> {
    let def = resources::find(rbac::GROUP, "v1", "clusterroles").expect("served");
    let all = api.list_values(def, None);
    let mut changed = false;
    for role in &all {
        let Some(rules) = rbac::aggregate::rules(role, &all) else {
            continue;
        };
        let rules = Value::from(rules);
        let out = api
            .mutate(def, "", object::name(role), None, |r| {
                if r.get("rules") == Some(&rules) {
                    return false;
                }
                r["rules"] = rules.clone();
                true
            })
            .await?;
        changed |= out.is_some();
    }
    Ok(changed)
}
