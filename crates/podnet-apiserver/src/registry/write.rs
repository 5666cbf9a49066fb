//! Create, update (PUT), patch and server-side apply.

use std::sync::Arc;

use podnet_apimachinery::patch::{self, PatchError, PatchType, apply as ssa, strategic};
use podnet_apimachinery::resources::ResourceDef;
use podnet_apimachinery::schema::check_and_prune;
use podnet_apimachinery::{ApiError, FieldError, defaults, object, validation};
use serde_json::{Value, json};

use super::{Api, Output, key, objref, service, store_error};
use crate::util;

/// The `fieldValidation` query parameter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FieldValidation {
    Ignore,
    #[default]
    Warn,
    Strict,
}

impl FieldValidation {
    pub fn parse(s: Option<&str>) -> Result<Self, ApiError> {
        match s {
            None | Some("") | Some("Warn") => Ok(FieldValidation::Warn),
            Some("Ignore") => Ok(FieldValidation::Ignore),
            Some("Strict") => Ok(FieldValidation::Strict),
            Some(other) => Err(ApiError::bad_request(format!(
                "fieldValidation parameter unsupported: {other}; supported values: Ignore, Warn, Strict"
            ))),
        }
    }
}

/// Options of a write request.
#[derive(Debug, Clone, Default)]
pub struct WriteOptions {
    pub field_manager: Option<String>,
    pub validation: FieldValidation,
    pub dry_run: bool,
    pub force: bool,
    /// Who asks, for the checks that depend on it (RBAC escalation); `None` for in-process callers.
    pub user: Option<crate::auth::UserInfo>,
}

/// Kinds whose `metadata.generation` tracks spec changes.
fn has_generation(kind: &str) -> bool {
    matches!(
        kind,
        "Pod"
            | "Deployment"
            | "ReplicaSet"
            | "DaemonSet"
            | "StatefulSet"
            | "Job"
            | "CronJob"
            | "NetworkPolicy"
            | "Ingress"
            | "IngressClass"
            | "PodDisruptionBudget"
    )
}

fn has_status_subresource(r: &ResourceDef) -> bool {
    r.subresource("status").is_some()
}

fn serialize(v: &Value) -> Arc<[u8]> {
    Arc::from(serde_json::to_vec(v).expect("JSON value serializes"))
}

fn patch_error(e: PatchError) -> ApiError {
    match e {
        PatchError::Invalid(m) => ApiError::bad_request(m),
        PatchError::Unprocessable(m) => ApiError {
            code: 422,
            reason: "Invalid",
            message: m,
            details: None,
        },
    }
}

impl Api {
    /// Checks kind and apiVersion, prunes unknown fields (per `fieldValidation`) and type errors.
    /// Returns the warnings to send back.
    fn decode(
        &self,
        r: &ResourceDef,
        obj: &mut Value,
        validation: FieldValidation,
    ) -> Result<Vec<String>, ApiError> {
        let Value::Object(m) = obj else {
            return Err(ApiError::decode(
                r.kind,
                r.version,
                "json: cannot unmarshal non-object into Go value of type struct",
            ));
        };
        if let Some(k) = m.get("kind").and_then(Value::as_str)
            && !k.is_empty()
            && k != r.kind
        {
            return Err(ApiError::bad_request(format!(
                "the object provided is unrecognized (must be of type {}): kind {k:?} does not match",
                r.kind
            )));
        }
        if let Some(v) = m.get("apiVersion").and_then(Value::as_str)
            && !v.is_empty()
            && v != r.api_version()
        {
            return Err(ApiError::bad_request(format!(
                "the API version in the data ({v}) does not match the expected API version ({})",
                r.api_version()
            )));
        }
        m.insert("apiVersion".into(), json!(r.api_version()));
        m.insert("kind".into(), json!(r.kind));
        let report = check_and_prune(obj, r.schema);
        if let Some(t) = report.type_error {
            return Err(ApiError::decode(r.kind, r.version, &t));
        }
        let unknown: Vec<String> = report
            .unknown
            .iter()
            .map(|u| format!("unknown field {u:?}"))
            .collect();
        match validation {
            FieldValidation::Strict if !unknown.is_empty() => {
                Err(ApiError::strict(r.kind, r.version, &unknown))
            }
            FieldValidation::Warn => Ok(unknown),
            _ => Ok(Vec::new()),
        }
    }

    fn invalid(r: &ResourceDef, name: &str, errs: &[FieldError]) -> ApiError {
        ApiError::invalid(r.kind, r.group, name, errs)
    }

    /// POST: creates an object in `namespace`.
    pub async fn create(
        &self,
        r: &'static ResourceDef,
        namespace: &str,
        mut obj: Value,
        opts: &WriteOptions,
    ) -> Result<Output, ApiError> {
        let warnings = self.decode(r, &mut obj, opts.validation)?;
        let fields = ssa::field_set(&obj, Some(r.schema));
        self.create_decoded(r, namespace, obj, opts, "Update", fields, warnings)
            .await
    }

    #[allow(clippy::too_many_arguments)]
    async fn create_decoded(
        &self,
        r: &'static ResourceDef,
        namespace: &str,
        mut obj: Value,
        opts: &WriteOptions,
        operation: &str,
        fields: Value,
        warnings: Vec<String>,
    ) -> Result<Output, ApiError> {
        let meta = object::meta_mut(&mut obj);
        if r.namespaced {
            match meta.get("namespace").and_then(Value::as_str) {
                Some(ns) if !ns.is_empty() && ns != namespace => {
                    return Err(ApiError::bad_request(
                        "the namespace of the provided object does not match the namespace sent on the request",
                    ));
                }
                _ => {}
            }
            meta.insert("namespace".into(), json!(namespace));
        } else {
            meta.remove("namespace");
        }
        if meta
            .get("resourceVersion")
            .and_then(Value::as_str)
            .is_some_and(|s| !s.is_empty())
        {
            return Err(ApiError::bad_request(
                "resourceVersion should not be set on objects to be created",
            ));
        }
        let mut name = meta
            .get("name")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        if name.is_empty()
            && let Some(g) = meta
                .get("generateName")
                .and_then(Value::as_str)
                .filter(|g| !g.is_empty())
        {
            name = format!("{g}{}", util::random_suffix(5));
            meta.insert("name".into(), json!(name));
        }
        for f in [
            "uid",
            "creationTimestamp",
            "deletionTimestamp",
            "deletionGracePeriodSeconds",
            "generation",
            "selfLink",
            "resourceVersion",
            "managedFields",
        ] {
            meta.remove(f);
        }
        meta.insert("uid".into(), json!(util::new_uid()));
        meta.insert("creationTimestamp".into(), json!(util::now_rfc3339()));
        if has_generation(r.kind) {
            meta.insert("generation".into(), json!(1));
        }
        if r.group == "batch" && r.kind == "Job" {
            defaults::job_selector(&mut obj);
        }
        // like the real registries: a client cannot create an object with a status of its choosing (the
        // kubelet creates its Node with one, so nodes keep theirs)
        if has_status_subresource(r)
            && r.kind != "Node"
            && let Value::Object(m) = &mut obj
        {
            m.remove("status");
        }
        if r.kind == "Pod" && r.group.is_empty() {
            super::priority::pod(self, &name, &mut obj)?;
            super::priority::limit_ranges(self, namespace, &name, &mut obj)?;
        }
        if r.kind == "PriorityClass" {
            super::priority::class(self, &obj)?;
        }
        defaults::apply(r.group, r.kind, &mut obj, true);
        let errs = validation::validate(r.group, r.kind, &obj, None, r.namespaced);
        if !errs.is_empty() {
            return Err(Self::invalid(r, &name, &errs));
        }
        if let Some(user) = &opts.user {
            crate::authz::escalation::check(self, user, r, namespace, &obj)?;
            crate::authz::node::admit_create(user, r.kind, r.group, namespace, &name)?;
        }
        self.check_namespace(r, namespace, &name)?;
        // read-only, so a dry run is checked too, as Kubernetes checks it
        super::quota::admit(self, r, namespace, &name, &obj)?;
        if r.kind == "Pod" && r.group.is_empty() {
            super::admission::await_default(self, namespace, &obj).await;
            super::admission::service_account(self, namespace, &mut obj)?;
        }
        let allocated = if r.kind == "Service" {
            service::allocate(self, &mut obj, None)
                .map_err(|errs| Self::invalid(r, &name, &errs))?
        } else {
            service::Allocated::default()
        };
        if let Some(m) = &opts.field_manager {
            ssa::record(
                &mut obj,
                m,
                operation,
                &r.api_version(),
                &util::now_rfc3339(),
                fields,
                None,
            );
        }
        if opts.dry_run {
            service::release(self, &allocated);
            return Ok(Output {
                object: serialize(&obj),
                created: true,
                warnings,
            });
        }
        match self.store.create(key(r, namespace, &name), obj).await {
            Ok(w) => Ok(Output {
                object: w.object,
                created: true,
                warnings,
            }),
            Err(e) => {
                service::release(self, &allocated);
                Err(store_error(r, &name, e))
            }
        }
    }

    /// PUT: replaces an object (or its status with `sub = Some("status")`).
    pub async fn update(
        &self,
        r: &'static ResourceDef,
        namespace: &str,
        name: &str,
        mut obj: Value,
        opts: &WriteOptions,
        sub: Option<&str>,
    ) -> Result<Output, ApiError> {
        let warnings = self.decode(r, &mut obj, opts.validation)?;
        check_name(r, namespace, name, &obj)?;
        let meta = object::meta_mut(&mut obj);
        let expected = match meta
            .get("resourceVersion")
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
        {
            Some(s) => Some(s.parse::<u64>().map_err(|_| {
                Self::invalid(
                    r,
                    name,
                    &[FieldError::invalid(
                        "metadata.resourceVersion",
                        s,
                        "must be a valid resource version",
                    )],
                )
            })?),
            None => None,
        };
        let current = self.get_entry(r, namespace, name)?;
        let current_value: Value = serde_json::from_slice(&current.object)
            .map_err(|e| ApiError::internal(e.to_string()))?;
        let fields = ssa::changed_set(&current_value, &obj, Some(r.schema));
        let mut out = self
            .finish_update(
                r,
                namespace,
                name,
                current_value,
                current.rv,
                obj,
                expected.or(Some(current.rv)),
                opts,
                sub,
                Some(("Update", fields)),
            )
            .await?;
        out.warnings = warnings;
        Ok(out)
    }

    /// Writes `new` over `current` with Kubernetes' update semantics.
    #[allow(clippy::too_many_arguments)]
    pub(crate) async fn finish_update(
        &self,
        r: &'static ResourceDef,
        namespace: &str,
        name: &str,
        current: Value,
        current_rv: u64,
        mut new: Value,
        expected: Option<u64>,
        opts: &WriteOptions,
        sub: Option<&str>,
        managed: Option<(&str, Value)>,
    ) -> Result<Output, ApiError> {
        match sub {
            Some("status") => {
                let status = new.get("status").cloned();
                let mut merged = current.clone();
                match status {
                    Some(s) => merged["status"] = s,
                    None => {
                        if let Value::Object(m) = &mut merged {
                            m.remove("status");
                        }
                    }
                }
                new = merged;
            }
            // kubectl debug: only the pod's ephemeral containers change
            Some("ephemeralcontainers") => {
                let mut merged = current.clone();
                match new.pointer("/spec/ephemeralContainers") {
                    Some(e) => merged["spec"]["ephemeralContainers"] = e.clone(),
                    None => {
                        if let Some(Value::Object(m)) = merged.get_mut("spec") {
                            m.remove("ephemeralContainers");
                        }
                    }
                }
                new = merged;
            }
            _ => {
                // a pod's ephemeral containers change only through their subresource
                if r.kind == "Pod" && r.group.is_empty() {
                    match current.pointer("/spec/ephemeralContainers") {
                        Some(e) => new["spec"]["ephemeralContainers"] = e.clone(),
                        None => {
                            if let Some(Value::Object(m)) = new.get_mut("spec") {
                                m.remove("ephemeralContainers");
                            }
                        }
                    }
                }
                if has_status_subresource(r) {
                    match current.get("status") {
                        Some(s) => new["status"] = s.clone(),
                        None => {
                            if let Value::Object(m) = &mut new {
                                m.remove("status");
                            }
                        }
                    }
                }
            }
        }
        // an update may leave the uid out (it is kept) but not change it
        if let Some(uid) = object::meta_str(&new, "uid").filter(|u| !u.is_empty())
            && uid != object::uid(&current)
        {
            return Err(Self::invalid(
                r,
                name,
                &[FieldError::invalid(
                    "metadata.uid",
                    uid,
                    "field is immutable",
                )],
            ));
        }
        {
            let cur_meta = current.get("metadata").cloned().unwrap_or(json!({}));
            let managed = kept_managed_fields(
                object::meta(&new).and_then(|m| m.get("managedFields")),
                cur_meta.get("managedFields"),
                sub,
            );
            let meta = object::meta_mut(&mut new);
            match managed {
                Some(m) => meta.insert("managedFields".into(), m),
                None => meta.remove("managedFields"),
            };
            for f in [
                "uid",
                "creationTimestamp",
                "deletionTimestamp",
                "deletionGracePeriodSeconds",
                "generation",
            ] {
                match cur_meta.get(f) {
                    Some(v) => {
                        meta.insert(f.into(), v.clone());
                    }
                    None => {
                        meta.remove(f);
                    }
                }
            }
            meta.insert("name".into(), json!(name));
            if r.namespaced {
                meta.insert("namespace".into(), json!(namespace));
            }
            meta.remove("resourceVersion");
            meta.remove("selfLink");
        }
        if has_generation(r.kind) && new.get("spec") != current.get("spec") {
            let g = object::i64_at(&current, "metadata.generation").unwrap_or(1);
            object::meta_mut(&mut new).insert("generation".into(), json!(g + 1));
        }
        if r.kind == "Service" && sub.is_none() {
            service::drop_type_dependent_fields(&mut new, &current);
        }
        if r.kind == "PriorityClass" {
            super::priority::class(self, &new)?;
        }
        defaults::apply(r.group, r.kind, &mut new, false);
        let errs = validation::validate(r.group, r.kind, &new, Some(&current), r.namespaced);
        if !errs.is_empty() {
            return Err(Self::invalid(r, name, &errs));
        }
        if let Some(user) = &opts.user {
            crate::authz::escalation::check(self, user, r, namespace, &new)?;
        }
        if sub.is_none() {
            super::quota::admit_update(self, r, namespace, name, &current, &new)?;
        }
        let allocated = if r.kind == "Service" {
            service::allocate(self, &mut new, Some(&current))
                .map_err(|errs| Self::invalid(r, name, &errs))?
        } else {
            service::Allocated::default()
        };
        if let (Some(m), Some((op, fields))) = (&opts.field_manager, managed) {
            // an Update keeps what the manager owned before and adds what it changed now; one that
            // changed nothing gets no entry
            let fields = match ssa::managed_entry(&new, m, op).filter(|_| op == "Update") {
                Some(prev) => Some(ssa::union(&prev["fieldsV1"], &fields)),
                None if op == "Update" && fields.as_object().is_some_and(|f| f.is_empty()) => None,
                None => Some(fields),
            };
            if let Some(fields) = fields {
                ssa::record(
                    &mut new,
                    m,
                    op,
                    &r.api_version(),
                    &util::now_rfc3339(),
                    fields,
                    sub,
                );
            }
        }
        let mut cur_cmp = current.clone();
        if let Some(m) = cur_cmp.get_mut("metadata").and_then(Value::as_object_mut) {
            m.remove("resourceVersion");
        }
        // a write that changes nothing is not a write: no new resourceVersion, no event
        if new == cur_cmp || (without_managed_time(&new) == without_managed_time(&cur_cmp)) {
            service::release(self, &allocated);
            if expected.is_some_and(|e| e != current_rv) {
                return Err(ApiError::modified(objref(r, name)));
            }
            let bytes =
                serde_json::to_vec(&current).map_err(|e| ApiError::internal(e.to_string()))?;
            return Ok(Output {
                object: Arc::from(bytes),
                created: false,
                warnings: Vec::new(),
            });
        }
        if opts.dry_run {
            service::release(self, &allocated);
            // nothing was written: the object is still at its stored version (`kubectl diff` would
            // otherwise show the resourceVersion as removed)
            object::meta_mut(&mut new)
                .insert("resourceVersion".into(), json!(current_rv.to_string()));
            return Ok(Output {
                object: serialize(&new),
                created: false,
                warnings: Vec::new(),
            });
        }
        // the last finalizer of an object being deleted is gone: the object goes
        if object::is_deleting(&new)
            && object::finalizers(&new).is_empty()
            && finalizable(r.kind, &new)
        {
            let k = key(r, namespace, name);
            let res = self.store.delete(k, expected).await;
            service::release(self, &allocated);
            return match res {
                Ok(w) => {
                    if r.kind == "Service" {
                        service::release_all(self, &current);
                    }
                    Ok(Output {
                        object: w.object,
                        created: false,
                        warnings: Vec::new(),
                    })
                }
                Err(e) => Err(store_error(r, name, e)),
            };
        }
        match self
            .store
            .update(key(r, namespace, name), new, expected)
            .await
        {
            Ok(w) => {
                if r.kind == "Service" {
                    let stored: Value = serde_json::from_slice(&w.object).unwrap_or(Value::Null);
                    service::release_dropped(self, &current, &stored);
                }
                Ok(Output {
                    object: w.object,
                    created: false,
                    warnings: Vec::new(),
                })
            }
            Err(e) => {
                service::release(self, &allocated);
                Err(store_error(r, name, e))
            }
        }
    }

    /// PATCH (all four types), with retries on conflicts the client did not ask for.
    #[allow(clippy::too_many_arguments)]
    pub async fn patch(
        &self,
        r: &'static ResourceDef,
        namespace: &str,
        name: &str,
        pt: PatchType,
        body: Value,
        opts: &WriteOptions,
        sub: Option<&str>,
    ) -> Result<Output, ApiError> {
        if pt == PatchType::Apply {
            return self.apply(r, namespace, name, body, opts, sub).await;
        }
        let mut attempt = 0;
        loop {
            attempt += 1;
            let current = self.get_entry(r, namespace, name)?;
            let current_value: Value = serde_json::from_slice(&current.object)
                .map_err(|e| ApiError::internal(e.to_string()))?;
            let mut patched = match pt {
                PatchType::Merge => patch::merge(&current_value, &body),
                PatchType::Json => patch::json(&current_value, &body),
                PatchType::Strategic => strategic::apply(&current_value, &body, Some(r.schema)),
                PatchType::Apply => unreachable!("handled above"),
            }
            .map_err(patch_error)?;
            let warnings = self.decode(r, &mut patched, opts.validation)?;
            check_name(r, namespace, name, &patched)?;
            let fields = ssa::changed_set(&current_value, &patched, Some(r.schema));
            // the resourceVersion the patched object carries is a precondition, whichever patch put
            // it there (kubectl's managedFields migration replaces it with a JSON patch); only a
            // conflict on the version this loop read itself is retried
            let patched_rv = match object::meta_str(&patched, "resourceVersion") {
                None | Some("") => None,
                Some(s) => Some(s.parse::<u64>().map_err(|_| {
                    Self::invalid(
                        r,
                        name,
                        &[FieldError::invalid(
                            "metadata.resourceVersion",
                            s,
                            "must be a valid resource version",
                        )],
                    )
                })?),
            };
            let retry = patched_rv.is_none_or(|rv| rv == current.rv);
            let expected = Some(patched_rv.unwrap_or(current.rv));
            match self
                .finish_update(
                    r,
                    namespace,
                    name,
                    current_value,
                    current.rv,
                    patched,
                    expected,
                    opts,
                    sub,
                    Some(("Update", fields)),
                )
                .await
            {
                Err(e) if e.reason == "Conflict" && retry && attempt < 8 => {
                    continue;
                }
                Err(e) => return Err(e),
                Ok(mut out) => {
                    out.warnings = warnings;
                    return Ok(out);
                }
            }
        }
    }

    /// Server-side apply: create-or-update with field ownership.
    async fn apply(
        &self,
        r: &'static ResourceDef,
        namespace: &str,
        name: &str,
        mut config: Value,
        opts: &WriteOptions,
        sub: Option<&str>,
    ) -> Result<Output, ApiError> {
        let Some(manager) = opts.field_manager.clone().filter(|m| !m.is_empty()) else {
            return Err(ApiError::bad_request(
                "PatchOptions.meta.k8s.io \"\" is invalid: fieldManager: Required value: is required for apply patch",
            ));
        };
        if config
            .get("apiVersion")
            .and_then(Value::as_str)
            .is_none_or(str::is_empty)
            || config
                .get("kind")
                .and_then(Value::as_str)
                .is_none_or(str::is_empty)
        {
            return Err(ApiError::bad_request(
                "apiVersion and kind must be set in an apply configuration",
            ));
        }
        if config
            .pointer("/metadata/managedFields")
            .is_some_and(|m| !m.is_null())
        {
            return Err(ApiError::bad_request("metadata.managedFields must be nil"));
        }
        let warnings = self.decode(r, &mut config, opts.validation)?;
        match config.pointer("/metadata/name").and_then(Value::as_str) {
            Some(n) if n != name => {
                return Err(ApiError::bad_request(format!(
                    "the name of the object ({n}) does not match the name on the URL ({name})"
                )));
            }
            None => {
                object::meta_mut(&mut config).insert("name".into(), json!(name));
            }
            _ => {}
        }
        check_name(r, namespace, name, &config)?;
        let fields = ssa::field_set(&config, Some(r.schema));
        let mut attempt = 0;
        loop {
            attempt += 1;
            let Ok(current) = self.get_entry(r, namespace, name) else {
                if sub.is_some() {
                    return Err(ApiError::not_found(objref(r, name)));
                }
                let o = WriteOptions {
                    field_manager: Some(manager.clone()),
                    ..opts.clone()
                };
                match self
                    .create_decoded(
                        r,
                        namespace,
                        config.clone(),
                        &o,
                        "Apply",
                        fields.clone(),
                        warnings.clone(),
                    )
                    .await
                {
                    Err(e) if e.reason == "AlreadyExists" && attempt < 8 => continue,
                    other => return other,
                }
            };
            let current_value: Value = serde_json::from_slice(&current.object)
                .map_err(|e| ApiError::internal(e.to_string()))?;
            let merged = ssa::apply(&current_value, &config, Some(r.schema), &manager, opts.force).map_err(|conflicts| {
                let causes: Vec<Value> = conflicts
                    .iter()
                    .map(|c| json!({"reason": "FieldManagerConflict", "message": format!("conflict with {:?}", c.manager), "field": c.field}))
                    .collect();
                let list: Vec<String> = conflicts.iter().map(|c| format!("- {}: {}", c.manager, c.field)).collect();
                ApiError {
                    code: 409,
                    reason: "Conflict",
                    message: format!("Apply failed with {} conflict{}: {}", conflicts.len(), if conflicts.len() == 1 { "" } else { "s" }, list.join("\n")),
                    details: Some(json!({"name": name, "kind": r.plural, "causes": causes})),
                }
            })?;
            let o = WriteOptions {
                field_manager: Some(manager.clone()),
                ..opts.clone()
            };
            match self
                .finish_update(
                    r,
                    namespace,
                    name,
                    current_value,
                    current.rv,
                    merged,
                    Some(current.rv),
                    &o,
                    sub,
                    Some(("Apply", fields.clone())),
                )
                .await
            {
                Err(e)
                    if e.reason == "Conflict"
                        && e.code == 409
                        && e.message.starts_with("Operation cannot")
                        && attempt < 8 =>
                {
                    continue;
                }
                Err(e) => return Err(e),
                Ok(mut out) => {
                    out.warnings = warnings;
                    return Ok(out);
                }
            }
        }
    }

    /// Read-modify-write for controllers: `f` edits the object and returns whether it changed anything.
    /// Retries on conflicts. Returns `None` when nothing changed or the object is gone.
    pub async fn mutate(
        &self,
        r: &'static ResourceDef,
        namespace: &str,
        name: &str,
        sub: Option<&str>,
        f: impl Fn(&mut Value) -> bool,
    ) -> Result<Option<Output>, ApiError> {
        for _ in 0..10 {
            let Ok(current) = self.get_entry(r, namespace, name) else {
                return Ok(None);
            };
            let value: Value = serde_json::from_slice(&current.object)
                .map_err(|e| ApiError::internal(e.to_string()))?;
            let mut new = value.clone();
            if !f(&mut new) {
                return Ok(None);
            }
            let opts = WriteOptions::default();
            match self
                .finish_update(
                    r,
                    namespace,
                    name,
                    value,
                    current.rv,
                    new,
                    Some(current.rv),
                    &opts,
                    sub,
                    None,
                )
                .await
            {
                Err(e) if e.reason == "Conflict" => continue,
                Err(e) if e.reason == "NotFound" => return Ok(None),
                Err(e) => return Err(e),
                Ok(o) => return Ok(Some(o)),
            }
        }
        Err(ApiError::modified(objref(r, name)))
    }
}

/// kube's checkName: what a PUT or a PATCH produces keeps the name and namespace of its URL (left out,
/// they are filled in).
fn check_name(r: &ResourceDef, namespace: &str, name: &str, obj: &Value) -> Result<(), ApiError> {
    if let Some(n) = object::meta_str(obj, "name").filter(|n| !n.is_empty())
        && n != name
    {
        return Err(ApiError::bad_request(format!(
            "the name of the object ({n}) does not match the name on the URL ({name})"
        )));
    }
    if let Some(ns) = object::meta_str(obj, "namespace").filter(|s| !s.is_empty())
        && r.namespaced
        && ns != namespace
    {
        return Err(ApiError::bad_request(format!(
            "the namespace of the object ({ns}) does not match the namespace on the request ({namespace})"
        )));
    }
    Ok(())
}

/// Whether a terminating object without metadata finalizers may go now: pods still in their grace
/// period wait for their node, namespaces for their `spec.finalizers` (the namespace controller).
fn finalizable(kind: &str, v: &Value) -> bool {
    match kind {
        "Pod" => {
            object::meta(v)
                .and_then(|m| m.get("deletionGracePeriodSeconds"))
                .and_then(Value::as_i64)
                .unwrap_or(0)
                <= 0
        }
        "Namespace" => v
            .pointer("/spec/finalizers")
            .and_then(Value::as_array)
            .is_none_or(Vec::is_empty),
        _ => true,
    }
}

/// The managedFields a write keeps. A well-formed, non-empty list the client sent replaces the stored
/// one (kubectl's client-side to server-side apply migration moves field ownership with a JSON patch of
/// managedFields; without it `apply --server-side` cannot prune what the last client-side apply
/// set), and `[{}]` clears it; anything else keeps the stored list, so that clients unaware of
/// managedFields cannot drop them by accident. Subresource writes always keep the stored list. This is
/// kube-apiserver's field manager rule.
fn kept_managed_fields(
    sent: Option<&Value>,
    stored: Option<&Value>,
    sub: Option<&str>,
) -> Option<Value> {
    let Some(Value::Array(entries)) = sent.filter(|_| sub.is_none()) else {
        return stored.cloned();
    };
    if !entries.is_empty()
        && entries
            .iter()
            .all(|e| e.as_object().is_some_and(|m| m.is_empty()))
    {
        return None;
    }
    let well_formed = |e: &Value| {
        e.get("manager").is_some_and(Value::is_string)
            && matches!(
                e.get("operation").and_then(Value::as_str),
                Some("Apply" | "Update")
            )
            && e.get("fieldsV1").is_none_or(Value::is_object)
    };
    if entries.is_empty() || !entries.iter().all(well_formed) {
        return stored.cloned();
    }
    Some(Value::Array(entries.clone()))
}

/// The object without the times of its managedFields entries (they change on every write).
fn without_managed_time(v: &Value) -> Value {
    let mut v = v.clone();
    if let Some(Value::Array(list)) = v.pointer_mut("/metadata/managedFields") {
        for e in list {
            if let Value::Object(m) = e {
                m.remove("time");
            }
        }
    }
    v
}
