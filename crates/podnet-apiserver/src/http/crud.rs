//! The resource verbs: get, list, create, update, patch, delete, deletecollection, and the status,
//! scale, binding and finalize subresources. Watch, log and exec live in their own modules.

use std::sync::Arc;

use axum::body::Body;
use axum::http::request::Parts;
use axum::http::{Method, header};
use base64::Engine as _;
use podnet_apimachinery::patch::{self, PatchType, strategic};
use podnet_apimachinery::resources::{self, ResourceDef};
use podnet_apimachinery::selector::{FieldSelector, LabelSelector, labels};
use podnet_apimachinery::table::IncludeObject;
use podnet_apimachinery::{ApiError, FieldError, object, yaml};
use serde_json::{Value, json};

use super::negotiate::{self, Format};
use super::query::Query;
use super::respond::{self, Resp};
use super::route::ResPath;
use super::{AppState, access, read_body, render, stream, watch};
use crate::registry::{DeleteOptions, FieldValidation, WriteOptions, objref};

fn header(parts: &Parts, h: header::HeaderName) -> Option<&str> {
    parts.headers.get(h).and_then(|v| v.to_str().ok())
}

pub async fn dispatch(
    st: &Arc<AppState>,
    p: ResPath,
    parts: &mut Parts,
    body: Body,
    q: Query,
) -> Result<Resp, ApiError> {
    let r = p.res;
    let ns = p.namespace.clone().unwrap_or_default();
    let method = parts.method.clone();
    if r.namespaced && p.namespace.is_none() && (p.name.is_some() || method != Method::GET) {
        return Err(ApiError::method_not_allowed());
    }
    match (&method, p.name.clone(), p.sub.as_deref()) {
        (&Method::GET, None, None) if q.flag("watch") => {
            watch::serve(
                st,
                r,
                p.namespace.clone(),
                None,
                &q,
                header(parts, header::ACCEPT),
            )
            .await
        }
        (&Method::GET, None, None) => list(
            st,
            r,
            p.namespace.as_deref(),
            &q,
            header(parts, header::ACCEPT),
        ),
        (&Method::POST, None, None) if r.plural == "bindings" => {
            binding(st, &ns, None, parts, body).await
        }
        (&Method::POST, None, None) if r.plural == "selfsubjectreviews" => Ok(whoami(parts)),
        (&Method::POST, None, None) if r.plural == "selfsubjectaccessreviews" => {
            access::self_subject_access_review(st, parts, body).await
        }
        (&Method::POST, None, None) if r.plural == "selfsubjectrulesreviews" => {
            access::self_subject_rules_review(st, parts, body).await
        }
        (&Method::POST, None, None) if r.plural == "subjectaccessreviews" => {
            access::subject_access_review(st, parts, body, None).await
        }
        (&Method::POST, None, None) if r.plural == "localsubjectaccessreviews" => {
            access::subject_access_review(st, parts, body, Some(&ns)).await
        }
        (&Method::POST, None, None) if r.plural == "tokenreviews" => {
            token_review(st, parts, body).await
        }
        (&Method::POST, None, None) if r.has_verb("create") => {
            create(st, r, &ns, parts, body, &q).await
        }
        (&Method::DELETE, None, None) if r.has_verb("deletecollection") => {
            delete_collection(st, r, p.namespace.as_deref(), parts, body, &q).await
        }
        (&Method::GET, Some(name), None | Some("status" | "ephemeralcontainers"))
            if r.has_verb("get") =>
        {
            if q.flag("watch") {
                return watch::serve(
                    st,
                    r,
                    p.namespace.clone(),
                    Some(name),
                    &q,
                    header(parts, header::ACCEPT),
                )
                .await;
            }
            get(st, r, &ns, &name, &q, header(parts, header::ACCEPT))
        }
        (&Method::PUT, Some(name), None | Some("status" | "ephemeralcontainers"))
            if r.has_verb("update") =>
        {
            update(st, r, &ns, &name, parts, body, &q, p.sub.as_deref()).await
        }
        (&Method::PUT, Some(name), Some("finalize")) => finalize(st, r, &name, parts, body).await,
        (&Method::PATCH, Some(name), None | Some("status" | "ephemeralcontainers"))
            if r.has_verb("patch") =>
        {
            patch(st, r, &ns, &name, parts, body, &q, p.sub.as_deref()).await
        }
        (&Method::DELETE, Some(name), None) if r.has_verb("delete") => {
            delete(st, r, &ns, &name, parts, body, &q).await
        }
        (&Method::GET | &Method::PUT | &Method::PATCH, Some(name), Some("scale")) => {
            scale(st, r, &ns, &name, parts, body, &q).await
        }
        (&Method::POST, Some(name), Some("binding")) => {
            binding(st, &ns, Some(name), parts, body).await
        }
        (&Method::POST, Some(name), Some("token")) => token(st, &ns, &name, parts, body).await,
        (&Method::GET, Some(name), Some("log")) => stream::logs(st, &ns, &name, &q).await,
        (&Method::GET | &Method::POST, Some(name), Some("exec")) => {
            stream::exec(st, &ns, &name, parts, &q).await
        }
        (&Method::GET | &Method::POST, Some(name), Some("attach")) => {
            stream::attach(st, &ns, &name, parts, &q).await
        }
        (&Method::GET | &Method::POST, Some(name), Some("portforward")) => {
            stream::portforward(st, &ns, &name, parts).await
        }
        _ => Err(ApiError::method_not_allowed()),
    }
}

fn selectors(r: &ResourceDef, q: &Query) -> Result<(LabelSelector, FieldSelector), ApiError> {
    let l = LabelSelector::parse(q.get("labelSelector").unwrap_or(""))
        .map_err(|e| ApiError::bad_request(e.0))?;
    let f = FieldSelector::parse(q.get("fieldSelector").unwrap_or(""), r.kind)
        .map_err(|e| ApiError::bad_request(e.0))?;
    Ok((l, f))
}

fn include_object(q: &Query) -> Result<IncludeObject, ApiError> {
    IncludeObject::parse(q.get("includeObject")).map_err(ApiError::bad_request)
}

fn field_manager(parts: &Parts, q: &Query) -> Option<String> {
    match q.get("fieldManager").filter(|m| !m.is_empty()) {
        Some(m) => Some(m.to_string()),
        // like the API server: the user agent up to its first '/'
        None => header(parts, header::USER_AGENT)
            .map(|ua| ua.split('/').next().unwrap_or(ua).to_string())
            .filter(|s| !s.is_empty()),
    }
}

fn write_options(parts: &Parts, q: &Query, apply: bool) -> Result<WriteOptions, ApiError> {
    let dry_run = match q.get("dryRun") {
        None | Some("") => false,
        Some("All") => true,
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "dryRun: Unsupported value: {other:?}: supported values: \"All\""
            )));
        }
    };
    if let Some(m) = q.get("fieldManager")
        && (m.len() > 128 || m.chars().any(|c| c.is_control()))
    {
        return Err(ApiError::bad_request(
            "fieldManager: Invalid value: must be at most 128 printable characters",
        ));
    }
    let force = q.flag("force");
    if force && !apply {
        return Err(ApiError::bad_request(
            "force: Invalid value: force is only allowed for apply patches",
        ));
    }
    Ok(WriteOptions {
        field_manager: if apply {
            q.get("fieldManager")
                .filter(|m| !m.is_empty())
                .map(String::from)
        } else {
            field_manager(parts, q)
        },
        validation: FieldValidation::parse(q.get("fieldValidation"))?,
        dry_run,
        force,
        user: parts.extensions.get::<crate::auth::UserInfo>().cloned(),
    })
}

fn write_format(parts: &Parts) -> Result<Format, ApiError> {
    negotiate::response_format(header(parts, header::ACCEPT), false)
}

async fn body_value(
    st: &AppState,
    r: &ResourceDef,
    parts: &Parts,
    body: Body,
) -> Result<Value, ApiError> {
    let bt = negotiate::body_type(header(parts, header::CONTENT_TYPE))?;
    let bytes = read_body(&parts.headers, body, st.api.cfg.max_body_bytes).await?;
    negotiate::decode_body(bt, &bytes, r.kind, r.version)
}

/// A continue token: the resourceVersion of the first page and the last key served.
fn encode_continue(rv: u64, ns: &str, name: &str) -> String {
    let j = json!({"v": "meta.k8s.io/v1", "rv": rv, "start": format!("{ns}/{name}")});
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(j.to_string())
}

fn decode_continue(token: &str) -> Result<(String, String), ApiError> {
    let bad = || {
        ApiError::bad_request("continue key is not valid: the continue token could not be decoded")
    };
    let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(token)
        .map_err(|_| bad())?;
    let v: Value = serde_json::from_slice(&raw).map_err(|_| bad())?;
    let start = v.get("start").and_then(Value::as_str).ok_or_else(bad)?;
    let (ns, name) = start.split_once('/').ok_or_else(bad)?;
    Ok((ns.to_string(), name.to_string()))
}

pub fn list(
    st: &AppState,
    r: &'static ResourceDef,
    ns: Option<&str>,
    q: &Query,
    accept: Option<&str>,
) -> Result<Resp, ApiError> {
    let format = negotiate::response_format(accept, true)?;
    let include = include_object(q)?;
    let (l, f) = selectors(r, q)?;
    if let Some(rv) = q.get("resourceVersion").filter(|s| !s.is_empty()) {
        rv.parse::<u64>().map_err(|_| {
            ApiError::bad_request(format!(
                "resourceVersion: Invalid value: {rv:?}: must be a valid resource version"
            ))
        })?;
    }
    let limit = q.int("limit")?.filter(|l| *l > 0).map(|l| l as usize);
    let (mut items, rv) = st.api.list(r, ns, &l, &f);
    if let Some(token) = q.get("continue").filter(|s| !s.is_empty()) {
        let (cns, cname) = decode_continue(token)?;
        items.retain(|i| (i.namespace.as_str(), i.name.as_str()) > (cns.as_str(), cname.as_str()));
    }
    let (cont, remaining) = match limit {
        Some(n) if items.len() > n => {
            let rest = items.len() - n;
            items.truncate(n);
            let last = items.last().expect("n > 0");
            (
                Some(encode_continue(rv, &last.namespace, &last.name)),
                Some(rest),
            )
        }
        _ => (None, None),
    };
    Ok(render::list(
        r,
        format,
        &items,
        rv,
        cont.as_deref(),
        remaining,
        include,
    ))
}

fn get(
    st: &AppState,
    r: &'static ResourceDef,
    ns: &str,
    name: &str,
    q: &Query,
    accept: Option<&str>,
) -> Result<Resp, ApiError> {
    let format = negotiate::response_format(accept, true)?;
    let include = include_object(q)?;
    let e = st.api.get_entry(r, ns, name)?;
    Ok(render::one(r, format, &e.object, include))
}

async fn create(
    st: &AppState,
    r: &'static ResourceDef,
    ns: &str,
    parts: &Parts,
    body: Body,
    q: &Query,
) -> Result<Resp, ApiError> {
    let opts = write_options(parts, q, false)?;
    let format = write_format(parts)?;
    let obj = body_value(st, r, parts, body).await?;
    let out = st.api.create(r, ns, obj, &opts).await?;
    Ok(respond::with_warnings(
        respond::object(201, format, &out.object),
        &out.warnings,
    ))
}

#[allow(clippy::too_many_arguments)]
async fn update(
    st: &AppState,
    r: &'static ResourceDef,
    ns: &str,
    name: &str,
    parts: &Parts,
    body: Body,
    q: &Query,
    sub: Option<&str>,
) -> Result<Resp, ApiError> {
    let opts = write_options(parts, q, false)?;
    let format = write_format(parts)?;
    let obj = body_value(st, r, parts, body).await?;
    let out = st.api.update(r, ns, name, obj, &opts, sub).await?;
    Ok(respond::with_warnings(
        respond::object(200, format, &out.object),
        &out.warnings,
    ))
}

#[allow(clippy::too_many_arguments)]
async fn patch(
    st: &AppState,
    r: &'static ResourceDef,
    ns: &str,
    name: &str,
    parts: &Parts,
    body: Body,
    q: &Query,
    sub: Option<&str>,
) -> Result<Resp, ApiError> {
    let ct = header(parts, header::CONTENT_TYPE).unwrap_or("");
    let pt = PatchType::from_content_type(ct).ok_or_else(|| ApiError::unsupported_patch(ct))?;
    let opts = write_options(parts, q, pt == PatchType::Apply)?;
    let format = write_format(parts)?;
    let bytes = read_body(&parts.headers, body, st.api.cfg.max_body_bytes).await?;
    let value = parse_patch(pt, &bytes)?;
    let out = st.api.patch(r, ns, name, pt, value, &opts, sub).await?;
    Ok(respond::with_warnings(
        respond::object(if out.created { 201 } else { 200 }, format, &out.object),
        &out.warnings,
    ))
}

fn parse_patch(pt: PatchType, bytes: &[u8]) -> Result<Value, ApiError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::bad_request("the body of the request was empty"));
    }
    match pt {
        PatchType::Apply => yaml::from_slice(bytes)
            .map_err(|e| ApiError::bad_request(format!("error decoding YAML: {}", e.0))),
        _ => serde_json::from_slice(bytes)
            .map_err(|e| ApiError::bad_request(format!("error decoding patch: {e}"))),
    }
}

async fn delete_options(
    st: &AppState,
    parts: &Parts,
    body: Body,
    q: &Query,
) -> Result<DeleteOptions, ApiError> {
    let bytes = read_body(&parts.headers, body, st.api.cfg.max_body_bytes).await?;
    let mut opts = if bytes.iter().all(u8::is_ascii_whitespace) {
        DeleteOptions::default()
    } else {
        let bt = negotiate::body_type(header(parts, header::CONTENT_TYPE))?;
        let v = negotiate::decode_body(bt, &bytes, "DeleteOptions", "v1")?;
        DeleteOptions::from_value(&v)?
    };
    if let Some(g) = q.int("gracePeriodSeconds")? {
        opts.grace_period = Some(g);
    }
    if let Some(p) = q.get("propagationPolicy").filter(|s| !s.is_empty()) {
        opts.propagation = Some(p.to_string());
    }
    if let Some(o) = q.get("orphanDependents").filter(|s| !s.is_empty()) {
        opts.orphan_dependents = Some(o == "true");
    }
    if q.get("dryRun") == Some("All") {
        opts.dry_run = true;
    }
    opts.check()?;
    Ok(opts)
}

async fn delete(
    st: &AppState,
    r: &'static ResourceDef,
    ns: &str,
    name: &str,
    parts: &Parts,
    body: Body,
    q: &Query,
) -> Result<Resp, ApiError> {
    let format = write_format(parts)?;
    let opts = delete_options(st, parts, body, q).await?;
    let out = st.api.delete(r, ns, name, &opts).await?;
    Ok(respond::object(200, format, &out.object))
}

async fn delete_collection(
    st: &AppState,
    r: &'static ResourceDef,
    ns: Option<&str>,
    parts: &Parts,
    body: Body,
    q: &Query,
) -> Result<Resp, ApiError> {
    let format = write_format(parts)?;
    let (l, f) = selectors(r, q)?;
    let opts = delete_options(st, parts, body, q).await?;
    let (items, _) = st.api.list(r, ns, &l, &f);
    let mut deleted = Vec::new();
    for i in items {
        match st.api.delete(r, &i.namespace, &i.name, &opts).await {
            Ok(o) => deleted.push(crate::registry::ListItem {
                namespace: i.namespace,
                name: i.name,
                bytes: o.object,
                value: None,
            }),
            Err(e) if e.reason == "NotFound" => {}
            Err(e) => return Err(e),
        }
    }
    let rv = st.api.store.current_rv();
    Ok(render::list(
        r,
        format,
        &deleted,
        rv,
        None,
        None,
        IncludeObject::Metadata,
    ))
}

/// `POST .../pods/{name}/binding` and `POST .../bindings`: assigns a pod to a node.
async fn binding(
    st: &AppState,
    ns: &str,
    name: Option<String>,
    parts: &Parts,
    body: Body,
) -> Result<Resp, ApiError> {
    let bdef = resources::find("", "v1", "bindings").expect("bindings are served");
    let pods = resources::find("", "v1", "pods").expect("pods are served");
    let b = body_value(st, bdef, parts, body).await?;
    let pod = name
        .or_else(|| object::meta_str(&b, "name").map(String::from))
        .unwrap_or_default();
    let node = b
        .pointer("/target/name")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    if node.is_empty() {
        return Err(ApiError::invalid(
            "Binding",
            "",
            &pod,
            &[FieldError::required("target.name", "")],
        ));
    }
    st.api.bind(pods, ns, &pod, &node).await?;
    Ok(respond::json(
        201,
        &json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": 201}),
    ))
}

/// `POST serviceaccounts/{name}/token`: the TokenRequest API.
async fn token(
    st: &AppState,
    ns: &str,
    name: &str,
    parts: &Parts,
    body: Body,
) -> Result<Resp, ApiError> {
    let bt = negotiate::body_type(header(parts, header::CONTENT_TYPE))?;
    let bytes = read_body(&parts.headers, body, st.api.cfg.max_body_bytes).await?;
    let req = negotiate::decode_body(bt, &bytes, "TokenRequest", "v1")?;
    let out = crate::auth::tokens::create(&st.api, &st.auth, ns, name, &req)?;
    Ok(respond::json(201, &out))
}

/// `POST tokenreviews`: whether a token is valid and whose it is (what a node agent asks before it
/// serves a caller on its kubelet endpoint, as kubelet's webhook authentication does).
async fn token_review(st: &AppState, parts: &Parts, body: Body) -> Result<Resp, ApiError> {
    let bt = negotiate::body_type(header(parts, header::CONTENT_TYPE))?;
    let bytes = read_body(&parts.headers, body, st.api.cfg.max_body_bytes).await?;
    let req = negotiate::decode_body(bt, &bytes, "TokenReview", "v1")?;
    let token = req
        .pointer("/spec/token")
        .and_then(Value::as_str)
        .unwrap_or("");
    if token.is_empty() {
        return Err(ApiError::invalid(
            "TokenReview",
            "authentication.k8s.io",
            "",
            &[FieldError::required("spec.token", "")],
        ));
    }
    let mut audiences: Vec<String> = req
        .pointer("/spec/audiences")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(String::from)
                .collect()
        })
        .unwrap_or_default();
    if audiences.is_empty() {
        audiences.push(st.auth.issuer.clone());
    }
    let status = match st.auth.review(&st.api, token, &audiences) {
        Some((user, valid_for)) => {
            json!({"authenticated": true, "user": user.to_json(), "audiences": valid_for})
        }
        None => json!({"authenticated": false, "user": {}, "error": "invalid bearer token"}),
    };
    Ok(respond::json(
        201,
        &json!({
            "kind": "TokenReview",
            "apiVersion": "authentication.k8s.io/v1",
            "metadata": {"creationTimestamp": null},
            "spec": req.get("spec").cloned().unwrap_or_else(|| json!({})),
            "status": status,
        }),
    ))
}

/// `POST selfsubjectreviews` (`kubectl auth whoami`): who the caller is. The body carries nothing the
/// answer depends on.
fn whoami(parts: &Parts) -> Resp {
    let user = parts
        .extensions
        .get::<crate::auth::UserInfo>()
        .cloned()
        .unwrap_or_default();
    respond::json(
        201,
        &json!({
            "kind": "SelfSubjectReview",
            "apiVersion": "authentication.k8s.io/v1",
            "metadata": {"creationTimestamp": null},
            "status": {"userInfo": user.to_json()},
        }),
    )
}

/// `PUT namespaces/{name}/finalize`.
async fn finalize(
    st: &AppState,
    r: &'static ResourceDef,
    name: &str,
    parts: &Parts,
    body: Body,
) -> Result<Resp, ApiError> {
    if r.kind != "Namespace" {
        return Err(ApiError::method_not_allowed());
    }
    let b = body_value(st, r, parts, body).await?;
    let fins = b.pointer("/spec/finalizers").cloned().unwrap_or(json!([]));
    let out = st
        .api
        .mutate(r, "", name, None, |ns| {
            if ns.pointer("/spec/finalizers") == Some(&fins) {
                return false;
            }
            ns["spec"]["finalizers"] = fins.clone();
            true
        })
        .await?;
    let current = st.api.get(r, "", name)?;
    let empty = current
        .pointer("/spec/finalizers")
        .and_then(Value::as_array)
        .is_none_or(Vec::is_empty);
    if object::is_deleting(&current)
        && empty
        && object::finalizers(&current).is_empty()
        && let Some(o) = st.api.force_remove(r, "", name).await?
    {
        return Ok(respond::json_bytes(200, o.object.to_vec()));
    }
    let bytes = match out {
        Some(o) => o.object.to_vec(),
        None => serde_json::to_vec(&current).unwrap_or_default(),
    };
    Ok(respond::json_bytes(200, bytes))
}

fn scale_of(r: &ResourceDef, obj: &Value) -> Value {
    let sel = labels::LabelSelector::from_object(obj.pointer("/spec/selector"))
        .map(|s| s.to_string())
        .unwrap_or_default();
    let m = obj.get("metadata").cloned().unwrap_or(json!({}));
    let mut meta = json!({});
    for f in [
        "name",
        "namespace",
        "uid",
        "resourceVersion",
        "creationTimestamp",
    ] {
        if let Some(v) = m.get(f) {
            meta[f] = v.clone();
        }
    }
    let _ = r;
    json!({
        "kind": "Scale",
        "apiVersion": "autoscaling/v1",
        "metadata": meta,
        "spec": {"replicas": obj.pointer("/spec/replicas").and_then(Value::as_i64).unwrap_or(0)},
        "status": {"replicas": obj.pointer("/status/replicas").and_then(Value::as_i64).unwrap_or(0), "selector": sel},
    })
}

/// `deployments/scale`, `replicasets/scale`: GET, PUT and PATCH of an autoscaling/v1 Scale.
async fn scale(
    st: &AppState,
    r: &'static ResourceDef,
    ns: &str,
    name: &str,
    parts: &Parts,
    body: Body,
    q: &Query,
) -> Result<Resp, ApiError> {
    if r.subresource("scale").is_none() {
        return Err(ApiError::path_not_found());
    }
    let current = st.api.get(r, ns, name)?;
    if parts.method == Method::GET {
        return Ok(respond::json(200, &scale_of(r, &current)));
    }
    let opts = write_options(parts, q, false)?;
    let view = scale_of(r, &current);
    let new_scale = if parts.method == Method::PUT {
        let bt = negotiate::body_type(header(parts, header::CONTENT_TYPE))?;
        let bytes = read_body(&parts.headers, body, st.api.cfg.max_body_bytes).await?;
        negotiate::decode_body(bt, &bytes, "Scale", "v1")?
    } else {
        let ct = header(parts, header::CONTENT_TYPE).unwrap_or("");
        let pt = PatchType::from_content_type(ct).ok_or_else(|| ApiError::unsupported_patch(ct))?;
        let bytes = read_body(&parts.headers, body, st.api.cfg.max_body_bytes).await?;
        let p = parse_patch(pt, &bytes)?;
        match pt {
            PatchType::Merge | PatchType::Apply => patch::merge(&view, &p),
            PatchType::Json => patch::json(&view, &p),
            PatchType::Strategic => {
                strategic::apply(&view, &p, Some("io.k8s.api.autoscaling.v1.Scale"))
            }
        }
        .map_err(|e| ApiError::bad_request(e.to_string()))?
    };
    let replicas = match new_scale.pointer("/spec/replicas") {
        None => 0,
        Some(v) => v.as_i64().ok_or_else(|| {
            ApiError::decode(
                "Scale",
                "v1",
                "json: cannot unmarshal into Go struct field ScaleSpec.spec.replicas of type int32",
            )
        })?,
    };
    if replicas < 0 {
        return Err(ApiError::invalid(
            "Scale",
            "autoscaling",
            name,
            &[FieldError::invalid(
                "spec.replicas",
                replicas,
                "must be greater than or equal to 0",
            )],
        ));
    }
    if let Some(rv) = new_scale
        .pointer("/metadata/resourceVersion")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        && Some(rv) != object::meta_str(&current, "resourceVersion")
    {
        return Err(ApiError::modified(objref(r, name)));
    }
    if opts.dry_run {
        let mut v = current.clone();
        v["spec"]["replicas"] = json!(replicas);
        return Ok(respond::json(200, &scale_of(r, &v)));
    }
    let out = st
        .api
        .mutate(r, ns, name, None, |o| {
            if o.pointer("/spec/replicas").and_then(Value::as_i64) == Some(replicas) {
                return false;
            }
            o["spec"]["replicas"] = json!(replicas);
            true
        })
        .await?;
    let obj = match out {
        Some(o) => o.value(),
        None => st.api.get(r, ns, name)?,
    };
    Ok(respond::json(200, &scale_of(r, &obj)))
}
