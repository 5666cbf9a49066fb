//! Building responses: JSON/YAML bodies, Status errors, warnings.

use axum::body::Body;
use axum::http::{HeaderValue, Response, StatusCode, header};
use podnet_apimachinery::{ApiError, yaml};
use serde_json::Value;

use super::negotiate::Format;

pub type Resp = Response<Body>;

fn base(status: u16, content_type: &'static str, body: Body) -> Resp {
    let mut r = Response::new(body);
    *r.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("no-cache, private"),
    );
    r
}

/// Serialized JSON bytes.
pub fn json_bytes(status: u16, bytes: impl Into<Body>) -> Resp {
    base(status, "application/json", bytes.into())
}

pub fn json(status: u16, v: &Value) -> Resp {
    json_bytes(
        status,
        serde_json::to_vec(v).expect("JSON value serializes"),
    )
}

/// A JSON or YAML body per the negotiated format (Tables are built by the caller).
pub fn object(status: u16, format: Format, bytes: impl AsRef<[u8]>) -> Resp {
    match format {
        Format::Yaml => match serde_json::from_slice::<Value>(bytes.as_ref())
            .ok()
            .and_then(|v| yaml::to_string(&v).ok())
        {
            Some(y) => base(status, "application/yaml", Body::from(y)),
            None => json_bytes(status, bytes.as_ref().to_vec()),
        },
        _ => json_bytes(status, bytes.as_ref().to_vec()),
    }
}

pub fn error(e: &ApiError) -> Resp {
    json(e.code, &e.to_status())
}

pub fn text(status: u16, body: impl Into<Body>) -> Resp {
    base(status, "text/plain; charset=utf-8", body.into())
}

/// Adds `Warning: 299 - "..."` headers, as the API server does for unknown fields under `Warn`.
pub fn with_warnings(mut r: Resp, warnings: &[String]) -> Resp {
    for w in warnings {
        let v = format!("299 - {:?}", w);
        if let Ok(h) = HeaderValue::from_str(&v) {
            r.headers_mut().append(header::WARNING, h);
        }
    }
    r
}
