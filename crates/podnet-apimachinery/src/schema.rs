//! The schemas of the served types, generated from k8s-openapi's `schemars` implementations (which carry
//! the upstream OpenAPI descriptions, types and required fields). One registry serves the OpenAPI v3
//! documents, `kubectl explain`, strict field validation and the type checks of decoding.

use std::sync::OnceLock;

use serde_json::{Map, Value};

use k8s_openapi::api::{
    apps, authentication, authorization, autoscaling, batch, coordination, core, discovery,
    networking, policy, rbac, scheduling,
};
use k8s_openapi::apimachinery::pkg::apis::meta;

/// Definitions by OpenAPI name (`io.k8s.api.core.v1.Pod`).
pub struct Registry {
    defs: Map<String, Value>,
}

const REF_PREFIX: &str = "#/components/schemas/";

static REGISTRY: OnceLock<Registry> = OnceLock::new();

impl Registry {
    /// The registry, built on first use.
    pub fn get() -> &'static Registry {
        REGISTRY.get_or_init(Registry::build)
    }

    fn build() -> Registry {
        let mut g = schemars::generate::SchemaSettings::openapi3().into_generator();
        macro_rules! roots { ($($t:ty),* $(,)?) => { $( let _ = g.subschema_for::<$t>(); )* } }
        roots!(
            core::v1::Pod,
            core::v1::Service,
            core::v1::Namespace,
            core::v1::Node,
            core::v1::ConfigMap,
            core::v1::Secret,
            core::v1::ServiceAccount,
            core::v1::Endpoints,
            core::v1::Event,
            core::v1::Binding,
            core::v1::ResourceQuota,
            core::v1::LimitRange,
            apps::v1::Deployment,
            apps::v1::ReplicaSet,
            apps::v1::DaemonSet,
            apps::v1::StatefulSet,
            apps::v1::ControllerRevision,
            batch::v1::Job,
            batch::v1::CronJob,
            autoscaling::v1::Scale,
            coordination::v1::Lease,
            authentication::v1::TokenRequest,
            authentication::v1::SelfSubjectReview,
            authentication::v1::TokenReview,
            discovery::v1::EndpointSlice,
            networking::v1::NetworkPolicy,
            networking::v1::Ingress,
            networking::v1::IngressClass,
            authorization::v1::SelfSubjectAccessReview,
            authorization::v1::SelfSubjectRulesReview,
            authorization::v1::SubjectAccessReview,
            authorization::v1::LocalSubjectAccessReview,
            rbac::v1::Role,
            rbac::v1::ClusterRole,
            rbac::v1::RoleBinding,
            rbac::v1::ClusterRoleBinding,
            scheduling::v1::PriorityClass,
            policy::v1::PodDisruptionBudget,
            meta::v1::DeleteOptions,
            meta::v1::Status,
            meta::v1::APIResourceList,
        );
        let defs = g.take_definitions(true);
        Registry { defs }
    }

    pub fn defs(&self) -> &Map<String, Value> {
        &self.defs
    }

    pub fn def(&self, name: &str) -> Option<&Value> {
        self.defs.get(name)
    }

    /// Follows a `$ref` (possibly wrapped in `allOf`), returning the definition name and schema.
    pub fn resolve<'a>(&'a self, schema: &'a Value) -> (Option<&'a str>, &'a Value) {
        if let Some(r) = ref_name(schema)
            && let Some(d) = self.defs.get(r)
        {
            return (Some(r), d);
        }
        (None, schema)
    }

    /// The schema of property `field` of definition `def`, resolved.
    pub fn property<'a>(&'a self, def: &str, field: &str) -> Option<(Option<&'a str>, &'a Value)> {
        let p = self.defs.get(def)?.get("properties")?.get(field)?;
        Some(self.resolve(p))
    }
}

/// The definition name a schema refers to, if it is a reference.
pub fn ref_name(schema: &Value) -> Option<&str> {
    if let Some(r) = schema.get("$ref").and_then(Value::as_str) {
        return r.strip_prefix(REF_PREFIX);
    }
    if let Some(Value::Array(all)) = schema.get("allOf") {
        return all.iter().find_map(ref_name);
    }
    None
}

/// What decoding an object against its schema found.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct DecodeReport {
    /// Paths of unknown fields (`spec.containers[0].foo`), in document order; they have been removed.
    pub unknown: Vec<String>,
    /// The first type mismatch, worded as Go's encoding/json does.
    pub type_error: Option<String>,
}

/// Checks `obj` against definition `def`: removes unknown fields (reporting them), removes `null`s (Go
/// decodes them to the zero value, which JSON then omits), and reports the first type mismatch.
pub fn check_and_prune(obj: &mut Value, def: &str) -> DecodeReport {
    let reg = Registry::get();
    let mut report = DecodeReport::default();
    if let Some(schema) = reg.def(def) {
        walk(reg, obj, schema, Some(def), "", &mut report);
    }
    report
}

fn go_type(reg: &Registry, schema: &Value) -> String {
    let (name, s) = reg.resolve(schema);
    if let Some(n) = name {
        // io.k8s.api.core.v1.PodSpec -> v1.PodSpec
        let mut parts = n.rsplit('.');
        let t = parts.next().unwrap_or(n);
        let v = parts.next().unwrap_or("");
        if s.get("x-kubernetes-int-or-string").is_some() {
            return if t == "Quantity" {
                "resource.Quantity".into()
            } else {
                "intstr.IntOrString".into()
            };
        }
        return format!("{v}.{t}");
    }
    match s.get("type").and_then(Value::as_str) {
        Some("integer") => s
            .get("format")
            .and_then(Value::as_str)
            .unwrap_or("int64")
            .to_string(),
        Some("number") => "float64".into(),
        Some("boolean") => "bool".into(),
        Some("string") => "string".into(),
        Some("array") => format!(
            "[]{}",
            s.get("items").map(|i| go_type(reg, i)).unwrap_or_default()
        ),
        Some("object") => match s.get("additionalProperties") {
            Some(ap @ Value::Object(_)) => format!("map[string]{}", go_type(reg, ap)),
            _ => "map[string]interface {}".into(),
        },
        _ => "interface {}".into(),
    }
}

fn json_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "bool",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

fn struct_name(def: Option<&str>) -> &str {
    def.and_then(|d| d.rsplit('.').next()).unwrap_or("")
}

fn type_error(
    reg: &Registry,
    report: &mut DecodeReport,
    v: &Value,
    schema: &Value,
    parent: Option<&str>,
    path: &str,
) {
    if report.type_error.is_none() {
        // Go omits list indices in the path of the field
        let clean: String = path
            .split('[')
            .map(|s| s.split_once(']').map(|(_, r)| r).unwrap_or(s))
            .collect();
        report.type_error = Some(format!(
            "json: cannot unmarshal {} into Go struct field {}.{} of type {}",
            json_type(v),
            struct_name(parent),
            clean,
            go_type(reg, schema)
        ));
    }
}

fn join(path: &str, field: &str) -> String {
    if path.is_empty() {
        field.to_string()
    } else {
        format!("{path}.{field}")
    }
}

fn walk(
    reg: &Registry,
    v: &mut Value,
    schema: &Value,
    parent: Option<&str>,
    path: &str,
    report: &mut DecodeReport,
) {
    let (name, s) = reg.resolve(schema);
    let parent_for_children = name.or(parent);
    if s.get("x-kubernetes-int-or-string").is_some() {
        if !matches!(v, Value::String(_) | Value::Number(_)) {
            type_error(reg, report, v, schema, parent, path);
        }
        return;
    }
    if s.get("x-kubernetes-preserve-unknown-fields").is_some() {
        return;
    }
    let ty = s.get("type").and_then(Value::as_str);
    match (ty, &mut *v) {
        (Some("object"), Value::Object(m)) => {
            if let Some(Value::Object(props)) = s.get("properties") {
                let keys: Vec<String> = m.keys().cloned().collect();
                for k in keys {
                    let child = m.get_mut(&k).expect("key exists");
                    if child.is_null() {
                        m.remove(&k);
                        continue;
                    }
                    match props.get(&k) {
                        Some(ps) => {
                            walk(reg, child, ps, parent_for_children, &join(path, &k), report)
                        }
                        None => {
                            report.unknown.push(join(path, &k));
                            m.remove(&k);
                        }
                    }
                }
            } else if let Some(ap @ Value::Object(_)) = s.get("additionalProperties") {
                for (k, child) in m.iter_mut() {
                    if !child.is_null() {
                        walk(reg, child, ap, parent_for_children, &join(path, k), report);
                    }
                }
            }
            // an object schema without properties (FieldsV1, RawExtension) keeps anything
        }
        (Some("array"), Value::Array(items)) => {
            if let Some(is) = s.get("items") {
                for (i, item) in items.iter_mut().enumerate() {
                    walk(
                        reg,
                        item,
                        is,
                        parent_for_children,
                        &format!("{path}[{i}]"),
                        report,
                    );
                }
            }
        }
        (Some("string"), Value::String(text)) => {
            // `format: byte` is a Go []byte: base64 that must decode (Secret data, binaryData)
            if s.get("format").and_then(Value::as_str) == Some("byte")
                && report.type_error.is_none()
                && let Some(at) = base64_error(text)
            {
                report.type_error = Some(format!("illegal base64 data at input byte {at}"));
            }
        }
        (Some("boolean"), Value::Bool(_)) | (Some("number"), Value::Number(_)) => {}
        (Some("integer"), Value::Number(n)) => {
            let ok = if s.get("format").and_then(Value::as_str) == Some("int32") {
                n.as_i64().is_some_and(|i| i32::try_from(i).is_ok())
            } else {
                n.is_i64()
            };
            if !ok && report.type_error.is_none() {
                report.type_error = Some(format!(
                    "json: cannot unmarshal number {n} into Go struct field {}.{} of type {}",
                    struct_name(parent),
                    path,
                    go_type(reg, schema)
                ));
            }
        }
        (Some(_), Value::Null) => {}
        (Some(_), _) => type_error(reg, report, v, schema, parent, path),
        (None, _) => {}
    }
}

/// Where standard padded base64 (what Go's encoding/json decodes []byte with; it skips newlines)
/// goes wrong, if it does.
fn base64_error(text: &str) -> Option<usize> {
    use base64::Engine as _;
    let clean: String = text.chars().filter(|c| *c != '\n' && *c != '\r').collect();
    match base64::engine::general_purpose::STANDARD.decode(&clean) {
        Ok(_) => None,
        Err(
            base64::DecodeError::InvalidByte(at, _) | base64::DecodeError::InvalidLastSymbol(at, _),
        ) => Some(at),
        Err(_) => Some(clean.len() / 4 * 4),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn registry_has_served_types() {
        let r = Registry::get();
        for d in [
            "io.k8s.api.core.v1.Pod",
            "io.k8s.api.apps.v1.Deployment",
            "io.k8s.api.core.v1.Container",
        ] {
            assert!(r.def(d).is_some(), "{d}");
        }
        let (name, _) = r.property("io.k8s.api.core.v1.Pod", "spec").unwrap();
        assert_eq!(name, Some("io.k8s.api.core.v1.PodSpec"));
    }

    #[test]
    fn prunes_unknown_fields_and_nulls() {
        let mut pod = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "x", "creationTimestamp": null, "bogus": 1},
            "spec": {"containers": [{"name": "c", "image": "i", "imagePullPolcy": "Always"}]}});
        let rep = check_and_prune(&mut pod, "io.k8s.api.core.v1.Pod");
        assert_eq!(
            rep.unknown,
            vec!["metadata.bogus", "spec.containers[0].imagePullPolcy"]
        );
        assert!(rep.type_error.is_none());
        assert!(pod["metadata"].get("creationTimestamp").is_none());
        assert!(pod["spec"]["containers"][0].get("imagePullPolcy").is_none());
    }

    #[test]
    fn byte_fields_must_be_base64() {
        let mut ok = json!({"data": {"a": "YWRtaW4=", "b": "YWRt\naW4="}});
        assert!(
            check_and_prune(&mut ok, "io.k8s.api.core.v1.Secret")
                .type_error
                .is_none()
        );
        let mut bad = json!({"data": {"a": "!!!"}});
        assert_eq!(
            check_and_prune(&mut bad, "io.k8s.api.core.v1.Secret").type_error,
            Some("illegal base64 data at input byte 0".into())
        );
        let mut bad = json!({"binaryData": {"a": "YWRtaW4"}});
        assert!(
            check_and_prune(&mut bad, "io.k8s.api.core.v1.ConfigMap")
                .type_error
                .is_some()
        );
    }

    #[test]
    fn reports_type_errors_like_go() {
        let mut d = json!({"spec": {"replicas": "3"}});
        let rep = check_and_prune(&mut d, "io.k8s.api.apps.v1.Deployment");
        assert_eq!(
            rep.type_error.unwrap(),
            "json: cannot unmarshal string into Go struct field DeploymentSpec.spec.replicas of type int32"
        );
        let mut s = json!({"spec": {"ports": [{"port": 80, "targetPort": "http"}, {"port": 81, "targetPort": 8080}]}});
        assert!(
            check_and_prune(&mut s, "io.k8s.api.core.v1.Service")
                .type_error
                .is_none()
        );
    }
}
