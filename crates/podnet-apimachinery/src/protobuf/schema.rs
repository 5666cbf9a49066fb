//! The shape of the generated wire schema (`schema_gen.rs`).

/// How often a field occurs in its message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Card {
    /// At most once (the last occurrence wins, as in protobuf).
    Single,
    /// A JSON array.
    Repeated,
    /// A JSON object: proto map entries `{1: key, 2: value}`.
    Map,
    /// A Go struct embedded with `json:",inline"`: its fields are merged into the parent object.
    Inline,
}

/// The wire type a field decodes to. Some kinds occur only in messages outside the current root set;
/// the decoder still handles them so that widening the roots needs no code change.
#[allow(dead_code)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Str,
    Bool,
    I32,
    I64,
    F64,
    /// Base64 in JSON (Secret data, ConfigMap binaryData).
    Bytes,
    /// A nested message, by full proto name.
    Msg(&'static str),
    /// `meta.v1.Time` / `MicroTime`: `{1: seconds, 2: nanos}` -> RFC 3339 string.
    Time,
    /// `meta.v1.Duration`: `{1: duration int64 nanoseconds}` -> Go duration string.
    Duration,
    /// `intstr.IntOrString`: `{1: type, 2: intVal, 3: strVal}` -> number or string.
    IntOrString,
    /// `resource.Quantity`: `{1: string}` -> string.
    Quantity,
    /// `runtime.RawExtension`: `{1: raw JSON bytes}` -> embedded JSON.
    RawExtension,
    /// `meta.v1.FieldsV1`: `{1: raw JSON bytes}` -> embedded JSON.
    FieldsV1,
}

#[derive(Debug)]
pub(crate) struct Field {
    pub tag: u32,
    pub json: &'static str,
    pub card: Card,
    pub kind: Kind,
}

#[derive(Debug)]
pub(crate) struct Message {
    pub name: &'static str,
    pub fields: &'static [Field],
}

/// Finds a message by its full proto name.
pub(crate) fn message(name: &str) -> Option<&'static Message> {
    let all = super::schema_gen::MESSAGES;
    all.binary_search_by(|m| m.name.cmp(name))
        .ok()
        .map(|i| &all[i])
}

impl Message {
    pub(crate) fn field(&self, tag: u32) -> Option<&'static Field> {
        self.fields.iter().find(|f| f.tag == tag)
    }
}
