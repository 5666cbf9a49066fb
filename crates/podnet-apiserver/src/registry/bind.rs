//! Pod binding (what the `binding` subresource and the scheduler do).

use podnet_apimachinery::resources::ResourceDef;
use podnet_apimachinery::{ApiError, object};
use serde_json::json;

use super::{Api, objref};

impl Api {
    /// Sets a pod's node and its PodScheduled condition; 409 if it already has one.
    pub async fn bind(
        &self,
        pods: &'static ResourceDef,
        ns: &str,
        pod: &str,
        node: &str,
    ) -> Result<(), ApiError> {
        let current = self.get(pods, ns, pod)?;
        if let Some(existing) = object::str_at(&current, "spec.nodeName").filter(|n| !n.is_empty())
        {
            return Err(ApiError::conflict(
                objref(pods, pod),
                &format!("pod {pod} is already assigned to node {existing:?}"),
            ));
        }
        if object::is_deleting(&current) {
            return Err(ApiError::conflict(
                objref(pods, pod),
                "pod is being deleted, cannot be assigned to a host",
            ));
        }
        let done = self
            .mutate(pods, ns, pod, None, |p| {
                if object::str_at(p, "spec.nodeName").is_some_and(|n| !n.is_empty()) {
                    return false;
                }
                p["spec"]["nodeName"] = json!(node);
                true
            })
            .await?;
        if done.is_none() {
            return Err(ApiError::conflict(
                objref(pods, pod),
                "pod is already assigned to a node",
            ));
        }
        self.mutate(pods, ns, pod, Some("status"), |p| {
            crate::controllers::set_condition(p, "PodScheduled", "True", "", "")
        })
        .await?;
        Ok(())
    }
}
