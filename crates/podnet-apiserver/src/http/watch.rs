//! Watch and watch-list: `{"type":...,"object":...}` lines over a chunked response.
//!
//! - no resourceVersion (or "0"): synthetic ADDED events for the current state, then live events;
//! - resourceVersion R: events after R from the store's window (410 Gone when R is older);
//! - watch-list (`sendInitialEvents=true&resourceVersionMatch=NotOlderThan&allowWatchBookmarks=true`):
//!   ADDED for the current state, a BOOKMARK annotated `k8s.io/initial-events-end: "true"`, then live;
//! - label/field selectors turn MODIFIED into ADDED/DELETED when an object starts/stops matching;
//! - BOOKMARKs every [`BOOKMARK_EVERY`] when allowed; the stream ends after `timeoutSeconds`.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use podnet_apimachinery::resources::ResourceDef;
use podnet_apimachinery::selector::fields::FieldRequirement;
use podnet_apimachinery::selector::{FieldSelector, LabelSelector};
use podnet_apimachinery::table::IncludeObject;
use podnet_apimachinery::{ApiError, FieldError, object};
use podnet_apistore::{EventType, StoreError};
use serde_json::{Value, json};
use tokio::sync::mpsc;

use super::negotiate::{self, Format};
use super::query::Query;
use super::respond::{self, Resp};
use super::{AppState, render};
use crate::registry::store_resource;

/// How often an idle watch that allows bookmarks gets one.
pub const BOOKMARK_EVERY: Duration = Duration::from_secs(15);

struct Filter {
    labels: LabelSelector,
    fields: FieldSelector,
}

impl Filter {
    fn trivial(&self) -> bool {
        self.labels.is_empty() && self.fields.is_empty()
    }
    fn matches(&self, v: &Value) -> bool {
        self.labels.matches(object::labels(v)) && self.fields.matches(v)
    }
}

struct Encoder {
    r: &'static ResourceDef,
    format: Format,
    include: IncludeObject,
}

impl Encoder {
    fn line(&self, ty: &str, bytes: &[u8]) -> Bytes {
        let mut out = Vec::with_capacity(bytes.len() + 32);
        out.extend_from_slice(b"{\"type\":\"");
        out.extend_from_slice(ty.as_bytes());
        out.extend_from_slice(b"\",\"object\":");
        match self.format {
            Format::Json | Format::Yaml => out.extend_from_slice(bytes),
            _ => out.extend_from_slice(
                &serde_json::to_vec(&render::event_object(
                    self.r,
                    self.format,
                    bytes,
                    self.include,
                ))
                .unwrap_or_default(),
            ),
        }
        out.extend_from_slice(b"}\n");
        Bytes::from(out)
    }

    fn bookmark(&self, rv: u64, initial_end: bool) -> Bytes {
        let mut meta = json!({"resourceVersion": rv.to_string()});
        if initial_end {
            meta["annotations"] = json!({"k8s.io/initial-events-end": "true"});
        }
        let obj =
            json!({"kind": self.r.kind, "apiVersion": self.r.api_version(), "metadata": meta});
        let mut line =
            serde_json::to_vec(&json!({"type": "BOOKMARK", "object": obj})).unwrap_or_default();
        line.push(b'\n');
        Bytes::from(line)
    }

    fn error(&self, e: &ApiError) -> Bytes {
        let mut line = serde_json::to_vec(&json!({"type": "ERROR", "object": e.to_status()}))
            .unwrap_or_default();
        line.push(b'\n');
        Bytes::from(line)
    }
}

pub async fn serve(
    st: &Arc<AppState>,
    r: &'static ResourceDef,
    ns: Option<String>,
    name: Option<String>,
    q: &Query,
    accept: Option<&str>,
) -> Result<Resp, ApiError> {
    let format = negotiate::response_format(accept, true)?;
    let include = IncludeObject::parse(q.get("includeObject")).map_err(ApiError::bad_request)?;
    let labels = LabelSelector::parse(q.get("labelSelector").unwrap_or(""))
        .map_err(|e| ApiError::bad_request(e.0))?;
    let mut fields = FieldSelector::parse(q.get("fieldSelector").unwrap_or(""), r.kind)
        .map_err(|e| ApiError::bad_request(e.0))?;
    if let Some(n) = name {
        fields.requirements.push(FieldRequirement {
            field: "metadata.name".into(),
            value: n,
            equals: true,
        });
    }
    let send_initial = match q.get("sendInitialEvents") {
        None | Some("") => None,
        Some("true") | Some("1") => Some(true),
        Some(_) => Some(false),
    };
    let rv_match = q.get("resourceVersionMatch").filter(|s| !s.is_empty());
    let bookmarks = q.flag("allowWatchBookmarks");
    let invalid = |e: FieldError| ApiError::invalid("ListOptions", "meta.k8s.io", "", &[e]);
    if send_initial.is_some() {
        if rv_match != Some("NotOlderThan") {
            return Err(invalid(FieldError::forbidden(
                "resourceVersionMatch",
                "sendInitialEvents requires setting resourceVersionMatch to NotOlderThan",
            )));
        }
        if send_initial == Some(true) && !bookmarks {
            return Err(invalid(FieldError::forbidden(
                "allowWatchBookmarks",
                "sendInitialEvents requires setting allowWatchBookmarks to true",
            )));
        }
    } else if rv_match.is_some() {
        return Err(invalid(FieldError::forbidden(
            "resourceVersionMatch",
            "resourceVersionMatch is forbidden for watch unless sendInitialEvents is provided",
        )));
    }
    // timeoutSeconds, else the request's own `timeout` (a Go duration, as kubectl --request-timeout sends)
    let timeout = match q.int("timeoutSeconds")?.filter(|t| *t > 0) {
        Some(t) => Duration::from_secs(t.min(24 * 3600) as u64),
        None => match q.get("timeout").filter(|s| !s.is_empty()) {
            Some(t) => Duration::from_millis(
                crate::util::parse_go_duration_ms(t)
                    .ok_or_else(|| ApiError::bad_request(format!("invalid timeout {t:?}")))?
                    .max(1),
            ),
            None => Duration::from_secs(1800),
        },
    };
    let rv_param = q.get("resourceVersion").filter(|s| !s.is_empty());
    let res = store_resource(r);
    let ns_filter = if r.namespaced { ns } else { None };
    let store = &st.api.store;
    let no_rv = rv_param.is_none() || rv_param == Some("0");
    // sendInitialEvents=false without a version: the changes from now on, no synthetic ADDED
    let from_state = send_initial == Some(true) || (send_initial.is_none() && no_rv);
    let (initial, mut watcher, start_rv) = if from_state || no_rv {
        let (snap, rv, w) = store.snapshot_and_watch(&res, ns_filter.as_deref());
        (if from_state { snap } else { Vec::new() }, w, rv)
    } else {
        let raw = rv_param.expect("checked");
        let rv: u64 = raw.parse().map_err(|_| {
            ApiError::bad_request(format!(
                "resourceVersion: Invalid value: {raw:?}: must be a valid resource version"
            ))
        })?;
        if send_initial == Some(false) || rv <= store.current_rv() {
            let w = store
                .watch(&res, ns_filter.as_deref(), Some(rv))
                .map_err(|e| match e {
                    StoreError::Gone { requested, oldest } => {
                        ApiError::gone(format!("too old resource version: {requested} ({oldest})"))
                    }
                    other => ApiError::internal(other.to_string()),
                })?;
            (Vec::new(), w, rv)
        } else {
            // a resourceVersion from the future: start now
            let w = store
                .watch(&res, ns_filter.as_deref(), None)
                .map_err(|e| ApiError::internal(e.to_string()))?;
            (Vec::new(), w, store.current_rv())
        }
    };
    let filter = Filter { labels, fields };
    let enc = Encoder { r, format, include };
    let (tx, rx) = mpsc::channel::<Result<Bytes, Infallible>>(256);
    tokio::spawn(async move {
        let send = |b: Bytes| {
            let tx = tx.clone();
            async move { tx.send(Ok(b)).await.is_ok() }
        };
        for (_, e) in &initial {
            if !filter.trivial() {
                let Ok(v) = serde_json::from_slice::<Value>(&e.object) else {
                    continue;
                };
                if !filter.matches(&v) {
                    continue;
                }
            }
            if !send(enc.line("ADDED", &e.object)).await {
                return;
            }
        }
        if send_initial == Some(true) && !send(enc.bookmark(start_rv, true)).await {
            return;
        }
        let mut last_rv = start_rv;
        let deadline = tokio::time::sleep(timeout);
        tokio::pin!(deadline);
        let mut ticker = tokio::time::interval(BOOKMARK_EVERY);
        ticker.tick().await;
        loop {
            tokio::select! {
                ev = watcher.next() => match ev {
                    Ok(Some(ev)) => {
                        last_rv = ev.rv;
                        let ty = if filter.trivial() {
                            Some(ev.ty.as_str())
                        } else {
                            let cur = serde_json::from_slice::<Value>(&ev.object).ok().is_some_and(|v| filter.matches(&v));
                            let prev = ev.prev.as_ref().and_then(|p| serde_json::from_slice::<Value>(p).ok()).is_some_and(|v| filter.matches(&v));
                            match (ev.ty, prev, cur) {
                                (EventType::Added, _, true) => Some("ADDED"),
                                (EventType::Modified, true, true) => Some("MODIFIED"),
                                (EventType::Modified, false, true) => Some("ADDED"),
                                (EventType::Modified, true, false) => Some("DELETED"),
                                (EventType::Deleted, _, true) => Some("DELETED"),
                                _ => None,
                            }
                        };
                        if let Some(ty) = ty
                            && !send(enc.line(ty, &ev.object)).await {
                                return;
                            }
                    }
                    Ok(None) => return,
                    Err(_lagged) => {
                        let _ = send(enc.error(&ApiError::gone("too old resource version: the watch fell behind"))).await;
                        return;
                    }
                },
                _ = ticker.tick(), if bookmarks => {
                    if !send(enc.bookmark(last_rv, false)).await {
                        return;
                    }
                }
                _ = &mut deadline => return,
                _ = tx.closed() => return,
            }
        }
    });
    let body = axum::body::Body::from_stream(tokio_stream::wrappers::ReceiverStream::new(rx));
    Ok(respond::json_bytes(200, body))
}
