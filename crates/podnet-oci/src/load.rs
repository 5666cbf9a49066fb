//! `image load`: OCI image layout archives (`skopeo copy ... oci-archive:`, `docker save` since Docker 25)
//! and docker-archive tars (`docker save`, `skopeo copy ... docker-archive:`).
//!
//! The archive is unpacked into a private temporary directory in the store (tar-rs refuses `..` and
//! absolute names there), then every blob goes through the same verifying ingest as a pull: a blob whose
//! content does not match its digest is refused and nothing of it is stored.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::digest::{Digest, Hasher};
use crate::fsutil;
use crate::manifest::{self, Decoded, Platform};
use crate::reference::Reference;
use crate::store::{ImageRecord, Store, StoreError, io};

const NAME_CONTAINERD: &str = "io.containerd.image.name";
const NAME_OCI: &str = "org.opencontainers.image.ref.name";

fn invalid(what: &str, detail: impl std::fmt::Display) -> StoreError {
    StoreError::Invalid {
        what: what.to_string(),
        detail: detail.to_string(),
    }
}

/// Load every image of the archive at `file`; returns their records.
pub fn load_archive(
    store: &Store,
    file: &Path,
    platform: &Platform,
) -> Result<Vec<ImageRecord>, StoreError> {
    let _gc = store.gc_lock(false)?;
    let what = format!("load {}", file.display());
    let tmp = store.root().join("tmp").join(format!(
        "load-{}.{}",
        Digest::sha256_of(file.to_string_lossy().as_bytes()).short(),
        std::process::id()
    ));
    let _ = fsutil::remove_any(&tmp);
    std::fs::create_dir_all(&tmp).map_err(io("create load directory", &tmp))?;
    let result = (|| {
        let f = std::fs::File::open(file).map_err(io("open archive", file))?;
        let mut ar = tar::Archive::new(std::io::BufReader::new(f));
        ar.set_preserve_permissions(false);
        ar.unpack(&tmp)
            .map_err(|e| invalid(&what, format!("unpack archive: {e}")))?;
        if tmp.join("index.json").is_file() {
            load_oci(store, &tmp, platform, &what)
        } else if tmp.join("manifest.json").is_file() {
            load_docker(store, &tmp, &what)
        } else {
            Err(invalid(
                &what,
                "neither an OCI layout (index.json) nor a docker archive (manifest.json)",
            ))
        }
    })();
    let _ = fsutil::remove_any(&tmp);
    result
}

fn oci_blob(dir: &Path, d: &Digest) -> PathBuf {
    dir.join("blobs")
        .join(format!("{:?}", d.algorithm()).to_lowercase())
        .join(d.hex())
}

fn read_checked(path: &Path, d: &Digest, what: &str) -> Result<Vec<u8>, StoreError> {
    let f = std::fs::File::open(path).map_err(io("open archive blob", path))?;
    crate::ingest::read_verified(f, d, what)
}

fn load_oci(
    store: &Store,
    dir: &Path,
    platform: &Platform,
    what: &str,
) -> Result<Vec<ImageRecord>, StoreError> {
    let index_bytes =
        std::fs::read(dir.join("index.json")).map_err(io("read", &dir.join("index.json")))?;
    let Decoded::Index(index) = manifest::decode(None, &index_bytes)
        .map_err(|e| invalid(what, format!("index.json: {e}")))?
    else {
        return Err(invalid(what, "index.json is not an index"));
    };
    let mut out = Vec::new();
    for desc in index.manifests() {
        let ann: BTreeMap<String, String> = desc
            .annotations()
            .clone()
            .unwrap_or_default()
            .into_iter()
            .collect();
        let raw_name = ann.get(NAME_CONTAINERD).or_else(|| ann.get(NAME_OCI));
        let name = match raw_name.map(|n| Reference::parse(n)) {
            Some(Ok(r)) => r,
            Some(Err(e)) => return Err(invalid(what, format!("image name: {e}"))),
            None => {
                return Err(invalid(
                    what,
                    format!(
                        "manifest {} has no name annotation ({NAME_OCI})",
                        desc.digest()
                    ),
                ));
            }
        };
        let d = manifest::descriptor_digest(desc).map_err(|e| invalid(what, e))?;
        let bytes = read_checked(&oci_blob(dir, &d), &d, &format!("{what}: manifest {d}"))?;
        let (mdigest, mbytes, index_digest, mut extra) = match manifest::decode(None, &bytes)
            .map_err(|e| invalid(what, e))?
        {
            Decoded::Image(_) => (d, bytes, None, BTreeMap::new()),
            Decoded::Index(child_index) => {
                store.put_blob(&d, &bytes)?;
                let chosen =
                    manifest::select(&child_index, platform).map_err(|e| invalid(what, e))?;
                let cd = manifest::descriptor_digest(chosen).map_err(|e| invalid(what, e))?;
                let cb = read_checked(&oci_blob(dir, &cd), &cd, &format!("{what}: manifest {cd}"))?;
                let extra = chosen
                    .annotations()
                    .clone()
                    .unwrap_or_default()
                    .into_iter()
                    .collect();
                (cd, cb, Some(d), extra)
            }
        };
        for (k, v) in &ann {
            if k != NAME_CONTAINERD && k != NAME_OCI {
                extra.entry(k.clone()).or_insert(v.clone());
            }
        }
        let lookup = |d: &Digest| oci_blob(dir, d);
        out.push(import(
            store,
            &name,
            &mdigest,
            &mbytes,
            index_digest,
            extra,
            &lookup,
            what,
        )?);
    }
    if out.is_empty() {
        return Err(invalid(what, "the archive holds no image"));
    }
    Ok(out)
}

#[derive(serde::Deserialize)]
#[serde(rename_all = "PascalCase")]
struct DockerEntry {
    config: String,
    #[serde(default)]
    repo_tags: Option<Vec<String>>,
    layers: Vec<String>,
}

/// Files of a docker archive live under arbitrary names: map each to its digest.
fn hash_file(path: &Path) -> Result<(Digest, u64, manifest::Compression), StoreError> {
    use std::io::Read;
    let mut f = std::fs::File::open(path).map_err(io("open archive file", path))?;
    let mut h = Hasher::new(crate::digest::Algorithm::Sha256);
    let mut buf = vec![0u8; 1 << 20];
    let mut head = Vec::new();
    loop {
        let n = f.read(&mut buf).map_err(io("read archive file", path))?;
        if n == 0 {
            break;
        }
        if head.len() < 8 {
            head.extend_from_slice(&buf[..n.min(8)]);
        }
        h.update(&buf[..n]);
    }
    let len = h.len();
    Ok((h.finish(), len, manifest::sniff_compression(&head)))
}

fn load_docker(store: &Store, dir: &Path, what: &str) -> Result<Vec<ImageRecord>, StoreError> {
    let mpath = dir.join("manifest.json");
    let entries: Vec<DockerEntry> =
        serde_json::from_slice(&std::fs::read(&mpath).map_err(io("read", &mpath))?)
            .map_err(|e| invalid(what, format!("manifest.json: {e}")))?;
    let mut out = Vec::new();
    for e in entries {
        let inside = |rel: &str| -> Result<PathBuf, StoreError> {
            let cleaned = crate::unpack::clean_path(rel.as_bytes());
            let rel = cleaned
                .iter()
                .map(|c| String::from_utf8_lossy(c).into_owned())
                .collect::<Vec<_>>()
                .join("/");
            let p = dir.join(&rel);
            // The archive's own symlinks must not lead the load to a file of this machine (its
            // content would be hashed and stored as a blob of the image).
            let within = std::fs::canonicalize(&p)
                .ok()
                .zip(std::fs::canonicalize(dir).ok())
                .is_some_and(|(real, root)| real.starts_with(root));
            if rel.is_empty() || !within || !p.is_file() {
                return Err(invalid(
                    what,
                    format!("manifest.json names {rel:?}, which is not a file inside the archive"),
                ));
            }
            Ok(p)
        };
        let cpath = inside(&e.config)?;
        let (cdigest, csize, _) = hash_file(&cpath)?;
        let mut files = BTreeMap::new();
        files.insert(cdigest.clone(), cpath);
        let mut layers = Vec::new();
        for l in &e.layers {
            let p = inside(l)?;
            let (d, size, comp) = hash_file(&p)?;
            let media = match comp {
                manifest::Compression::None => "application/vnd.oci.image.layer.v1.tar",
                manifest::Compression::Gzip => "application/vnd.oci.image.layer.v1.tar+gzip",
                manifest::Compression::Zstd => "application/vnd.oci.image.layer.v1.tar+zstd",
            };
            layers.push(
                serde_json::json!({"mediaType": media, "digest": d.to_string(), "size": size}),
            );
            files.insert(d, p);
        }
        // docker-archive has no manifest of its own: write the OCI manifest it stands for.
        let m = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": manifest::OCI_MANIFEST,
            "config": {"mediaType": manifest::OCI_CONFIG, "digest": cdigest.to_string(), "size": csize},
            "layers": layers,
        });
        let mbytes = serde_json::to_vec(&m).expect("serializes");
        let mdigest = Digest::sha256_of(&mbytes);
        let tags = e.repo_tags.unwrap_or_default();
        if tags.is_empty() {
            return Err(invalid(
                what,
                format!("image {} has no RepoTags to name it by", cdigest.short()),
            ));
        }
        let lookup = |d: &Digest| files.get(d).cloned().unwrap_or_default();
        for t in tags {
            let name = Reference::parse(&t).map_err(|e| invalid(what, e))?;
            out.push(import(
                store,
                &name,
                &mdigest,
                &mbytes,
                None,
                BTreeMap::new(),
                &lookup,
                what,
            )?);
        }
    }
    Ok(out)
}

/// Put one image whose blobs are files on disk into the store, verifying everything.
#[allow(clippy::too_many_arguments)]
fn import(
    store: &Store,
    name: &Reference,
    mdigest: &Digest,
    mbytes: &[u8],
    index_digest: Option<Digest>,
    extra: BTreeMap<String, String>,
    lookup: &dyn Fn(&Digest) -> PathBuf,
    what: &str,
) -> Result<ImageRecord, StoreError> {
    let Decoded::Image(m) = manifest::decode(None, mbytes).map_err(|e| invalid(what, e))? else {
        return Err(invalid(
            what,
            format!("manifest {mdigest} is an index inside an index"),
        ));
    };
    let cdigest = manifest::descriptor_digest(m.config()).map_err(|e| invalid(what, e))?;
    let cbytes = read_checked(
        &lookup(&cdigest),
        &cdigest,
        &format!("{what}: config {cdigest}"),
    )?;
    let config = manifest::decode_config(&cbytes).map_err(|e| invalid(what, e))?;
    let layers = crate::pull::layer_records(&m, &config).map_err(|e| invalid(what, e))?;
    store.put_blob(mdigest, mbytes)?;
    store.put_blob(&cdigest, &cbytes)?;
    let image = name.to_string();
    for layer in &layers {
        let _lock = store.layer_lock(&layer.diff_id)?;
        let (need_blob, need_snapshot) = crate::ingest::missing(store, layer);
        if !need_blob && !need_snapshot {
            continue;
        }
        let p = if need_blob {
            lookup(&layer.digest)
        } else {
            store.blob_path(&layer.digest)
        };
        let f = std::fs::File::open(&p).map_err(io("open layer", &p))?;
        crate::ingest::ingest_layer(
            store,
            &image,
            layer,
            std::io::BufReader::with_capacity(1 << 20, f),
            need_blob,
            need_snapshot,
        )?;
    }
    let record = crate::pull::make_record(
        image,
        mdigest.clone(),
        index_digest,
        None,
        &m,
        &config,
        cdigest,
        layers,
        extra,
    );
    store.put_image(&record)?;
    Ok(record)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_docker_archive_cannot_name_a_file_outside_itself() {
        let tmp = tempfile::tempdir().unwrap();
        let store = Store::open(tmp.path().join("store")).unwrap();
        let secret = tmp.path().join("secret");
        std::fs::write(&secret, b"not for the image store").unwrap();
        let archive = tmp.path().join("evil.tar");
        let mut b = tar::Builder::new(std::fs::File::create(&archive).unwrap());
        let mut add = |name: &str, data: &[u8]| {
            let mut h = tar::Header::new_gnu();
            h.set_size(data.len() as u64);
            h.set_mode(0o644);
            h.set_cksum();
            b.append_data(&mut h, name, data).unwrap();
        };
        add(
            "manifest.json",
            br#"[{"Config":"config.json","RepoTags":["pnt/evil:1"],"Layers":["layer.tar"]}]"#,
        );
        // Even a config that expects exactly that file's content does not get it loaded.
        let config = format!(
            r#"{{"architecture":"amd64","os":"linux","rootfs":{{"type":"layers","diff_ids":["{}"]}}}}"#,
            Digest::sha256_of(b"not for the image store")
        );
        add("config.json", config.as_bytes());
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::Symlink);
        h.set_size(0);
        h.set_mode(0o777);
        b.append_link(&mut h, "layer.tar", &secret).unwrap();
        b.into_inner().unwrap();
        let e = load_archive(&store, &archive, &Platform::linux_amd64()).unwrap_err();
        assert!(e.to_string().contains("layer.tar"), "{e}");
        let digest = Digest::sha256_of(b"not for the image store");
        assert!(store.blob_path(&digest).metadata().is_err());
    }
}
