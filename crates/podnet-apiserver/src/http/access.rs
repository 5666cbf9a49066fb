//! The access reviews: SelfSubjectAccessReview (`kubectl auth can-i`), SelfSubjectRulesReview
//! (`kubectl auth can-i --list`), SubjectAccessReview and LocalSubjectAccessReview (may someone
//! else do it?). Each answers with the same authorizers that guard every request.

use axum::body::Body;
use axum::http::header;
use axum::http::request::Parts;
use podnet_apimachinery::rbac::{Attributes, PolicyRule};
use podnet_apimachinery::{ApiError, FieldError};
use serde_json::{Value, json};

use super::negotiate;
use super::respond::{self, Resp};
use super::{AppState, read_body};
use crate::auth::UserInfo;
use crate::authz;

const GROUP: &str = "authorization.k8s.io";

async fn read(st: &AppState, parts: &Parts, body: Body, kind: &str) -> Result<Value, ApiError> {
    let ct = parts
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok());
    let bt = negotiate::body_type(ct)?;
    let bytes = read_body(&parts.headers, body, st.api.cfg.max_body_bytes).await?;
    negotiate::decode_body(bt, &bytes, kind, "v1")
}

fn caller(parts: &Parts) -> UserInfo {
    parts
        .extensions
        .get::<UserInfo>()
        .cloned()
        .unwrap_or_default()
}

fn s<'a>(v: &'a Value, k: &str) -> &'a str {
    v.get(k).and_then(Value::as_str).unwrap_or_default()
}

/// The attributes a review asks about: exactly one of `resourceAttributes` and
/// `nonResourceAttributes`.
fn attributes(kind: &str, spec: &Value) -> Result<Attributes, ApiError> {
    match (
        spec.get("resourceAttributes"),
        spec.get("nonResourceAttributes"),
    ) {
        (Some(r), None) => {
            let mut a = Attributes::resource(
                s(r, "verb"),
                s(r, "group"),
                s(r, "resource"),
                s(r, "namespace"),
                s(r, "name"),
            );
            a.subresource = s(r, "subresource").to_string();
            a.api_version = s(r, "version").to_string();
            Ok(a)
        }
        (None, Some(n)) => Ok(Attributes::non_resource(s(n, "verb"), s(n, "path"))),
        (both, _) => Err(ApiError::invalid(
            kind,
            GROUP,
            "",
            &[FieldError::invalid(
                if both.is_some() {
                    "spec.nonResourceAttributes"
                } else {
                    "spec.resourceAttributes"
                },
                Value::Null,
                "exactly one of nonResourceAttributes or resourceAttributes must be specified",
            )],
        )),
    }
}

fn answer(
    kind: &str,
    review: &Value,
    user: &UserInfo,
    a: &Attributes,
    api: &crate::registry::Api,
) -> Resp {
    let decision = authz::authorize(api, user, a);
    let mut status = json!({"allowed": decision.allowed()});
    if !decision.reason().is_empty() {
        status["reason"] = json!(decision.reason());
    }
    if matches!(decision, authz::Decision::Deny(_)) {
        status["denied"] = json!(true);
    }
    let mut meta = review.get("metadata").cloned().unwrap_or_else(|| json!({}));
    meta["creationTimestamp"] = Value::Null;
    respond::json(
        201,
        &json!({
            "kind": kind, "apiVersion": "authorization.k8s.io/v1",
            "metadata": meta,
            "spec": review.get("spec").cloned().unwrap_or_else(|| json!({})),
            "status": status,
        }),
    )
}

/// `POST selfsubjectaccessreviews`: may I?
pub async fn self_subject_access_review(
    st: &AppState,
    parts: &Parts,
    body: Body,
) -> Result<Resp, ApiError> {
    let kind = "SelfSubjectAccessReview";
    let review = read(st, parts, body, kind).await?;
    let a = attributes(kind, &review["spec"])?;
    Ok(answer(kind, &review, &caller(parts), &a, &st.api))
}

/// `POST subjectaccessreviews` and `POST namespaces/NS/localsubjectaccessreviews`: may this user?
pub async fn subject_access_review(
    st: &AppState,
    parts: &Parts,
    body: Body,
    namespace: Option<&str>,
) -> Result<Resp, ApiError> {
    let kind = if namespace.is_some() {
        "LocalSubjectAccessReview"
    } else {
        "SubjectAccessReview"
    };
    let review = read(st, parts, body, kind).await?;
    let spec = &review["spec"];
    let mut a = attributes(kind, spec)?;
    if let Some(ns) = namespace {
        if !a.resource_request {
            return Err(ApiError::invalid(
                kind,
                GROUP,
                "",
                &[FieldError::invalid(
                    "spec.nonResourceAttributes",
                    Value::Null,
                    "disallowed on this kind of request",
                )],
            ));
        }
        if a.namespace.is_empty() {
            a.namespace = ns.to_string();
        } else if a.namespace != ns {
            return Err(ApiError::invalid(
                kind,
                GROUP,
                "",
                &[FieldError::invalid(
                    "spec.resourceAttributes.namespace",
                    a.namespace.clone(),
                    "must match metadata.namespace",
                )],
            ));
        }
    }
    let user = UserInfo {
        username: s(spec, "user").to_string(),
        uid: s(spec, "uid").to_string(),
        groups: spec
            .get("groups")
            .and_then(Value::as_array)
            .map(|g| {
                g.iter()
                    .filter_map(Value::as_str)
                    .map(String::from)
                    .collect()
            })
            .unwrap_or_default(),
        ..UserInfo::default()
    };
    if user.username.is_empty() && user.groups.is_empty() {
        return Err(ApiError::invalid(
            kind,
            GROUP,
            "",
            &[FieldError::invalid(
                "spec.user",
                "",
                "at least one of user or group must be specified",
            )],
        ));
    }
    Ok(answer(kind, &review, &user, &a, &st.api))
}

/// `POST selfsubjectrulesreviews`: everything I may do in a namespace.
pub async fn self_subject_rules_review(
    st: &AppState,
    parts: &Parts,
    body: Body,
) -> Result<Resp, ApiError> {
    let kind = "SelfSubjectRulesReview";
    let review = read(st, parts, body, kind).await?;
    let namespace = review
        .pointer("/spec/namespace")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let (rules, error) = authz::rules_for(&st.api, &caller(parts), namespace);
    let (non_resource, resource): (Vec<&PolicyRule>, Vec<&PolicyRule>) =
        rules.iter().partition(|r| !r.non_resource_urls.is_empty());
    let mut status = json!({
        "resourceRules": resource.iter().map(|r| {
            json!({"verbs": r.verbs, "apiGroups": r.api_groups, "resources": r.resources, "resourceNames": r.resource_names})
        }).collect::<Vec<_>>(),
        "nonResourceRules": non_resource.iter().map(|r| {
            json!({"verbs": r.verbs, "nonResourceURLs": r.non_resource_urls})
        }).collect::<Vec<_>>(),
        "incomplete": !error.is_empty(),
    });
    if !error.is_empty() {
        status["evaluationError"] = json!(error);
    }
    Ok(respond::json(
        201,
        &json!({
            "kind": kind, "apiVersion": "authorization.k8s.io/v1",
            "metadata": {"creationTimestamp": null},
            "spec": review.get("spec").cloned().unwrap_or_else(|| json!({})),
            "status": status,
        }),
    ))
}
