//! Content negotiation: what a response is rendered as (Accept) and how a request body is read
//! (Content-Type).

use podnet_apimachinery::{ApiError, protobuf, yaml};
use serde_json::Value;

/// How to render a response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Json,
    Yaml,
    /// `meta.k8s.io` Table, in version `v1` or `v1beta1`.
    Table(&'static str),
    /// `meta.k8s.io/v1` PartialObjectMetadata(List).
    Metadata,
}

struct MediaType<'a> {
    essence: &'a str,
    params: Vec<(&'a str, &'a str)>,
}

fn media_types(h: &str) -> Vec<MediaType<'_>> {
    h.split(',')
        .map(|part| {
            let mut it = part.split(';');
            let essence = it.next().unwrap_or("").trim();
            let params = it
                .filter_map(|p| p.split_once('='))
                .map(|(k, v)| (k.trim(), v.trim()))
                .collect();
            MediaType { essence, params }
        })
        .collect()
}

/// Picks the response format from an Accept header, in the client's order of preference.
/// `allow_table` is false for requests whose answer cannot be a Table (writes).
pub fn response_format(accept: Option<&str>, allow_table: bool) -> Result<Format, ApiError> {
    let Some(accept) = accept.filter(|a| !a.trim().is_empty()) else {
        return Ok(Format::Json);
    };
    for mt in media_types(accept) {
        let param = |k: &str| mt.params.iter().find(|(pk, _)| *pk == k).map(|(_, v)| *v);
        match mt.essence {
            "application/json" | "application/yaml" => {
                match (param("as"), param("g"), param("v")) {
                    (Some("Table"), Some("meta.k8s.io"), Some(v @ ("v1" | "v1beta1"))) => {
                        if allow_table {
                            return Ok(Format::Table(if v == "v1" { "v1" } else { "v1beta1" }));
                        }
                        continue;
                    }
                    (
                        Some("PartialObjectMetadata" | "PartialObjectMetadataList"),
                        Some("meta.k8s.io"),
                        Some("v1"),
                    ) => {
                        if allow_table {
                            return Ok(Format::Metadata);
                        }
                        continue;
                    }
                    (Some(_), _, _) => continue,
                    _ => {}
                }
                return Ok(if mt.essence == "application/yaml" {
                    Format::Yaml
                } else {
                    Format::Json
                });
            }
            "*/*" | "application/*" => return Ok(Format::Json),
            _ => continue,
        }
    }
    Err(ApiError::not_acceptable(accept))
}

/// The kind of a request body, from its Content-Type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyType {
    Json,
    Yaml,
    Protobuf,
}

pub fn body_type(content_type: Option<&str>) -> Result<BodyType, ApiError> {
    let ct = content_type
        .unwrap_or("")
        .split(';')
        .next()
        .unwrap_or("")
        .trim();
    match ct {
        "" | "application/json" => Ok(BodyType::Json),
        "application/yaml" => Ok(BodyType::Yaml),
        "application/vnd.kubernetes.protobuf" => Ok(BodyType::Protobuf),
        other => Err(ApiError::unsupported_media_type(other)),
    }
}

/// Decodes a request body into a JSON value. `kind`/`version` word the errors.
pub fn decode_body(
    bt: BodyType,
    body: &[u8],
    kind: &str,
    version: &str,
) -> Result<Value, ApiError> {
    match bt {
        BodyType::Json => {
            if body.iter().all(u8::is_ascii_whitespace) {
                return Err(ApiError::bad_request("Object 'Kind' is missing in ''"));
            }
            serde_json::from_slice(body).map_err(|e| {
                ApiError::bad_request(format!(
                    "couldn't get version/kind; json parse error: {}",
                    json_error(&e)
                ))
            })
        }
        BodyType::Yaml => yaml::from_slice(body)
            .map_err(|e| ApiError::bad_request(format!("error converting YAML to JSON: {}", e.0))),
        BodyType::Protobuf => protobuf::decode_envelope(body)
            .map_err(|e| ApiError::decode(kind, version, &format!("protobuf: {e}"))),
    }
}

fn json_error(e: &serde_json::Error) -> String {
    if e.is_eof() {
        "unexpected end of JSON input".into()
    } else {
        e.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accept_headers() {
        let table = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json";
        assert_eq!(
            response_format(Some(table), true).unwrap(),
            Format::Table("v1")
        );
        assert_eq!(response_format(Some(table), false).unwrap(), Format::Json);
        assert_eq!(
            response_format(
                Some("application/vnd.kubernetes.protobuf,application/json"),
                true
            )
            .unwrap(),
            Format::Json
        );
        assert_eq!(
            response_format(Some("application/yaml"), true).unwrap(),
            Format::Yaml
        );
        assert_eq!(response_format(None, true).unwrap(), Format::Json);
        assert_eq!(
            response_format(Some("application/json, */*"), true).unwrap(),
            Format::Json
        );
        assert!(response_format(Some("application/vnd.kubernetes.protobuf"), true).is_err());
        assert!(response_format(Some("text/html"), true).is_err());
    }

    #[test]
    fn content_types() {
        assert_eq!(
            body_type(Some("application/json; charset=utf-8")).unwrap(),
            BodyType::Json
        );
        assert!(body_type(Some("text/plain")).is_err());
        assert!(decode_body(BodyType::Json, b"{\"a\":", "Pod", "v1").is_err());
        assert!(decode_body(BodyType::Protobuf, b"nope", "Pod", "v1").is_err());
    }
}
