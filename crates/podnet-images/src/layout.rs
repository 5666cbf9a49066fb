//! OCI image layouts written by hand: content-addressed blobs, image configs, manifests and the
//! index naming each image (`org.opencontainers.image.ref.name` = the full reference, as containerd's
//! exports do; skopeo's `oci:DIR:REF` finds it by that).
//!
//! Every JSON document is written canonically (keys sorted, no whitespace): oci-spec keeps
//! annotations and labels in hash maps, whose order would otherwise change the digests from run to
//! run.

use crate::digest::Digest;
use crate::error::{Error, Result, io_at, oci};
use crate::recipe::RunConfig;
use crate::tarball::Layer;
use oci_spec::image::{
    Arch, ConfigBuilder, DescriptorBuilder, HistoryBuilder, ImageConfigurationBuilder, ImageIndex,
    ImageIndexBuilder, ImageManifestBuilder, MediaType, Os, PlatformBuilder, RootFsBuilder,
};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

pub const REF_NAME: &str = "org.opencontainers.image.ref.name";
const CONTAINERD_NAME: &str = "io.containerd.image.name";

/// Serialises `value` with object keys sorted and no whitespace.
pub fn canonical_json<T: serde::Serialize>(value: &T) -> Vec<u8> {
    fn write(v: &Value, out: &mut Vec<u8>) {
        match v {
            Value::Object(map) => {
                let mut keys: Vec<&String> = map.keys().collect();
                keys.sort();
                out.push(b'{');
                for (i, k) in keys.into_iter().enumerate() {
                    if i > 0 {
                        out.push(b',');
                    }
                    out.extend(serde_json::to_vec(k).expect("string serialises"));
                    out.push(b':');
                    write(&map[k], out);
                }
                out.push(b'}');
            }
            Value::Array(items) => {
                out.push(b'[');
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        out.push(b',');
                    }
                    write(item, out);
                }
                out.push(b']');
            }
            scalar => out.extend(serde_json::to_vec(scalar).expect("scalar serialises")),
        }
    }
    let value = serde_json::to_value(value).expect("OCI documents serialise");
    let mut out = Vec::new();
    write(&value, &mut out);
    out
}

/// One history line per layer: what made it.
#[derive(Debug, Clone)]
pub struct LayerInfo {
    pub layer: Layer,
    pub created_by: String,
}

/// The image configuration: how it runs, its layers' diff ids, labels, history.
pub fn image_config(
    run: &RunConfig,
    layers: &[LayerInfo],
    labels: &BTreeMap<String, String>,
    created: &str,
) -> Result<Vec<u8>> {
    let what = "build the image configuration";
    let strings = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    let mut config = ConfigBuilder::default();
    if !run.entrypoint.is_empty() {
        config = config.entrypoint(strings(run.entrypoint));
    }
    if !run.cmd.is_empty() {
        config = config.cmd(strings(run.cmd));
    }
    if !run.env.is_empty() {
        config = config.env(strings(run.env));
    }
    if !run.exposed_ports.is_empty() {
        config = config.exposed_ports(strings(run.exposed_ports));
    }
    if let Some(dir) = run.working_dir {
        config = config.working_dir(dir.to_string());
    }
    if let Some(sig) = run.stop_signal {
        config = config.stop_signal(sig.to_string());
    }
    if let Some(user) = run.user {
        config = config.user(user.to_string());
    }
    if !labels.is_empty() {
        config = config.labels(
            labels
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect::<std::collections::HashMap<_, _>>(),
        );
    }
    let config = config.build().map_err(oci(what))?;
    let rootfs = RootFsBuilder::default()
        .typ("layers")
        .diff_ids(
            layers
                .iter()
                .map(|l| l.layer.diff_id.to_string())
                .collect::<Vec<_>>(),
        )
        .build()
        .map_err(oci(what))?;
    let history = layers
        .iter()
        .map(|l| {
            HistoryBuilder::default()
                .created(created.to_string())
                .created_by(l.created_by.clone())
                .build()
                .map_err(oci(what))
        })
        .collect::<Result<Vec<_>>>()?;
    let image = ImageConfigurationBuilder::default()
        .architecture(Arch::Amd64)
        .os(Os::Linux)
        .created(created.to_string())
        .config(config)
        .rootfs(rootfs)
        .history(history)
        .build()
        .map_err(oci(what))?;
    Ok(canonical_json(&image))
}

fn oci_digest(d: &Digest) -> Result<oci_spec::image::Digest> {
    d.as_str().parse().map_err(oci(format!("digest {d}")))
}

/// The image manifest for a config blob and layers, with `annotations`.
pub fn manifest(
    config: (&Digest, u64),
    layers: &[Layer],
    annotations: &BTreeMap<String, String>,
) -> Result<Vec<u8>> {
    let what = "build the image manifest";
    let config = DescriptorBuilder::default()
        .media_type(MediaType::ImageConfig)
        .digest(oci_digest(config.0)?)
        .size(config.1)
        .build()
        .map_err(oci(what))?;
    let layers = layers
        .iter()
        .map(|l| {
            DescriptorBuilder::default()
                .media_type(MediaType::ImageLayerGzip)
                .digest(oci_digest(&l.digest)?)
                .size(l.size)
                .build()
                .map_err(oci(what))
        })
        .collect::<Result<Vec<_>>>()?;
    let manifest = ImageManifestBuilder::default()
        .schema_version(2u32)
        .media_type(MediaType::ImageManifest)
        .config(config)
        .layers(layers)
        .annotations(
            annotations
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect::<std::collections::HashMap<_, _>>(),
        )
        .build()
        .map_err(oci(what))?;
    Ok(canonical_json(&manifest))
}

/// An image named in the layout's index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Named {
    pub reference: String,
    pub manifest: Digest,
    pub size: u64,
}

/// An OCI image layout directory being written.
pub struct Layout {
    root: PathBuf,
}

impl Layout {
    /// Opens (creating if needed) the layout at `root`.
    pub fn create(root: &Path) -> Result<Layout> {
        let blobs = root.join("blobs/sha256");
        fs::create_dir_all(&blobs).map_err(io_at("create", &blobs))?;
        let marker = root.join("oci-layout");
        if !marker.exists() {
            write_atomic(&marker, br#"{"imageLayoutVersion":"1.0.0"}"#)?;
        }
        Ok(Layout {
            root: root.to_path_buf(),
        })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn blob_path(&self, digest: &Digest) -> PathBuf {
        self.root.join("blobs/sha256").join(digest.hex())
    }

    /// Stores `bytes` as a blob; returns its digest and size.
    pub fn put_bytes(&self, bytes: &[u8]) -> Result<(Digest, u64)> {
        let digest = Digest::of(bytes);
        let path = self.blob_path(&digest);
        if !path.exists() {
            write_atomic(&path, bytes)?;
        }
        Ok((digest, bytes.len() as u64))
    }

    /// Stores the file at `src` (whose digest is `digest`) as a blob: a hard link when the cache is on
    /// the same file system, a copy otherwise.
    pub fn put_file(&self, src: &Path, digest: &Digest) -> Result<()> {
        let path = self.blob_path(digest);
        if path.exists() {
            return Ok(());
        }
        let tmp = tmp_name(&path);
        let _ = fs::remove_file(&tmp);
        if fs::hard_link(src, &tmp).is_err() {
            fs::copy(src, &tmp).map_err(io_at("copy", src))?;
        }
        fs::rename(&tmp, &path).map_err(io_at("publish", &path))
    }

    /// Replaces the index with exactly `images` (sorted by reference), then removes blobs no image
    /// in it uses. Returns how many blobs were removed.
    pub fn write_index(&self, images: &[Named]) -> Result<usize> {
        let what = "build the layout index";
        let mut sorted = images.to_vec();
        sorted.sort_by(|a, b| a.reference.cmp(&b.reference));
        let manifests = sorted
            .iter()
            .map(|n| {
                DescriptorBuilder::default()
                    .media_type(MediaType::ImageManifest)
                    .digest(oci_digest(&n.manifest)?)
                    .size(n.size)
                    .platform(
                        PlatformBuilder::default()
                            .architecture(Arch::Amd64)
                            .os(Os::Linux)
                            .build()
                            .map_err(oci(what))?,
                    )
                    .annotations(
                        [
                            (REF_NAME.to_string(), n.reference.clone()),
                            (CONTAINERD_NAME.to_string(), n.reference.clone()),
                        ]
                        .into_iter()
                        .collect::<std::collections::HashMap<_, _>>(),
                    )
                    .build()
                    .map_err(oci(what))
            })
            .collect::<Result<Vec<_>>>()?;
        let index = ImageIndexBuilder::default()
            .schema_version(2u32)
            .media_type(MediaType::ImageIndex)
            .manifests(manifests)
            .build()
            .map_err(oci(what))?;
        write_atomic(&self.root.join("index.json"), &canonical_json(&index))?;
        self.gc(&sorted)
    }

    /// Removes blobs that none of `images` references (manifests, configs, layers).
    fn gc(&self, images: &[Named]) -> Result<usize> {
        let mut keep: BTreeSet<String> = BTreeSet::new();
        for n in images {
            keep.insert(n.manifest.hex().to_string());
            let path = self.blob_path(&n.manifest);
            let m: Value = serde_json::from_slice(&fs::read(&path).map_err(io_at("read", &path))?)
                .map_err(oci(format!("parse manifest {}", n.manifest)))?;
            let descriptors =
                std::iter::once(&m["config"]).chain(m["layers"].as_array().into_iter().flatten());
            for d in descriptors {
                if let Some(hex) = d["digest"].as_str().and_then(|s| s.strip_prefix("sha256:")) {
                    keep.insert(hex.to_string());
                }
            }
        }
        let dir = self.root.join("blobs/sha256");
        let mut removed = 0;
        for entry in fs::read_dir(&dir).map_err(io_at("list", &dir))?.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if !keep.contains(&name) {
                fs::remove_file(entry.path()).map_err(io_at("remove", &entry.path()))?;
                removed += 1;
            }
        }
        Ok(removed)
    }
}

/// The images named in the layout at `root`: (reference, manifest digest), sorted.
pub fn read_index(root: &Path) -> Result<Vec<Named>> {
    let path = root.join("index.json");
    let index = ImageIndex::from_file(&path).map_err(oci(format!("read {}", path.display())))?;
    let mut out = Vec::new();
    for d in index.manifests() {
        let Some(name) = d.annotations().as_ref().and_then(|a| a.get(REF_NAME)) else {
            continue;
        };
        let manifest = Digest::parse(d.digest().as_ref()).ok_or_else(|| Error::Oci {
            what: format!("read {}", path.display()),
            detail: format!("{name}: digest {} is not sha256", d.digest()),
        })?;
        out.push(Named {
            reference: name.clone(),
            manifest,
            size: d.size(),
        });
    }
    out.sort_by(|a, b| a.reference.cmp(&b.reference));
    Ok(out)
}

fn tmp_name(path: &Path) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(format!(".tmp-{}", std::process::id()));
    path.with_file_name(name)
}

/// Writes `bytes` to `path` through a temporary file and a rename: readers see the old or the new.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let tmp = tmp_name(path);
    let mut f = fs::File::create(&tmp).map_err(io_at("create", &tmp))?;
    f.write_all(bytes)
        .and_then(|_| f.sync_all())
        .map_err(io_at("write", &tmp))?;
    fs::rename(&tmp, path).map_err(io_at("replace", path))
}

/// RFC 3339 (UTC, seconds) of a Unix time: the images' `created`.
pub fn rfc3339(unix: u64) -> String {
    let days = (unix / 86_400) as i64;
    let secs = unix % 86_400;
    // Howard Hinnant's days-to-civil.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        secs / 3600,
        secs % 3600 / 60,
        secs % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_json_sorts_keys_at_every_depth() {
        let v = serde_json::json!({"b": 1, "a": {"d": [{"z": 1, "y": 2}], "c": "x"}});
        assert_eq!(
            String::from_utf8(canonical_json(&v)).unwrap(),
            r#"{"a":{"c":"x","d":[{"y":2,"z":1}]},"b":1}"#
        );
    }

    #[test]
    fn rfc3339_of_known_times() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(1_767_225_600), "2026-01-01T00:00:00Z");
        assert_eq!(rfc3339(951_827_696), "2000-02-29T12:34:56Z");
    }

    fn layer(n: u8) -> Layer {
        Layer {
            digest: Digest::of(&[n]),
            diff_id: Digest::of(&[n, n]),
            size: 10 + n as u64,
        }
    }

    #[test]
    fn config_and_manifest_are_the_same_bytes_every_time() {
        let run = RunConfig {
            cmd: &["nginx", "-g", "daemon off;"],
            env: &["PATH=/usr/bin"],
            exposed_ports: &["80/tcp", "443/tcp"],
            ..Default::default()
        };
        let labels: BTreeMap<String, String> = (0..20)
            .map(|i| (format!("label.{i}"), format!("v{i}")))
            .collect();
        let layers = vec![
            LayerInfo {
                layer: layer(1),
                created_by: "base".into(),
            },
            LayerInfo {
                layer: layer(2),
                created_by: "nginx".into(),
            },
        ];
        let first = image_config(&run, &layers, &labels, "2026-01-01T00:00:00Z").unwrap();
        for _ in 0..5 {
            // Hash maps inside oci-spec iterate in a new order in every process and map: the
            // canonical form hides that.
            assert_eq!(
                image_config(&run, &layers, &labels, "2026-01-01T00:00:00Z").unwrap(),
                first
            );
        }
        let cfg: Value = serde_json::from_slice(&first).unwrap();
        assert_eq!(cfg["architecture"], "amd64");
        assert_eq!(cfg["config"]["Labels"]["label.7"], "v7");
        assert_eq!(
            cfg["config"]["ExposedPorts"]["80/tcp"],
            serde_json::json!({})
        );
        assert_eq!(
            cfg["rootfs"]["diff_ids"][1],
            layers[1].layer.diff_id.as_str()
        );
        assert_eq!(cfg["history"][1]["created_by"], "nginx");

        let (cd, cs) = (Digest::of(&first), first.len() as u64);
        let ann = labels.clone();
        let m1 = manifest((&cd, cs), &[layer(1), layer(2)], &ann).unwrap();
        let m2 = manifest((&cd, cs), &[layer(1), layer(2)], &ann).unwrap();
        assert_eq!(m1, m2);
        let m: Value = serde_json::from_slice(&m1).unwrap();
        assert_eq!(m["mediaType"], "application/vnd.oci.image.manifest.v1+json");
        assert_eq!(m["config"]["digest"], cd.as_str());
        assert_eq!(
            m["layers"][0]["mediaType"],
            "application/vnd.oci.image.layer.v1.tar+gzip"
        );
        assert_eq!(m["annotations"]["label.3"], "v3");
    }

    #[test]
    fn the_index_names_images_and_gc_keeps_only_what_they_use() {
        let dir = std::env::temp_dir().join(format!("pnt-layout-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        let layout = Layout::create(&dir).unwrap();
        let (ld, _) = layout.put_bytes(b"layer bytes").unwrap();
        let (cd, cs) = layout.put_bytes(b"{}").unwrap();
        let (stale, _) = layout.put_bytes(b"left from an older build").unwrap();
        let l = Layer {
            digest: ld.clone(),
            diff_id: ld.clone(),
            size: 11,
        };
        let m = manifest((&cd, cs), &[l], &BTreeMap::new()).unwrap();
        let (md, ms) = layout.put_bytes(&m).unwrap();
        let images = [
            Named {
                reference: "docker.io/library/nginx:latest".into(),
                manifest: md.clone(),
                size: ms,
            },
            Named {
                reference: "docker.io/library/nginx:alpine".into(),
                manifest: md.clone(),
                size: ms,
            },
        ];
        assert_eq!(layout.write_index(&images).unwrap(), 1);
        assert!(!layout.blob_path(&stale).exists());
        assert!(layout.blob_path(&ld).exists() && layout.blob_path(&cd).exists());
        let read = read_index(&dir).unwrap();
        assert_eq!(read.len(), 2);
        assert_eq!(read[0].reference, "docker.io/library/nginx:alpine");
        assert_eq!(read[1].manifest, md);
        assert_eq!(
            fs::read_to_string(dir.join("oci-layout")).unwrap(),
            r#"{"imageLayoutVersion":"1.0.0"}"#
        );
        fs::remove_dir_all(&dir).unwrap();
    }
}
