//! `/version`, health, discovery and OpenAPI.

use std::collections::HashMap;
use std::sync::OnceLock;

use axum::http::{HeaderMap, HeaderValue, header};
use podnet_apimachinery::{ApiError, discovery, openapi};
use serde_json::json;

use super::query::Query;
use super::respond::{self, Resp};
use super::route::Route;

/// OpenAPI documents are generated once and served from memory; the hash in the index changes only
/// when the document does.
#[derive(Default)]
pub struct OpenApiCache {
    docs: OnceLock<HashMap<String, (Vec<u8>, String)>>,
}

impl OpenApiCache {
    fn docs(&self) -> &HashMap<String, (Vec<u8>, String)> {
        self.docs.get_or_init(|| {
            openapi::group_versions()
                .into_iter()
                .filter_map(|(key, _, _)| {
                    let doc = openapi::group_version_doc(&key)?;
                    let bytes = serde_json::to_vec(&doc).ok()?;
                    let h1 = crate::util::fnv32(&bytes);
                    let h2 = crate::util::fnv32(&[&bytes[..], b"podnet"].concat());
                    Some((key, (bytes, format!("{h1:08X}{h2:08X}"))))
                })
                .collect()
        })
    }
}

fn version() -> serde_json::Value {
    json!({
        "major": "1",
        "minor": "35",
        "emulationMajor": "1",
        "emulationMinor": "35",
        "minCompatibilityMajor": "1",
        "minCompatibilityMinor": "34",
        "gitVersion": openapi::KUBE_VERSION,
        "gitCommit": "podnet",
        "gitTreeState": "clean",
        "buildDate": "2026-01-01T00:00:00Z",
        "goVersion": "go1.25.0",
        "compiler": "gc",
        "platform": "linux/amd64",
    })
}

fn wants_aggregated(headers: &HeaderMap) -> Option<&'static str> {
    let accept = headers.get(header::ACCEPT)?.to_str().ok()?;
    for part in accept.split(',') {
        if part.contains("as=APIGroupDiscoveryList") && part.contains("g=apidiscovery.k8s.io") {
            if part.contains("v=v2beta1") {
                return Some("v2beta1");
            }
            if part.contains("v=v2") {
                return Some("v2");
            }
        }
    }
    None
}

pub fn handle(
    st: &super::AppState,
    route: Route,
    headers: &HeaderMap,
    q: &Query,
) -> Result<Resp, ApiError> {
    Ok(match route {
        Route::Version => respond::json(200, &version()),
        Route::Health => respond::text(200, "ok"),
        Route::Api | Route::Apis => {
            let legacy = route == Route::Api;
            match wants_aggregated(headers) {
                Some(v) => {
                    let doc = discovery::aggregated(legacy, &format!("apidiscovery.k8s.io/{v}"));
                    let mut r = respond::json(200, &doc);
                    let ct = if v == "v2" {
                        discovery::AGGREGATED_V2
                    } else {
                        discovery::AGGREGATED_V2BETA1
                    };
                    r.headers_mut()
                        .insert(header::CONTENT_TYPE, HeaderValue::from_static(ct));
                    r
                }
                None if legacy => respond::json(
                    200,
                    &discovery::api_versions(&format!(
                        "{}:{}",
                        st.api.cfg.advertise_address, st.api.cfg.advertise_port
                    )),
                ),
                None => respond::json(200, &discovery::api_group_list()),
            }
        }
        Route::ApiGroup(g) => respond::json(
            200,
            &discovery::api_group_doc(&g).ok_or_else(ApiError::path_not_found)?,
        ),
        Route::GroupVersion(g, v) => respond::json(
            200,
            &discovery::api_resource_list(&g, &v).ok_or_else(ApiError::path_not_found)?,
        ),
        Route::OpenApiV3Index => {
            let docs = st.openapi.docs();
            respond::json(
                200,
                &openapi::index(|k| docs.get(k).map(|(_, h)| h.clone()).unwrap_or_default()),
            )
        }
        Route::OpenApiV3(key) => {
            let (bytes, hash) = st
                .openapi
                .docs()
                .get(&key)
                .ok_or_else(ApiError::path_not_found)?;
            openapi_doc(&key, bytes, hash, headers, q)
        }
        _ => return Err(ApiError::path_not_found()),
    })
}

/// One group-version's OpenAPI document, cacheable as kube-apiserver serves it: the index links each
/// document with `?hash=`; asked with the current hash it is immutable (so kubectl's HTTP cache
/// answers the next `kubectl apply` from disk), asked with an old one it redirects to the current
/// URL, and its ETag answers `If-None-Match` with 304.
fn openapi_doc(key: &str, bytes: &[u8], hash: &str, headers: &HeaderMap, q: &Query) -> Resp {
    let etag = format!("\"{hash}\"");
    let mut r = match q.get("hash") {
        Some(asked) if asked != hash => {
            let mut r = respond::text(301, "");
            if let Ok(to) = HeaderValue::from_str(&format!("/openapi/v3/{key}?hash={hash}")) {
                r.headers_mut().insert(header::LOCATION, to);
            }
            return r;
        }
        _ if headers
            .get(header::IF_NONE_MATCH)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.split(',').any(|t| t.trim() == etag || t.trim() == "*")) =>
        {
            respond::text(304, "")
        }
        _ => respond::json_bytes(200, bytes.to_vec()),
    };
    let h = r.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&etag) {
        h.insert(header::ETAG, v);
    }
    h.insert(header::VARY, HeaderValue::from_static("Accept"));
    if q.get("hash").is_some() {
        h.insert(
            header::CACHE_CONTROL,
            HeaderValue::from_static("public, immutable"),
        );
        let year = jiff::Timestamp::now() + jiff::SignedDuration::from_hours(365 * 24);
        if let Ok(v) =
            HeaderValue::from_str(&year.strftime("%a, %d %b %Y %H:%M:%S GMT").to_string())
        {
            h.insert(header::EXPIRES, v);
        }
    }
    r
}
