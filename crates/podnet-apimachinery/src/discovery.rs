//! Discovery documents: aggregated (`apidiscovery.k8s.io/v2`) and legacy (APIVersions, APIGroupList,
//! APIResourceList), all derived from [`crate::resources::RESOURCES`].

use serde_json::{Value, json};

use crate::resources::{self, ResourceDef};

/// The content type of an aggregated discovery answer.
pub const AGGREGATED_V2: &str =
    "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList";
pub const AGGREGATED_V2BETA1: &str =
    "application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList";

fn scope(r: &ResourceDef) -> &'static str {
    if r.namespaced {
        "Namespaced"
    } else {
        "Cluster"
    }
}

fn aggregated_resource(r: &ResourceDef) -> Value {
    let mut v = json!({
        "resource": r.plural,
        "responseKind": {"group": r.group, "version": r.version, "kind": r.kind},
        "scope": scope(r),
        "singularResource": r.singular,
        "verbs": r.verbs,
    });
    if !r.short_names.is_empty() {
        v["shortNames"] = json!(r.short_names);
    }
    if !r.categories.is_empty() {
        v["categories"] = json!(r.categories);
    }
    if !r.subresources.is_empty() {
        v["subresources"] = r
            .subresources
            .iter()
            .map(|s| {
                json!({
                    "subresource": s.name,
                    "responseKind": {"group": s.response.0, "version": s.response.1, "kind": s.response.2},
                    "verbs": s.verbs,
                })
            })
            .collect();
    }
    v
}

fn group_item(group: &str, api_version: &str) -> Value {
    let mut versions: Vec<&str> = Vec::new();
    for r in resources::RESOURCES.iter().filter(|r| r.group == group) {
        if !versions.contains(&r.version) {
            versions.push(r.version);
        }
    }
    let versions: Vec<Value> = versions
        .iter()
        .map(|v| {
            let res: Vec<Value> = resources::RESOURCES
                .iter()
                .filter(|r| r.group == group && r.version == *v)
                .map(aggregated_resource)
                .collect();
            json!({"version": v, "resources": res, "freshness": "Current"})
        })
        .collect();
    let metadata = if group.is_empty() {
        json!({"creationTimestamp": null})
    } else {
        json!({"name": group, "creationTimestamp": null})
    };
    let _ = api_version;
    json!({"metadata": metadata, "versions": versions})
}

/// `GET /api` (legacy = true) or `GET /apis` (legacy = false) in aggregated form. `api_version` is
/// `apidiscovery.k8s.io/v2` or `.../v2beta1`, whichever the client asked for.
pub fn aggregated(legacy: bool, api_version: &str) -> Value {
    let items: Vec<Value> = resources::groups()
        .into_iter()
        .filter(|g| g.is_empty() == legacy)
        .map(|g| group_item(g, api_version))
        .collect();
    json!({"kind": "APIGroupDiscoveryList", "apiVersion": api_version, "metadata": {}, "items": items})
}

/// Legacy `GET /api`.
pub fn api_versions(server_address: &str) -> Value {
    json!({
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": server_address}],
    })
}

fn api_group(group: &str) -> Value {
    let gv = json!({"groupVersion": format!("{group}/v1"), "version": "v1"});
    json!({"name": group, "versions": [gv.clone()], "preferredVersion": gv})
}

/// Legacy `GET /apis`.
pub fn api_group_list() -> Value {
    let groups: Vec<Value> = resources::groups()
        .into_iter()
        .filter(|g| !g.is_empty())
        .map(api_group)
        .collect();
    json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups})
}

/// Legacy `GET /apis/{group}`, `None` if the group is not served.
pub fn api_group_doc(group: &str) -> Option<Value> {
    if group.is_empty() || !resources::groups().contains(&group) {
        return None;
    }
    let mut g = api_group(group);
    g["kind"] = json!("APIGroup");
    g["apiVersion"] = json!("v1");
    Some(g)
}

/// Legacy `GET /api/v1` or `/apis/{group}/{version}`, `None` if not served.
pub fn api_resource_list(group: &str, version: &str) -> Option<Value> {
    if !resources::serves_group_version(group, version) {
        return None;
    }
    let mut out = Vec::new();
    for r in resources::RESOURCES
        .iter()
        .filter(|r| r.group == group && r.version == version)
    {
        let mut v = json!({
            "name": r.plural,
            "singularName": r.singular,
            "namespaced": r.namespaced,
            "kind": r.kind,
            "verbs": r.verbs,
        });
        if !r.short_names.is_empty() {
            v["shortNames"] = json!(r.short_names);
        }
        if !r.categories.is_empty() {
            v["categories"] = json!(r.categories);
        }
        out.push(v);
        for s in r.subresources {
            let mut sv = json!({
                "name": format!("{}/{}", r.plural, s.name),
                "singularName": "",
                "namespaced": r.namespaced,
                "kind": s.response.2,
                "verbs": s.verbs,
            });
            if s.response.0 != r.group {
                sv["group"] = json!(s.response.0);
                sv["version"] = json!(s.response.1);
            }
            out.push(sv);
        }
    }
    let gv = if group.is_empty() {
        version.to_string()
    } else {
        format!("{group}/{version}")
    };
    Some(
        json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv, "resources": out}),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn core_group_has_no_name_and_pods_have_subresources() {
        let d = aggregated(true, "apidiscovery.k8s.io/v2");
        let item = &d["items"][0];
        assert!(item["metadata"].get("name").is_none());
        let pods = item["versions"][0]["resources"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["resource"] == "pods")
            .unwrap();
        assert_eq!(pods["shortNames"], json!(["po"]));
        assert_eq!(pods["categories"], json!(["all"]));
        assert!(
            pods["subresources"]
                .as_array()
                .unwrap()
                .iter()
                .any(|s| s["subresource"] == "exec")
        );
    }

    #[test]
    fn legacy_lists() {
        let l = api_resource_list("apps", "v1").unwrap();
        let names: Vec<&str> = l["resources"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["name"].as_str().unwrap())
            .collect();
        assert!(names.contains(&"deployments/scale"));
        assert!(api_resource_list("example.com", "v1").is_none());
        assert_eq!(api_group_list()["groups"].as_array().unwrap().len(), 10);
    }
}
