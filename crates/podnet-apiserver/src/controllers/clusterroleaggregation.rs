//! ClusterRole aggregation (kube-controller-manager's clusterrole-aggregation controller): a
//! ClusterRole with an `aggregationRule` holds the rules of the ClusterRoles its selectors match,
//! kept up to date as those are created, changed, relabelled or deleted.

use std::sync::Arc;

use podnet_apistore::{ObjectKey, WatchEvent};

use super::{BoxFut, Controller};
use crate::registry::Api;

pub struct ClusterRoleAggregation;

const RESOURCE: &str = "rbac.authorization.k8s.io/clusterroles";

/// Every change can concern every aggregating role, so all events map to one key: one pass over
/// all roles (the roles it writes cause one more pass, which finds nothing to change).
fn sweep() -> ObjectKey {
    ObjectKey::new(RESOURCE, "", "aggregate")
}

impl Controller for ClusterRoleAggregation {
    fn name(&self) -> &'static str {
        "clusterrole-aggregation"
    }

    fn watches(&self) -> Vec<String> {
        vec![RESOURCE.into()]
    }

    fn keys(&self, _api: &Api, _ev: &WatchEvent) -> Vec<ObjectKey> {
        vec![sweep()]
    }

    fn all_keys(&self, _api: &Api) -> Vec<ObjectKey> {
        vec![sweep()]
    }

    fn reconcile<'a>(&'a self, api: &'a Arc<Api>, _key: &'a ObjectKey) -> BoxFut<'a> {
        Box::pin(async move {
            crate::authz::defaults::aggregate_all(api).await?;
            Ok(())
        })
    }
}
