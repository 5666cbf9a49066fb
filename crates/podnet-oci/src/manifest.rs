//! Manifests, indexes and image configs: OCI and Docker schema 2, decoded into `oci-spec` types.
//!
//! Docker's schema-2 manifest and manifest list have the same JSON shape as OCI's image manifest and index
//! (only the media types differ), so one set of types reads both. Schema 1 (signed, pre-2017) is refused.

use oci_spec::image::{Descriptor, ImageConfiguration, ImageIndex, ImageManifest};

use crate::digest::Digest;

pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
pub const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
pub const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
pub const DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";
const DOCKER_SCHEMA1: &str = "application/vnd.docker.distribution.manifest.v1";

/// The `Accept` header for manifest requests: every kind we can read.
pub const ACCEPT_MANIFESTS: &str = "application/vnd.oci.image.index.v1+json, application/vnd.docker.distribution.manifest.list.v2+json, application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json";

/// The annotation (or config label) that marks an image as a stand-in for an upstream image.
pub const SUBSTITUTE_KEY: &str = "io.podnet.image.substitute-for";

/// What a manifest request returned.
#[derive(Debug, Clone)]
#[allow(clippy::large_enum_variant)] // one per request, moved once: boxing buys nothing
pub enum Decoded {
    Image(ImageManifest),
    Index(ImageIndex),
}

#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    #[error("unsupported manifest type {0} (Docker schema 1 images are refused; re-push them)")]
    Schema1(String),
    #[error("unsupported manifest media type {0:?}")]
    MediaType(String),
    #[error("malformed manifest: {0}")]
    Json(String),
    #[error("no {0} image in the index (it has: {1})")]
    NoPlatform(Platform, String),
    #[error("layer media type {0:?} is not a tar layer podnet can unpack")]
    LayerType(String),
    #[error("descriptor digest {0:?}: {1}")]
    Digest(String, String),
}

#[derive(serde::Deserialize)]
struct Probe {
    #[serde(rename = "mediaType")]
    media_type: Option<String>,
    #[serde(rename = "schemaVersion")]
    schema_version: Option<u32>,
    manifests: Option<serde_json::Value>,
    layers: Option<serde_json::Value>,
}

/// Decode a manifest or index. `content_type` is the HTTP `Content-Type` (if any); the document's own
/// `mediaType` wins, then the header, then its shape (`manifests` vs `layers`).
pub fn decode(content_type: Option<&str>, bytes: &[u8]) -> Result<Decoded, ManifestError> {
    let probe: Probe =
        serde_json::from_slice(bytes).map_err(|e| ManifestError::Json(e.to_string()))?;
    let header = content_type
        .map(|c| c.split(';').next().unwrap_or("").trim())
        .filter(|c| !c.is_empty() && *c != "application/json" && *c != "text/plain");
    let kind = probe.media_type.as_deref().or(header);
    if probe.schema_version == Some(1) || kind.is_some_and(|k| k.starts_with(DOCKER_SCHEMA1)) {
        return Err(ManifestError::Schema1(
            kind.unwrap_or("schemaVersion 1").to_string(),
        ));
    }
    let is_index = match kind {
        Some(OCI_INDEX) | Some(DOCKER_LIST) => true,
        Some(OCI_MANIFEST) | Some(DOCKER_MANIFEST) => false,
        Some(other) => return Err(ManifestError::MediaType(other.to_string())),
        None => probe.manifests.is_some() && probe.layers.is_none(),
    };
    let json = |e: serde_json::Error| ManifestError::Json(e.to_string());
    Ok(if is_index {
        Decoded::Index(serde_json::from_slice(bytes).map_err(json)?)
    } else {
        Decoded::Image(serde_json::from_slice(bytes).map_err(json)?)
    })
}

/// An OS/architecture pair (with an optional variant), as `linux/amd64` or `linux/arm/v7`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Platform {
    pub os: String,
    pub architecture: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
}

impl Platform {
    /// What the lab's nodes run.
    pub fn linux_amd64() -> Platform {
        Platform {
            os: "linux".into(),
            architecture: "amd64".into(),
            variant: None,
        }
    }
    fn of(d: &Descriptor) -> Option<Platform> {
        d.platform().as_ref().map(|p| Platform {
            os: p.os().to_string(),
            architecture: p.architecture().to_string(),
            variant: p.variant().clone(),
        })
    }
}

impl std::fmt::Display for Platform {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)?;
        if let Some(v) = &self.variant {
            write!(f, "/{v}")?;
        }
        Ok(())
    }
}

/// Pick the manifest for `want` from an index. A wanted variant must match; when none is wanted, the
/// first entry of the os/architecture wins (indexes list the preferred variant first). Attestation
/// manifests (`unknown/unknown`) never match.
pub fn select<'a>(index: &'a ImageIndex, want: &Platform) -> Result<&'a Descriptor, ManifestError> {
    let found = index.manifests().iter().find(|d| match Platform::of(d) {
        Some(p) => {
            p.os == want.os
                && p.architecture == want.architecture
                && (want.variant.is_none() || p.variant == want.variant)
        }
        None => false,
    });
    found.ok_or_else(|| {
        let have: Vec<String> = index
            .manifests()
            .iter()
            .map(|d| Platform::of(d).map_or("no platform".to_string(), |p| p.to_string()))
            .collect();
        ManifestError::NoPlatform(want.clone(), have.join(", "))
    })
}

/// How a layer blob is compressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Compression {
    None,
    Gzip,
    Zstd,
}

/// The compression of a layer from its media type (OCI and Docker, distributable or not).
pub fn layer_compression(media_type: &str) -> Result<Compression, ManifestError> {
    Ok(match media_type {
        "application/vnd.oci.image.layer.v1.tar"
        | "application/vnd.oci.image.layer.nondistributable.v1.tar"
        | "application/vnd.docker.image.rootfs.diff.tar" => Compression::None,
        "application/vnd.oci.image.layer.v1.tar+gzip"
        | "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip"
        | "application/vnd.docker.image.rootfs.diff.tar.gzip"
        | "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip" => Compression::Gzip,
        "application/vnd.oci.image.layer.v1.tar+zstd"
        | "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd"
        | "application/vnd.docker.image.rootfs.diff.tar.zstd" => Compression::Zstd,
        other => return Err(ManifestError::LayerType(other.to_string())),
    })
}

/// The compression of a blob from its first bytes (docker-archive layers carry no media type).
pub fn sniff_compression(head: &[u8]) -> Compression {
    if head.starts_with(&[0x1f, 0x8b]) {
        Compression::Gzip
    } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        Compression::Zstd
    } else {
        Compression::None
    }
}

/// The digest a descriptor names, validated.
pub fn descriptor_digest(d: &Descriptor) -> Result<Digest, ManifestError> {
    let s = d.digest().to_string();
    s.parse()
        .map_err(|e: crate::digest::DigestError| ManifestError::Digest(s, e.reason.to_string()))
}

/// Decode an image config (OCI or Docker; Docker's extra fields are ignored).
pub fn decode_config(bytes: &[u8]) -> Result<ImageConfiguration, ManifestError> {
    serde_json::from_slice(bytes).map_err(|e| ManifestError::Json(format!("image config: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn d(n: u8) -> String {
        Digest::sha256_of(&[n]).to_string()
    }

    fn index(entries: &[(&str, &str, Option<&str>)], media: &str) -> String {
        let manifests: Vec<serde_json::Value> = entries
            .iter()
            .enumerate()
            .map(|(i, (os, arch, variant))| {
                let mut p = serde_json::json!({"os": os, "architecture": arch});
                if let Some(v) = variant {
                    p["variant"] = (*v).into();
                }
                serde_json::json!({"mediaType": OCI_MANIFEST, "digest": d(i as u8), "size": 100, "platform": p})
            })
            .collect();
        serde_json::json!({"schemaVersion": 2, "mediaType": media, "manifests": manifests})
            .to_string()
    }

    #[test]
    fn docker_manifest_decodes() {
        let m = serde_json::json!({
            "schemaVersion": 2, "mediaType": DOCKER_MANIFEST,
            "config": {"mediaType": DOCKER_CONFIG, "size": 10, "digest": d(1)},
            "layers": [{"mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip", "size": 5, "digest": d(2)}]
        });
        let Decoded::Image(m) = decode(None, m.to_string().as_bytes()).unwrap() else {
            panic!("not an image manifest")
        };
        assert_eq!(m.layers().len(), 1);
        assert_eq!(
            layer_compression(m.layers()[0].media_type().as_ref()).unwrap(),
            Compression::Gzip
        );
    }

    #[test]
    fn index_selects_linux_amd64_skipping_attestations() {
        let body = index(
            &[
                ("unknown", "unknown", None),
                ("linux", "arm64", Some("v8")),
                ("linux", "amd64", None),
            ],
            DOCKER_LIST,
        );
        let Decoded::Index(i) = decode(Some(DOCKER_LIST), body.as_bytes()).unwrap() else {
            panic!("not an index")
        };
        let picked = select(&i, &Platform::linux_amd64()).unwrap();
        assert_eq!(picked.digest().to_string(), d(2));
        let err = select(
            &i,
            &Platform {
                os: "linux".into(),
                architecture: "s390x".into(),
                variant: None,
            },
        )
        .unwrap_err();
        assert!(err.to_string().contains("linux/arm64/v8"), "{err}");
    }

    #[test]
    fn schema1_is_refused_by_name() {
        let e = decode(None, br#"{"schemaVersion":1,"name":"x","fsLayers":[]}"#).unwrap_err();
        assert!(matches!(e, ManifestError::Schema1(_)));
    }

    #[test]
    fn shape_decides_without_media_type() {
        let body = r#"{"schemaVersion":2,"manifests":[]}"#;
        assert!(matches!(
            decode(Some("application/json"), body.as_bytes()).unwrap(),
            Decoded::Index(_)
        ));
    }

    proptest! {
        #[test]
        fn decode_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
            let _ = decode(None, &bytes);
        }

        #[test]
        fn decode_never_panics_on_json_shapes(
            media in prop::option::of(prop_oneof![Just(OCI_INDEX), Just(OCI_MANIFEST), Just(DOCKER_LIST), Just("x/y")]),
            schema in prop::option::of(0u32..3),
            n in 0usize..4,
            os in "[a-z]{0,6}", arch in "[a-z0-9]{0,6}",
        ) {
            let mut v = serde_json::json!({"manifests": (0..n).map(|i| serde_json::json!({
                "mediaType": OCI_MANIFEST, "digest": d(i as u8), "size": i, "platform": {"os": os, "architecture": arch}
            })).collect::<Vec<_>>()});
            if let Some(m) = media { v["mediaType"] = m.into(); }
            if let Some(s) = schema { v["schemaVersion"] = s.into(); }
            if let Ok(Decoded::Index(i)) = decode(None, v.to_string().as_bytes()) {
                let _ = select(&i, &Platform::linux_amd64());
            }
        }
    }
}
