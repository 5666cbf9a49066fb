//! Request attributes from a request's method, path and query, the way kube-apiserver derives them
//! before it authorizes (its RequestInfo): a collection GET is `list` (or `watch` with `watch=true`), a
//! collection DELETE `deletecollection`, `namespaces/NAME` is in namespace NAME, and a list or watch
//! whose field selector pins `metadata.name` names that object.

use super::Attributes;
use crate::validation::names;

/// The attributes of a request. `query` is the decoded query (`key`, `value`) pairs.
pub fn attributes(method: &str, path: &str, query: &[(String, String)]) -> Attributes {
    let parts: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    let non_resource = || Attributes::non_resource(&method.to_ascii_lowercase(), path);
    let (group, rest) = match parts.as_slice() {
        ["api", _version, rest @ ..] if !rest.is_empty() => ("", &parts[1..]),
        ["apis", group, _version, rest @ ..] if !rest.is_empty() => (*group, &parts[2..]),
        _ => return non_resource(),
    };
    let version = rest[0];
    let mut parts = &rest[1..];
    let mut verb = match method {
        "POST" => "create",
        "GET" | "HEAD" => "get",
        "PUT" => "update",
        "PATCH" => "patch",
        "DELETE" => "delete",
        _ => "",
    }
    .to_string();
    let mut namespace = String::new();
    if parts[0] == "namespaces" && parts.len() > 1 {
        namespace = parts[1].to_string();
        if parts.len() > 2 && !matches!(parts[2], "status" | "finalize") {
            parts = &parts[2..];
        }
    }
    let at = |i: usize| parts.get(i).copied().unwrap_or_default().to_string();
    let (resource, mut name, subresource) = (at(0), at(1), at(2));
    // The first occurrence of a key, with the truth values the handlers accept: the attributes must
    // describe exactly what will be served (`?fieldSelector=&fieldSelector=metadata.name=x` is the
    // whole collection to the list handler, so it must not be authorized as a list of `x`).
    let get = |k: &str| {
        query
            .iter()
            .find(|(key, _)| key == k)
            .map(|(_, v)| v.as_str())
    };
    if name.is_empty() && verb == "get" {
        verb = if matches!(get("watch"), Some("true" | "1" | "True")) {
            "watch".into()
        } else {
            "list".into()
        };
        if let Some(n) = get("fieldSelector").and_then(exact_name)
            && names::path_segment(n).is_empty()
        {
            name = n.to_string();
        }
    }
    if name.is_empty() && verb == "delete" {
        verb = "deletecollection".into();
    }
    Attributes {
        verb,
        resource_request: true,
        api_group: group.to_string(),
        api_version: version.to_string(),
        resource,
        subresource,
        namespace,
        name,
        path: path.to_string(),
    }
}

/// `metadata.name=NAME` (or `==`) as the whole field selector.
fn exact_name(selector: &str) -> Option<&str> {
    let s = selector.trim();
    if s.contains(',') {
        return None;
    }
    let v = s
        .strip_prefix("metadata.name==")
        .or_else(|| s.strip_prefix("metadata.name="))?;
    (!v.is_empty()).then_some(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn derives_verbs_resources_and_scopes() {
        // (method, path, query) -> (verb, group, resource, subresource, namespace, name)
        type Case<'a> = (&'a str, &'a str, Vec<(String, String)>, [&'a str; 6]);
        let cases: Vec<Case> = vec![
            (
                "GET",
                "/api/v1/namespaces/default/pods",
                q(&[]),
                ["list", "", "pods", "", "default", ""],
            ),
            (
                "GET",
                "/api/v1/namespaces/default/pods",
                q(&[("watch", "true")]),
                ["watch", "", "pods", "", "default", ""],
            ),
            (
                "GET",
                "/api/v1/namespaces/default/pods",
                q(&[("watch", "true"), ("fieldSelector", "metadata.name=web")]),
                ["watch", "", "pods", "", "default", "web"],
            ),
            (
                "GET",
                "/api/v1/pods",
                q(&[]),
                ["list", "", "pods", "", "", ""],
            ),
            (
                "GET",
                "/api/v1/namespaces/default/pods/web",
                q(&[]),
                ["get", "", "pods", "", "default", "web"],
            ),
            (
                "GET",
                "/api/v1/namespaces/default/pods/web/log",
                q(&[]),
                ["get", "", "pods", "log", "default", "web"],
            ),
            (
                "POST",
                "/api/v1/namespaces/default/pods/web/exec",
                q(&[]),
                ["create", "", "pods", "exec", "default", "web"],
            ),
            (
                "POST",
                "/api/v1/namespaces/kube-system/serviceaccounts/dns/token",
                q(&[]),
                [
                    "create",
                    "",
                    "serviceaccounts",
                    "token",
                    "kube-system",
                    "dns",
                ],
            ),
            (
                "DELETE",
                "/apis/apps/v1/namespaces/x/deployments",
                q(&[]),
                ["deletecollection", "apps", "deployments", "", "x", ""],
            ),
            (
                "DELETE",
                "/apis/apps/v1/namespaces/x/deployments/d",
                q(&[]),
                ["delete", "apps", "deployments", "", "x", "d"],
            ),
            (
                "PATCH",
                "/apis/apps/v1/namespaces/x/deployments/d/scale",
                q(&[]),
                ["patch", "apps", "deployments", "scale", "x", "d"],
            ),
            (
                "PUT",
                "/api/v1/nodes/n1/status",
                q(&[]),
                ["update", "", "nodes", "status", "", "n1"],
            ),
            (
                "GET",
                "/api/v1/namespaces/team",
                q(&[]),
                ["get", "", "namespaces", "", "team", "team"],
            ),
            (
                "PUT",
                "/api/v1/namespaces/team/finalize",
                q(&[]),
                ["update", "", "namespaces", "finalize", "team", "team"],
            ),
            (
                "GET",
                "/api/v1/namespaces",
                q(&[]),
                ["list", "", "namespaces", "", "", ""],
            ),
            (
                "POST",
                "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews",
                q(&[]),
                [
                    "create",
                    "authorization.k8s.io",
                    "selfsubjectaccessreviews",
                    "",
                    "",
                    "",
                ],
            ),
        ];
        for (method, path, query, want) in cases {
            let a = attributes(method, path, &query);
            assert!(a.resource_request, "{path}");
            assert_eq!(
                [
                    a.verb.as_str(),
                    &a.api_group,
                    &a.resource,
                    &a.subresource,
                    &a.namespace,
                    &a.name
                ],
                want,
                "{method} {path} {query:?}"
            );
        }
    }

    /// A repeated key is read as the handlers read it (the first one): a list whose second field
    /// selector names one Secret serves the whole collection, so it is authorized as such; `True` is a
    /// watch to the handler, so it is one here.
    #[test]
    fn repeated_keys_are_read_as_the_handlers_read_them() {
        let a = attributes(
            "GET",
            "/api/v1/namespaces/prod/secrets",
            &q(&[
                ("fieldSelector", ""),
                ("fieldSelector", "metadata.name=app-tls"),
            ]),
        );
        assert_eq!((a.verb.as_str(), a.name.as_str()), ("list", ""));
        let a = attributes(
            "GET",
            "/api/v1/namespaces/prod/secrets",
            &q(&[
                ("fieldSelector", "metadata.name=app-tls"),
                ("fieldSelector", ""),
            ]),
        );
        assert_eq!((a.verb.as_str(), a.name.as_str()), ("list", "app-tls"));
        let a = attributes("GET", "/api/v1/pods", &q(&[("watch", "True")]));
        assert_eq!(a.verb, "watch");
        let a = attributes(
            "GET",
            "/api/v1/pods",
            &q(&[("watch", "0"), ("watch", "true")]),
        );
        assert_eq!(a.verb, "list");
    }

    #[test]
    fn discovery_and_other_paths_are_not_resources() {
        for path in [
            "/api",
            "/api/v1",
            "/apis",
            "/apis/apps",
            "/apis/apps/v1",
            "/version",
            "/openapi/v3/api/v1",
            "/metrics",
        ] {
            let a = attributes("GET", path, &[]);
            assert!(!a.resource_request, "{path}");
            assert_eq!((a.verb.as_str(), a.path.as_str()), ("get", path));
        }
    }
}
