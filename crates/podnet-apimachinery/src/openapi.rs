//! OpenAPI v3 documents generated from the served types: the `/openapi/v3` index and one document per
//! group-version, with the paths and operations of every served resource (carrying
//! `x-kubernetes-group-version-kind`, `x-kubernetes-action` and the `fieldValidation` parameter that
//! kubectl checks before it trusts server-side validation) and the component schemas (with the GVK and
//! patch-strategy extensions kubectl explain and apply read).

use std::collections::BTreeSet;

use serde_json::{Map, Value, json};

use crate::patch::meta::{STRATEGIES, Strategy};
use crate::resources::{self, ResourceDef};
use crate::schema::{Registry, ref_name};

/// The Kubernetes version podnet's API claims to be.
pub const KUBE_VERSION: &str = "v1.35.0";

/// Group-version path keys (`api/v1`, `apis/apps/v1`), in discovery order.
pub fn group_versions() -> Vec<(String, &'static str, &'static str)> {
    let mut out: Vec<(String, &str, &str)> = Vec::new();
    for r in resources::RESOURCES {
        let key = if r.group.is_empty() {
            format!("api/{}", r.version)
        } else {
            format!("apis/{}/{}", r.group, r.version)
        };
        if !out.iter().any(|(k, _, _)| *k == key) {
            out.push((key, r.group, r.version));
        }
    }
    out
}

/// The `/openapi/v3` index, given a function that hashes each group-version document.
pub fn index(hash_of: impl Fn(&str) -> String) -> Value {
    let mut paths = Map::new();
    for (key, _, _) in group_versions() {
        let h = hash_of(&key);
        paths.insert(
            key.clone(),
            json!({"serverRelativeURL": format!("/openapi/v3/{key}?hash={h}")}),
        );
    }
    json!({"paths": paths})
}

fn param(name: &str, location: &str, description: &str, required: bool) -> Value {
    json!({"name": name, "in": location, "description": description, "required": required, "schema": {"type": "string", "uniqueItems": true}})
}

fn common_write_params() -> Vec<Value> {
    vec![
        param(
            "dryRun",
            "query",
            "When present, indicates that modifications should not be persisted.",
            false,
        ),
        param(
            "fieldManager",
            "query",
            "fieldManager is a name associated with the actor or entity that is making these changes.",
            false,
        ),
        param(
            "fieldValidation",
            "query",
            "fieldValidation instructs the server on how to handle objects in the request (POST/PUT/PATCH) containing unknown or duplicate fields. Valid values are: - Ignore - Warn - Strict",
            false,
        ),
    ]
}

fn list_params() -> Vec<Value> {
    [
        "allowWatchBookmarks",
        "continue",
        "fieldSelector",
        "labelSelector",
        "limit",
        "resourceVersion",
        "resourceVersionMatch",
        "sendInitialEvents",
        "timeoutSeconds",
        "watch",
    ]
    .iter()
    .map(|p| param(p, "query", "", false))
    .collect()
}

fn content(schema_ref: &str) -> Value {
    let s = json!({"$ref": format!("#/components/schemas/{schema_ref}")});
    json!({"application/json": {"schema": s.clone()}, "application/yaml": {"schema": s.clone()}, "application/vnd.kubernetes.protobuf": {"schema": s}})
}

fn op(
    r: &ResourceDef,
    action: &str,
    verb: &str,
    id: &str,
    schema: &str,
    body: bool,
    extra: Vec<Value>,
) -> Value {
    let mut o = json!({
        "operationId": id,
        "description": format!("{verb} {}", r.kind),
        "tags": [r.api_version().replace('/', "_")],
        "parameters": extra,
        "responses": {"200": {"description": "OK", "content": content(schema)}, "401": {"description": "Unauthorized"}},
        "x-kubernetes-action": action,
        "x-kubernetes-group-version-kind": {"group": r.group, "version": r.version, "kind": r.kind},
    });
    if action == "post" || action == "put" {
        o["responses"]["201"] = json!({"description": "Created", "content": content(schema)});
    }
    if body {
        let mut c = content(schema);
        if action == "patch" {
            let any = json!({"schema": {"type": "object"}});
            c = json!({
                "application/apply-patch+yaml": any.clone(),
                "application/json-patch+json": any.clone(),
                "application/merge-patch+json": any.clone(),
                "application/strategic-merge-patch+json": any,
            });
        }
        o["requestBody"] = json!({"content": c, "required": true});
    }
    o
}

fn paths_for(r: &ResourceDef, paths: &mut Map<String, Value>) {
    let prefix = r.gv_path();
    let ns = if r.namespaced {
        "/namespaces/{namespace}"
    } else {
        ""
    };
    let collection = format!("{prefix}{ns}/{}", r.plural);
    let item = format!("{collection}/{{name}}");
    let name = r.kind;
    let nsn = if r.namespaced { "Namespaced" } else { "" };
    let mut path_params = vec![param(
        "pretty",
        "query",
        "If 'true', then the output is pretty printed.",
        false,
    )];
    if r.namespaced {
        path_params.push(param(
            "namespace",
            "path",
            "object name and auth scope, such as for teams and projects",
            true,
        ));
    }
    let mut coll = Map::new();
    coll.insert("parameters".into(), Value::Array(path_params.clone()));
    if r.has_verb("list") {
        coll.insert(
            "get".into(),
            op(
                r,
                "list",
                "list or watch objects of kind",
                &format!("list{nsn}{name}"),
                r.schema,
                false,
                list_params(),
            ),
        );
    }
    if r.has_verb("create") {
        coll.insert(
            "post".into(),
            op(
                r,
                "post",
                "create a",
                &format!("create{nsn}{name}"),
                r.schema,
                true,
                common_write_params(),
            ),
        );
    }
    if r.has_verb("deletecollection") {
        coll.insert(
            "delete".into(),
            op(
                r,
                "deletecollection",
                "delete collection of",
                &format!("deleteCollection{nsn}{name}"),
                "io.k8s.apimachinery.pkg.apis.meta.v1.Status",
                false,
                list_params(),
            ),
        );
    }
    paths.insert(collection.clone(), Value::Object(coll));
    if !r.has_verb("get") {
        return;
    }
    let mut item_params = path_params.clone();
    item_params.push(param("name", "path", &format!("name of the {name}"), true));
    let mut it = Map::new();
    it.insert("parameters".into(), Value::Array(item_params.clone()));
    it.insert(
        "get".into(),
        op(
            r,
            "get",
            "read the specified",
            &format!("read{nsn}{name}"),
            r.schema,
            false,
            vec![],
        ),
    );
    if r.has_verb("update") {
        it.insert(
            "put".into(),
            op(
                r,
                "put",
                "replace the specified",
                &format!("replace{nsn}{name}"),
                r.schema,
                true,
                common_write_params(),
            ),
        );
    }
    if r.has_verb("patch") {
        let mut params = common_write_params();
        params.push(param(
            "force",
            "query",
            "Force is going to \"force\" Apply requests.",
            false,
        ));
        it.insert(
            "patch".into(),
            op(
                r,
                "patch",
                "partially update the specified",
                &format!("patch{nsn}{name}"),
                r.schema,
                true,
                params,
            ),
        );
    }
    if r.has_verb("delete") {
        let mut params = vec![
            param("dryRun", "query", "", false),
            param("gracePeriodSeconds", "query", "", false),
            param("propagationPolicy", "query", "", false),
        ];
        params.push(param("orphanDependents", "query", "", false));
        it.insert(
            "delete".into(),
            op(
                r,
                "delete",
                "delete a",
                &format!("delete{nsn}{name}"),
                "io.k8s.apimachinery.pkg.apis.meta.v1.Status",
                false,
                params,
            ),
        );
    }
    paths.insert(item.clone(), Value::Object(it));
    if r.namespaced && r.has_verb("list") {
        let mut all = Map::new();
        all.insert(
            "get".into(),
            op(
                r,
                "list",
                "list or watch objects of kind",
                &format!("list{name}ForAllNamespaces"),
                r.schema,
                false,
                list_params(),
            ),
        );
        paths.insert(format!("{prefix}/{}", r.plural), Value::Object(all));
    }
    for s in r.subresources {
        let (sg, sv, sk) = s.response;
        let schema = match sk {
            "Scale" => "io.k8s.api.autoscaling.v1.Scale".to_string(),
            "Binding" => "io.k8s.api.core.v1.Binding".to_string(),
            "TokenRequest" => "io.k8s.api.authentication.v1.TokenRequest".to_string(),
            _ if sg == r.group && sv == r.version && sk == r.kind => r.schema.to_string(),
            _ => continue, // log and exec stream, they have no schema
        };
        let mut sp = Map::new();
        sp.insert("parameters".into(), Value::Array(item_params.clone()));
        let title = format!("{name}{}", capitalize(s.name));
        for verb in s.verbs {
            let (method, action, body) = match *verb {
                "get" => ("get", "get", false),
                "update" => ("put", "put", true),
                "patch" => ("patch", "patch", true),
                "create" => ("post", "post", true),
                _ => continue,
            };
            let id = format!(
                "{}{nsn}{title}",
                match method {
                    "get" => "read",
                    "put" => "replace",
                    "patch" => "patch",
                    _ => "create",
                }
            );
            let mut o = op(
                r,
                action,
                verb,
                &id,
                &schema,
                body,
                if body { common_write_params() } else { vec![] },
            );
            if sk == "Scale" || sk == "TokenRequest" {
                o["x-kubernetes-group-version-kind"] =
                    json!({"group": sg, "version": sv, "kind": sk});
            }
            sp.insert(method.into(), o);
        }
        paths.insert(format!("{item}/{}", s.name), Value::Object(sp));
    }
}

fn capitalize(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_uppercase().collect::<String>() + c.as_str(),
        None => String::new(),
    }
}

/// Collects the definitions reachable from `root`.
fn reachable(reg: &Registry, root: &str, out: &mut BTreeSet<String>) {
    if !out.insert(root.to_string()) {
        return;
    }
    if let Some(d) = reg.def(root) {
        let mut refs = Vec::new();
        collect_refs(d, &mut refs);
        for r in refs {
            reachable(reg, &r, out);
        }
    }
}

fn collect_refs(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::Object(m) => {
            if let Some(r) = ref_name(v) {
                out.push(r.to_string());
            }
            for x in m.values() {
                collect_refs(x, out);
            }
        }
        Value::Array(a) => a.iter().for_each(|x| collect_refs(x, out)),
        _ => {}
    }
}

/// The document of one group-version (`api/v1`, `apis/apps/v1`), `None` if not served.
pub fn group_version_doc(key: &str) -> Option<Value> {
    let (_, group, version) = group_versions().into_iter().find(|(k, _, _)| k == key)?;
    let reg = Registry::get();
    let mut paths = Map::new();
    let mut roots: BTreeSet<String> = BTreeSet::new();
    for r in resources::RESOURCES
        .iter()
        .filter(|r| r.group == group && r.version == version)
    {
        paths_for(r, &mut paths);
        roots.insert(r.schema.to_string());
        if r.subresource("scale").is_some() {
            roots.insert("io.k8s.api.autoscaling.v1.Scale".into());
        }
        if r.subresource("token").is_some() {
            roots.insert("io.k8s.api.authentication.v1.TokenRequest".into());
        }
    }
    roots.insert("io.k8s.apimachinery.pkg.apis.meta.v1.Status".into());
    roots.insert("io.k8s.apimachinery.pkg.apis.meta.v1.DeleteOptions".into());
    let mut all = BTreeSet::new();
    for r in &roots {
        reachable(reg, r, &mut all);
    }
    let mut schemas = Map::new();
    for name in all {
        let Some(d) = reg.def(&name) else { continue };
        let mut d = d.clone();
        decorate(&name, &mut d);
        schemas.insert(name, d);
    }
    Some(json!({
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes", "version": KUBE_VERSION},
        "paths": paths,
        "components": {"schemas": schemas, "securitySchemes": {"BearerToken": {"type": "apiKey", "description": "Bearer Token authentication", "name": "authorization", "in": "header"}}},
        "security": [{"BearerToken": []}],
    }))
}

/// Adds the GVK extension to kind schemas and patch strategies to properties.
fn decorate(name: &str, d: &mut Value) {
    let gvks: Vec<Value> = resources::RESOURCES
        .iter()
        .filter(|r| r.schema == name)
        .map(|r| json!({"group": r.group, "version": r.version, "kind": r.kind}))
        .chain(match name {
            "io.k8s.api.autoscaling.v1.Scale" => {
                Some(json!({"group": "autoscaling", "version": "v1", "kind": "Scale"}))
            }
            "io.k8s.api.authentication.v1.TokenRequest" => Some(
                json!({"group": "authentication.k8s.io", "version": "v1", "kind": "TokenRequest"}),
            ),
            "io.k8s.apimachinery.pkg.apis.meta.v1.Status" => {
                Some(json!({"group": "", "version": "v1", "kind": "Status"}))
            }
            "io.k8s.apimachinery.pkg.apis.meta.v1.DeleteOptions" => {
                Some(json!({"group": "", "version": "v1", "kind": "DeleteOptions"}))
            }
            _ => None,
        })
        .collect();
    if !gvks.is_empty() {
        d["x-kubernetes-group-version-kind"] = Value::Array(gvks);
    }
    for (def, field, strategy) in STRATEGIES {
        if *def != name || field.is_empty() {
            continue;
        }
        let Some(p) = d.pointer_mut(&format!("/properties/{field}")) else {
            continue;
        };
        match strategy {
            Strategy::MergeKey(k) => {
                p["x-kubernetes-patch-merge-key"] = json!(k);
                p["x-kubernetes-patch-strategy"] = json!("merge");
                p["x-kubernetes-list-type"] = json!("map");
                p["x-kubernetes-list-map-keys"] = json!([k]);
            }
            Strategy::MergePrimitive => {
                p["x-kubernetes-patch-strategy"] = json!("merge");
                p["x-kubernetes-list-type"] = json!("set");
            }
            Strategy::RetainKeys => p["x-kubernetes-patch-strategy"] = json!("retainKeys"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn core_doc_has_pod_paths_and_schemas() {
        let d = group_version_doc("api/v1").unwrap();
        let patch = &d["paths"]["/api/v1/namespaces/{namespace}/pods/{name}"]["patch"];
        assert_eq!(patch["x-kubernetes-group-version-kind"]["kind"], "Pod");
        assert!(
            patch["parameters"]
                .as_array()
                .unwrap()
                .iter()
                .any(|p| p["name"] == "fieldValidation")
        );
        let pod = &d["components"]["schemas"]["io.k8s.api.core.v1.Pod"];
        assert_eq!(pod["x-kubernetes-group-version-kind"][0]["kind"], "Pod");
        let spec = &d["components"]["schemas"]["io.k8s.api.core.v1.PodSpec"];
        assert_eq!(
            spec["properties"]["containers"]["x-kubernetes-patch-merge-key"],
            "name"
        );
        assert!(
            d["components"]["schemas"]
                .get("io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta")
                .is_some()
        );
        assert!(group_version_doc("apis/batch/v1").is_some());
        assert!(group_version_doc("apis/example.com/v1").is_none());
    }

    #[test]
    fn index_lists_every_group_version() {
        let i = index(|k| format!("H{}", k.len()));
        assert_eq!(
            i["paths"]["apis/apps/v1"]["serverRelativeURL"],
            "/openapi/v3/apis/apps/v1?hash=H12"
        );
    }
}
