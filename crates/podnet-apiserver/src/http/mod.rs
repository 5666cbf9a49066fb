//! The HTTP surface: authentication, routing, negotiation, and the handlers.

mod access;
mod crud;
mod meta;
pub mod negotiate;
mod portforward;
pub mod query;
mod render;
pub mod respond;
pub mod route;
mod stream;
mod watch;

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{Method, header};
use bytes::Bytes;
use http_body_util::BodyExt;
use podnet_apimachinery::{ApiError, rbac};

use crate::auth::{Authenticator, UserInfo};
use crate::authz;
use crate::registry::Api;
use query::Query;
use respond::Resp;
use route::{Route, route};

/// Shared by every request.
pub struct AppState {
    pub api: Arc<Api>,
    pub auth: Authenticator,
    pub openapi: meta::OpenApiCache,
}

impl AppState {
    pub fn new(api: Arc<Api>, auth: Authenticator) -> Arc<AppState> {
        Arc::new(AppState {
            api,
            auth,
            openapi: meta::OpenApiCache::default(),
        })
    }
}

/// The router: one handler for everything (Kubernetes paths are data, not a fixed route table).
pub fn router(state: Arc<AppState>) -> Router {
    Router::new().fallback(handle).with_state(state)
}

fn authenticate(st: &AppState, headers: &header::HeaderMap) -> Option<UserInfo> {
    let v = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())?;
    let t = v
        .strip_prefix("Bearer ")
        .or_else(|| v.strip_prefix("bearer "))?;
    st.auth.authenticate(&st.api, t.trim())
}

async fn handle(State(st): State<Arc<AppState>>, req: Request) -> Resp {
    let (mut parts, body) = req.into_parts();
    let route = route(parts.uri.path());
    let q = Query::parse(parts.uri.query());
    // /version and the health checks are public (system:public-info-viewer grants them to everyone)
    if !matches!(route, Route::Version | Route::Health) {
        let Some(user) = authenticate(&st, &parts.headers) else {
            return respond::error(&ApiError::unauthorized());
        };
        let attrs = rbac::request::attributes(parts.method.as_str(), parts.uri.path(), &q.0);
        let decision = authz::authorize(&st.api, &user, &attrs);
        if !decision.allowed() {
            return respond::error(&authz::forbidden(&user.username, &attrs, decision.reason()));
        }
        // exec, attach and port-forward over a websocket come as a GET, yet start a process or open a
        // port: they also need `create`, as kube-apiserver requires since 1.31 (a role granting
        // `get` on `pods/*` must not run commands in pods)
        if attrs.resource_request
            && attrs.verb == "get"
            && attrs.api_group.is_empty()
            && attrs.resource == "pods"
            && matches!(
                attrs.subresource.as_str(),
                "exec" | "attach" | "portforward"
            )
        {
            let create = rbac::Attributes {
                verb: "create".into(),
                ..attrs.clone()
            };
            let decision = authz::authorize(&st.api, &user, &create);
            if !decision.allowed() {
                return respond::error(&authz::forbidden(
                    &user.username,
                    &create,
                    decision.reason(),
                ));
            }
        }
        parts.extensions.insert(user);
    }
    let res = match route {
        Route::Version
        | Route::Health
        | Route::Api
        | Route::Apis
        | Route::ApiGroup(_)
        | Route::GroupVersion(..)
        | Route::OpenApiV3Index
        | Route::OpenApiV3(_) => {
            if parts.method != Method::GET && parts.method != Method::HEAD {
                Err(ApiError::method_not_allowed())
            } else {
                meta::handle(&st, route, &parts.headers, &q)
            }
        }
        Route::NotFound => Err(ApiError::path_not_found()),
        Route::Resource(p) => crud::dispatch(&st, p, &mut parts, body, q).await,
    };
    res.unwrap_or_else(|e| respond::error(&e))
}

/// Reads a request body up to `limit` bytes (413 beyond). An oversized body is read and discarded
/// (up to a bound) before answering, so that an HTTP/1.1 client still writing it gets the 413 instead of
/// a broken pipe.
pub(crate) async fn read_body(
    headers: &header::HeaderMap,
    body: Body,
    limit: usize,
) -> Result<Bytes, ApiError> {
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|len| len > limit) {
        drain(body, limit.saturating_mul(8)).await;
        return Err(ApiError::too_large(limit));
    }
    let mut body = body;
    let mut buf = bytes::BytesMut::new();
    while let Some(frame) = body.frame().await {
        let frame =
            frame.map_err(|e| ApiError::bad_request(format!("reading the request body: {e}")))?;
        if let Ok(data) = frame.into_data() {
            if buf.len() + data.len() > limit {
                drain(body, limit.saturating_mul(8)).await;
                return Err(ApiError::too_large(limit));
            }
            buf.extend_from_slice(&data);
        }
    }
    Ok(buf.freeze())
}

async fn drain(mut body: Body, max: usize) {
    let mut seen = 0usize;
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
    while seen < max {
        match tokio::time::timeout_at(deadline, body.frame()).await {
            Ok(Some(Ok(f))) => seen += f.data_ref().map_or(0, |d| d.len()),
            _ => return,
        }
    }
}
