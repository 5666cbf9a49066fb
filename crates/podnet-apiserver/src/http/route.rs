//! URL paths -> what they address.

use podnet_apimachinery::resources::{self, ResourceDef};

/// A resource path: `/api/v1/namespaces/default/pods/web/log`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResPath {
    pub res: &'static ResourceDef,
    pub namespace: Option<String>,
    pub name: Option<String>,
    pub sub: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    Version,
    Health,
    Api,
    Apis,
    ApiGroup(String),
    GroupVersion(String, String),
    OpenApiV3Index,
    OpenApiV3(String),
    Resource(ResPath),
    NotFound,
}

pub fn route(path: &str) -> Route {
    let segs: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    match segs.as_slice() {
        ["version"] => Route::Version,
        ["healthz"] | ["livez"] | ["readyz"] => Route::Health,
        ["healthz" | "livez" | "readyz", _] => Route::Health,
        ["api"] => Route::Api,
        ["apis"] => Route::Apis,
        ["openapi", "v3"] => Route::OpenApiV3Index,
        ["openapi", "v3", rest @ ..] => Route::OpenApiV3(rest.join("/")),
        ["api", v, rest @ ..] => gv_route("", v, rest),
        ["apis", g] => Route::ApiGroup(g.to_string()),
        ["apis", g, v, rest @ ..] => gv_route(g, v, rest),
        _ => Route::NotFound,
    }
}

fn gv_route(group: &str, version: &str, rest: &[&str]) -> Route {
    if !resources::serves_group_version(group, version) {
        return Route::NotFound;
    }
    let find = |plural: &str| resources::find(group, version, plural);
    let path = |res, namespace: Option<&str>, name: Option<&str>, sub: Option<&str>| {
        Route::Resource(ResPath {
            res,
            namespace: namespace.map(String::from),
            name: name.map(String::from),
            sub: sub.map(String::from),
        })
    };
    match rest {
        [] => Route::GroupVersion(group.to_string(), version.to_string()),
        ["namespaces", ns, plural, more @ ..] if find(plural).is_some_and(|r| r.namespaced) => {
            let r = find(plural).expect("checked");
            match more {
                [] => path(r, Some(ns), None, None),
                [name] => path(r, Some(ns), Some(name), None),
                [name, sub] if r.subresource(sub).is_some() => {
                    path(r, Some(ns), Some(name), Some(sub))
                }
                _ => Route::NotFound,
            }
        }
        [plural] => match find(plural) {
            Some(r) => path(r, None, None, None),
            None => Route::NotFound,
        },
        [plural, name] => match find(plural) {
            Some(r) if !r.namespaced => path(r, None, Some(name), None),
            _ => Route::NotFound,
        },
        [plural, name, sub] => match find(plural) {
            Some(r) if !r.namespaced && r.subresource(sub).is_some() => {
                path(r, None, Some(name), Some(sub))
            }
            _ => Route::NotFound,
        },
        _ => Route::NotFound,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn res(p: &str) -> ResPath {
        match route(p) {
            Route::Resource(r) => r,
            other => panic!("{p}: {other:?}"),
        }
    }

    #[test]
    fn routes() {
        let r = res("/api/v1/namespaces/default/pods/web/log");
        assert_eq!(
            (
                r.res.plural,
                r.namespace.as_deref(),
                r.name.as_deref(),
                r.sub.as_deref()
            ),
            ("pods", Some("default"), Some("web"), Some("log"))
        );
        let r = res("/api/v1/namespaces/lab");
        assert_eq!(
            (r.res.plural, r.namespace, r.name.as_deref()),
            ("namespaces", None, Some("lab"))
        );
        let r = res("/api/v1/namespaces/lab/finalize");
        assert_eq!(r.sub.as_deref(), Some("finalize"));
        let r = res("/api/v1/pods");
        assert_eq!((r.res.plural, r.namespace, r.name), ("pods", None, None));
        let r = res("/apis/apps/v1/namespaces/default/deployments/nginx/scale");
        assert_eq!(r.sub.as_deref(), Some("scale"));
        assert_eq!(route("/api/v1/pods/web"), Route::NotFound);
        assert_eq!(res("/apis/batch/v1/jobs").res.plural, "jobs");
        assert_eq!(route("/apis/example.com/v1/widgets"), Route::NotFound);
        assert_eq!(
            route("/api/v1/namespaces/default/pods/web/nope"),
            Route::NotFound
        );
        assert_eq!(
            route("/api/v1"),
            Route::GroupVersion("".into(), "v1".into())
        );
        assert_eq!(
            route("/openapi/v3/apis/apps/v1"),
            Route::OpenApiV3("apis/apps/v1".into())
        );
    }
}
