//! Schema-driven protobuf -> JSON decoding.

use base64::Engine as _;
use serde_json::{Map, Value};

use super::PbError;
use super::schema::{self, Card, Field, Kind, Message};
use super::wire::{Reader, WireValue};

/// The protobuf magic prefix of Kubernetes bodies.
pub const MAGIC: &[u8; 4] = b"k8s\0";

/// Deep enough for any real object (a Deployment's pod template is about 12 levels), shallow enough that
/// a hostile body cannot exhaust the stack.
const MAX_DEPTH: usize = 64;

/// Pointer fields in Go (`*int32`, `*bool`, ...) whose zero value is meaningful and must survive decoding.
/// Key: (message name, JSON field name).
pub(crate) const KEEP_ZERO: &[(&str, &str)] = &[
    ("k8s.io.api.scheduling.v1.PriorityClass", "value"),
    ("k8s.io.api.apps.v1.DeploymentSpec", "replicas"),
    ("k8s.io.api.apps.v1.DeploymentSpec", "revisionHistoryLimit"),
    (
        "k8s.io.api.apps.v1.DeploymentSpec",
        "progressDeadlineSeconds",
    ),
    ("k8s.io.api.apps.v1.ReplicaSetSpec", "replicas"),
    ("k8s.io.api.apps.v1.DaemonSetSpec", "revisionHistoryLimit"),
    ("k8s.io.api.apps.v1.StatefulSetSpec", "replicas"),
    ("k8s.io.api.apps.v1.StatefulSetSpec", "revisionHistoryLimit"),
    (
        "k8s.io.api.apps.v1.RollingUpdateStatefulSetStrategy",
        "partition",
    ),
    ("k8s.io.api.batch.v1.JobSpec", "parallelism"),
    ("k8s.io.api.batch.v1.JobSpec", "completions"),
    ("k8s.io.api.batch.v1.JobSpec", "activeDeadlineSeconds"),
    ("k8s.io.api.batch.v1.JobSpec", "backoffLimit"),
    ("k8s.io.api.batch.v1.JobSpec", "ttlSecondsAfterFinished"),
    ("k8s.io.api.batch.v1.JobSpec", "suspend"),
    ("k8s.io.api.batch.v1.JobSpec", "manualSelector"),
    ("k8s.io.api.batch.v1.JobSpec", "backoffLimitPerIndex"),
    ("k8s.io.api.batch.v1.JobSpec", "maxFailedIndexes"),
    ("k8s.io.api.batch.v1.CronJobSpec", "startingDeadlineSeconds"),
    ("k8s.io.api.batch.v1.CronJobSpec", "suspend"),
    (
        "k8s.io.api.batch.v1.CronJobSpec",
        "successfulJobsHistoryLimit",
    ),
    ("k8s.io.api.batch.v1.CronJobSpec", "failedJobsHistoryLimit"),
    ("k8s.io.api.autoscaling.v1.ScaleSpec", "replicas"),
    (
        "k8s.io.api.core.v1.PodSpec",
        "terminationGracePeriodSeconds",
    ),
    ("k8s.io.api.core.v1.PodSpec", "activeDeadlineSeconds"),
    ("k8s.io.api.core.v1.PodSpec", "automountServiceAccountToken"),
    ("k8s.io.api.core.v1.PodSpec", "shareProcessNamespace"),
    ("k8s.io.api.core.v1.PodSpec", "enableServiceLinks"),
    ("k8s.io.api.core.v1.PodSpec", "hostUsers"),
    ("k8s.io.api.core.v1.PodSpec", "setHostnameAsFQDN"),
    ("k8s.io.api.core.v1.PodSpec", "priority"),
    ("k8s.io.api.core.v1.SecurityContext", "privileged"),
    ("k8s.io.api.core.v1.SecurityContext", "runAsUser"),
    ("k8s.io.api.core.v1.SecurityContext", "runAsGroup"),
    ("k8s.io.api.core.v1.SecurityContext", "runAsNonRoot"),
    (
        "k8s.io.api.core.v1.SecurityContext",
        "readOnlyRootFilesystem",
    ),
    (
        "k8s.io.api.core.v1.SecurityContext",
        "allowPrivilegeEscalation",
    ),
    ("k8s.io.api.core.v1.PodSecurityContext", "runAsUser"),
    ("k8s.io.api.core.v1.PodSecurityContext", "runAsGroup"),
    ("k8s.io.api.core.v1.PodSecurityContext", "runAsNonRoot"),
    ("k8s.io.api.core.v1.PodSecurityContext", "fsGroup"),
    ("k8s.io.api.core.v1.Probe", "terminationGracePeriodSeconds"),
    (
        "k8s.io.api.core.v1.ServiceSpec",
        "allocateLoadBalancerNodePorts",
    ),
    ("k8s.io.api.core.v1.ClientIpConfig", "timeoutSeconds"),
    ("k8s.io.api.core.v1.ConfigMapVolumeSource", "defaultMode"),
    ("k8s.io.api.core.v1.ConfigMapVolumeSource", "optional"),
    ("k8s.io.api.core.v1.SecretVolumeSource", "defaultMode"),
    ("k8s.io.api.core.v1.SecretVolumeSource", "optional"),
    ("k8s.io.api.core.v1.ProjectedVolumeSource", "defaultMode"),
    ("k8s.io.api.core.v1.KeyToPath", "mode"),
    ("k8s.io.api.core.v1.ConfigMapKeySelector", "optional"),
    ("k8s.io.api.core.v1.SecretKeySelector", "optional"),
    ("k8s.io.api.core.v1.ConfigMapEnvSource", "optional"),
    ("k8s.io.api.core.v1.SecretEnvSource", "optional"),
    ("k8s.io.api.core.v1.ConfigMap", "immutable"),
    ("k8s.io.api.core.v1.Secret", "immutable"),
    (
        "k8s.io.api.core.v1.ServiceAccount",
        "automountServiceAccountToken",
    ),
    ("k8s.io.api.discovery.v1.EndpointConditions", "ready"),
    ("k8s.io.api.discovery.v1.EndpointConditions", "serving"),
    ("k8s.io.api.discovery.v1.EndpointConditions", "terminating"),
    ("k8s.io.api.discovery.v1.EndpointPort", "port"),
    ("k8s.io.api.networking.v1.NetworkPolicyPort", "endPort"),
    (
        "k8s.io.apimachinery.pkg.apis.meta.v1.DeleteOptions",
        "gracePeriodSeconds",
    ),
    (
        "k8s.io.apimachinery.pkg.apis.meta.v1.DeleteOptions",
        "orphanDependents",
    ),
    (
        "k8s.io.apimachinery.pkg.apis.meta.v1.ObjectMeta",
        "deletionGracePeriodSeconds",
    ),
    (
        "k8s.io.apimachinery.pkg.apis.meta.v1.OwnerReference",
        "controller",
    ),
    (
        "k8s.io.apimachinery.pkg.apis.meta.v1.OwnerReference",
        "blockOwnerDeletion",
    ),
];

/// The proto message of a served kind, by its apiVersion and kind.
pub fn proto_message_for(api_version: &str, kind: &str) -> Option<&'static str> {
    let package = if kind == "DeleteOptions" {
        "k8s.io.apimachinery.pkg.apis.meta.v1"
    } else {
        match api_version {
            "v1" => "k8s.io.api.core.v1",
            "apps/v1" => "k8s.io.api.apps.v1",
            "batch/v1" => "k8s.io.api.batch.v1",
            "discovery.k8s.io/v1" => "k8s.io.api.discovery.v1",
            "networking.k8s.io/v1" => "k8s.io.api.networking.v1",
            "autoscaling/v1" => "k8s.io.api.autoscaling.v1",
            "coordination.k8s.io/v1" => "k8s.io.api.coordination.v1",
            "authentication.k8s.io/v1" => "k8s.io.api.authentication.v1",
            "authorization.k8s.io/v1" => "k8s.io.api.authorization.v1",
            "rbac.authorization.k8s.io/v1" => "k8s.io.api.rbac.v1",
            "scheduling.k8s.io/v1" => "k8s.io.api.scheduling.v1",
            "policy/v1" => "k8s.io.api.policy.v1",
            _ => return None,
        }
    };
    let full = format!("{package}.{kind}");
    schema::message(&full).map(|m| m.name)
}

/// Decodes a whole request body: magic, `runtime.Unknown` envelope, then the object, returned as JSON with
/// `apiVersion` and `kind` set from the envelope.
pub fn decode_envelope(body: &[u8]) -> Result<Value, PbError> {
    let rest = body
        .strip_prefix(MAGIC.as_slice())
        .ok_or(PbError::NoMagic)?;
    let mut api_version = String::new();
    let mut kind = String::new();
    let mut raw: &[u8] = &[];
    let mut encoding = String::new();
    let mut r = Reader::new(rest);
    while !r.at_end() {
        match r.field()? {
            (1, WireValue::Bytes(tm)) => {
                let mut tr = Reader::new(tm);
                while !tr.at_end() {
                    match tr.field()? {
                        (1, WireValue::Bytes(b)) => api_version = utf8(b, "typeMeta.apiVersion")?,
                        (2, WireValue::Bytes(b)) => kind = utf8(b, "typeMeta.kind")?,
                        _ => {}
                    }
                }
            }
            (2, WireValue::Bytes(b)) => raw = b,
            (3, WireValue::Bytes(b)) => encoding = utf8(b, "contentEncoding")?,
            (4, WireValue::Bytes(_)) => {}
            (1..=4, _) => {
                return Err(PbError::WrongType {
                    field: "runtime.Unknown".into(),
                });
            }
            _ => {}
        }
    }
    if !encoding.is_empty() {
        return Err(PbError::ContentEncoding(encoding));
    }
    let message = proto_message_for(&api_version, &kind).ok_or_else(|| PbError::UnknownKind {
        api_version: api_version.clone(),
        kind: kind.clone(),
    })?;
    let mut obj = decode_message(message, raw)?;
    if let Value::Object(m) = &mut obj {
        // apiVersion and kind first, as Kubernetes prints them
        let mut out = Map::new();
        out.insert("apiVersion".into(), Value::String(api_version));
        out.insert("kind".into(), Value::String(kind));
        out.extend(std::mem::take(m));
        *m = out;
    }
    Ok(obj)
}

/// Decodes one message by its full proto name (e.g. `k8s.io.api.apps.v1.Deployment`).
pub fn decode_message(name: &str, buf: &[u8]) -> Result<Value, PbError> {
    let msg = schema::message(name).ok_or_else(|| PbError::UnknownKind {
        api_version: String::new(),
        kind: name.to_string(),
    })?;
    let mut out = Map::new();
    decode_into(msg, buf, &mut out, 0)?;
    Ok(Value::Object(out))
}

fn decode_into(
    msg: &'static Message,
    buf: &[u8],
    out: &mut Map<String, Value>,
    depth: usize,
) -> Result<(), PbError> {
    if depth > MAX_DEPTH {
        return Err(PbError::TooDeep);
    }
    let mut r = Reader::new(buf);
    while !r.at_end() {
        let (tag, value) = r.field()?;
        let Some(field) = msg.field(tag) else {
            continue; // unknown fields are skipped, as protobuf does
        };
        match field.card {
            Card::Single => {
                let v = decode_value(msg, field, value, depth)?;
                match v {
                    Some(v) if !is_unset_zero(msg, field, &v) => {
                        out.insert(field.json.to_string(), v);
                    }
                    // a later zero occurrence still overrides an earlier value (last one wins)
                    _ => {
                        out.remove(field.json);
                    }
                }
            }
            Card::Repeated => {
                let items = repeated_values(msg, field, value, depth)?;
                let entry = out
                    .entry(field.json.to_string())
                    .or_insert_with(|| Value::Array(Vec::new()));
                if let Value::Array(a) = entry {
                    a.extend(items);
                }
            }
            Card::Map => {
                let WireValue::Bytes(b) = value else {
                    return Err(wrong(msg, field));
                };
                let (k, v) = map_entry(msg, field, b, depth)?;
                let entry = out
                    .entry(field.json.to_string())
                    .or_insert_with(|| Value::Object(Map::new()));
                if let Value::Object(m) = entry {
                    m.insert(k, v);
                }
            }
            Card::Inline => {
                let (WireValue::Bytes(b), Kind::Msg(inner)) = (value, field.kind) else {
                    return Err(wrong(msg, field));
                };
                let inner = schema::message(inner).ok_or_else(|| wrong(msg, field))?;
                decode_into(inner, b, out, depth + 1)?;
            }
        }
    }
    Ok(())
}

fn is_unset_zero(msg: &Message, field: &Field, v: &Value) -> bool {
    let zero = match v {
        Value::Bool(b) => !b,
        Value::Number(n) => n.as_f64() == Some(0.0),
        Value::String(s) => s.is_empty(),
        _ => false,
    };
    zero && !KEEP_ZERO
        .iter()
        .any(|(m, f)| *m == msg.name && *f == field.json)
}

fn wrong(msg: &Message, field: &Field) -> PbError {
    PbError::WrongType {
        field: format!("{}.{}", short(msg.name), field.json),
    }
}

fn short(name: &str) -> &str {
    name.rsplit('.').next().unwrap_or(name)
}

fn utf8(b: &[u8], field: &str) -> Result<String, PbError> {
    String::from_utf8(b.to_vec()).map_err(|_| PbError::Utf8 {
        field: field.to_string(),
    })
}

fn repeated_values(
    msg: &'static Message,
    field: &'static Field,
    value: WireValue<'_>,
    depth: usize,
) -> Result<Vec<Value>, PbError> {
    // packed encoding of repeated integers: one length-delimited run of varints
    if let (WireValue::Bytes(b), Kind::I32 | Kind::I64 | Kind::Bool) = (value, field.kind) {
        let mut out = Vec::new();
        let mut r = PackedReader { buf: b, pos: 0 };
        while let Some(v) = r.next_varint()? {
            out.push(scalar_from_varint(field.kind, v));
        }
        return Ok(out);
    }
    // repeated messages keep empty elements: `{}` is a real list entry
    Ok(vec![
        decode_value(msg, field, value, depth)?.unwrap_or(Value::Object(Map::new())),
    ])
}

struct PackedReader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl PackedReader<'_> {
    fn next_varint(&mut self) -> Result<Option<u64>, PbError> {
        if self.pos >= self.buf.len() {
            return Ok(None);
        }
        let mut value = 0u64;
        for i in 0..10 {
            let b = *self.buf.get(self.pos).ok_or(PbError::Truncated)?;
            self.pos += 1;
            value |= u64::from(b & 0x7f) << (7 * i);
            if b & 0x80 == 0 {
                return Ok(Some(value));
            }
        }
        Err(PbError::BadVarint)
    }
}

fn scalar_from_varint(kind: Kind, v: u64) -> Value {
    match kind {
        Kind::Bool => Value::Bool(v != 0),
        // int32 is sign-extended to 64 bits on the wire
        Kind::I32 => Value::from(v as i64 as i32),
        _ => Value::from(v as i64),
    }
}

fn map_entry(
    msg: &'static Message,
    field: &'static Field,
    b: &[u8],
    depth: usize,
) -> Result<(String, Value), PbError> {
    let mut key = String::new();
    let mut val: Option<Value> = None;
    let mut r = Reader::new(b);
    while !r.at_end() {
        match r.field()? {
            (1, WireValue::Bytes(k)) => key = utf8(k, field.json)?,
            (2, v) => val = decode_value(msg, field, v, depth)?,
            _ => {}
        }
    }
    // a missing map value is the zero value of its type
    let val = val.unwrap_or_else(|| match field.kind {
        Kind::Msg(_) => Value::Object(Map::new()),
        Kind::Quantity => Value::String("0".into()),
        _ => Value::String(String::new()),
    });
    Ok((key, val))
}

/// Decodes one occurrence; `None` means "the zero value of a special type" (an empty Time), i.e. unset.
fn decode_value(
    msg: &'static Message,
    field: &'static Field,
    value: WireValue<'_>,
    depth: usize,
) -> Result<Option<Value>, PbError> {
    let bad = || wrong(msg, field);
    Ok(Some(match (field.kind, value) {
        (Kind::Str, WireValue::Bytes(b)) => Value::String(utf8(b, field.json)?),
        (Kind::Bytes, WireValue::Bytes(b)) => {
            Value::String(base64::engine::general_purpose::STANDARD.encode(b))
        }
        (Kind::Bool | Kind::I32 | Kind::I64, WireValue::Varint(v)) => {
            scalar_from_varint(field.kind, v)
        }
        (Kind::F64, WireValue::Fixed64(v)) => serde_json::Number::from_f64(f64::from_bits(v))
            .map(Value::Number)
            .unwrap_or(Value::Null),
        (Kind::Msg(name), WireValue::Bytes(b)) => {
            let inner = schema::message(name).ok_or_else(bad)?;
            let mut m = Map::new();
            decode_into(inner, b, &mut m, depth + 1)?;
            Value::Object(m)
        }
        (Kind::Time, WireValue::Bytes(b)) => return time(b),
        (Kind::Duration, WireValue::Bytes(b)) => {
            let mut nanos = 0i64;
            let mut r = Reader::new(b);
            while !r.at_end() {
                if let (1, WireValue::Varint(v)) = r.field()? {
                    nanos = v as i64;
                }
            }
            Value::String(crate::time::go_duration(nanos))
        }
        (Kind::IntOrString, WireValue::Bytes(b)) => {
            let (mut ty, mut int_val, mut str_val) = (0u64, 0i64, String::new());
            let mut r = Reader::new(b);
            while !r.at_end() {
                match r.field()? {
                    (1, WireValue::Varint(v)) => ty = v,
                    (2, WireValue::Varint(v)) => int_val = i64::from(v as i64 as i32),
                    (3, WireValue::Bytes(s)) => str_val = utf8(s, field.json)?,
                    _ => {}
                }
            }
            if ty == 1 {
                Value::String(str_val)
            } else {
                Value::from(int_val)
            }
        }
        (Kind::Quantity, WireValue::Bytes(b)) => {
            let mut s = String::new();
            let mut r = Reader::new(b);
            while !r.at_end() {
                if let (1, WireValue::Bytes(v)) = r.field()? {
                    s = utf8(v, field.json)?;
                }
            }
            Value::String(s)
        }
        (Kind::RawExtension | Kind::FieldsV1, WireValue::Bytes(b)) => {
            let mut raw: &[u8] = &[];
            let mut r = Reader::new(b);
            while !r.at_end() {
                if let (1, WireValue::Bytes(v)) = r.field()? {
                    raw = v;
                }
            }
            if raw.is_empty() {
                return Ok(None);
            }
            serde_json::from_slice(raw).map_err(|e| PbError::EmbeddedJson {
                field: field.json.to_string(),
                detail: e.to_string(),
            })?
        }
        _ => return Err(bad()),
    }))
}

fn time(b: &[u8]) -> Result<Option<Value>, PbError> {
    let (mut seconds, mut nanos) = (0i64, 0i64);
    let mut r = Reader::new(b);
    while !r.at_end() {
        match r.field()? {
            (1, WireValue::Varint(v)) => seconds = v as i64,
            (2, WireValue::Varint(v)) => nanos = i64::from(v as i64 as i32),
            _ => {}
        }
    }
    if seconds == 0 && nanos == 0 {
        return Ok(None); // Go's zero time: JSON null, i.e. unset
    }
    Ok(crate::time::format_unix(seconds, nanos).map(Value::String))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_message_reference_resolves() {
        for m in super::super::schema_gen::MESSAGES {
            for f in m.fields {
                if let Kind::Msg(n) = f.kind {
                    assert!(schema::message(n).is_some(), "{}.{} -> {n}", m.name, f.json);
                }
            }
        }
        for (m, f) in KEEP_ZERO {
            let msg =
                schema::message(m).unwrap_or_else(|| panic!("KEEP_ZERO names unknown message {m}"));
            assert!(
                msg.fields.iter().any(|x| x.json == *f),
                "KEEP_ZERO names unknown field {m}.{f}"
            );
        }
    }

    #[test]
    fn messages_are_sorted_for_binary_search() {
        let names: Vec<_> = super::super::schema_gen::MESSAGES
            .iter()
            .map(|m| m.name)
            .collect();
        let mut sorted = names.clone();
        sorted.sort_unstable();
        assert_eq!(names, sorted);
    }
}
