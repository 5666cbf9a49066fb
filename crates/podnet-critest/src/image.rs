//! A tiny image built offline from busybox-static, written as a docker-archive tar (`docker save`'s
//! format: `manifest.json`, an image config, one layer) that `ctr images import` reads. The same image
//! serves as the sandbox ("pause") image, since containerd stops a sandbox with SIGKILL, and as the
//! HTTP server (`busybox httpd` serving `/www`).

use sha2::{Digest, Sha256};
use std::io;
use std::path::Path;

/// What `/www/index.html` in the image says: the test checks for it through a host port.
pub const INDEX_HTML: &str = "podnet-cni under containerd\n";

fn sha256_hex(data: &[u8]) -> String {
    Sha256::digest(data)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn append(
    tar: &mut tar::Builder<Vec<u8>>,
    path: &str,
    kind: tar::EntryType,
    mode: u32,
    data: &[u8],
) -> io::Result<()> {
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(kind);
    h.set_mode(mode);
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(0);
    h.set_size(data.len() as u64);
    tar.append_data(&mut h, path, data)
}

/// The root filesystem layer: `/bin/busybox`, `/bin/sh`, the web root and the directories a container
/// needs to exist.
fn layer(busybox: &[u8]) -> io::Result<Vec<u8>> {
    let mut t = tar::Builder::new(Vec::new());
    for dir in ["bin", "dev", "etc", "proc", "sys", "tmp", "www"] {
        append(&mut t, dir, tar::EntryType::Directory, 0o755, &[])?;
    }
    append(
        &mut t,
        "bin/busybox",
        tar::EntryType::Regular,
        0o755,
        busybox,
    )?;
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(tar::EntryType::Symlink);
    h.set_mode(0o777);
    h.set_size(0);
    h.set_mtime(0);
    t.append_link(&mut h, "bin/sh", "busybox")?;
    append(
        &mut t,
        "etc/passwd",
        tar::EntryType::Regular,
        0o644,
        b"root:x:0:0:root:/:/bin/sh\n",
    )?;
    append(
        &mut t,
        "www/index.html",
        tar::EntryType::Regular,
        0o644,
        INDEX_HTML.as_bytes(),
    )?;
    t.into_inner()
}

/// The architecture name OCI uses for this machine.
fn oci_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    }
}

/// Writes the image `reference` (e.g. `pnt.local/busybox:1`) built from `busybox` (a static binary)
/// to `dest` as a docker-archive tar. Its default command sleeps, which is all a sandbox needs.
pub fn write_busybox_archive(busybox: &Path, reference: &str, dest: &Path) -> io::Result<()> {
    let bin = std::fs::read(busybox)
        .map_err(|e| io::Error::new(e.kind(), format!("read {}: {e}", busybox.display())))?;
    let layer = layer(&bin)?;
    let diff_id = sha256_hex(&layer);
    let config = serde_json::json!({
        "architecture": oci_arch(),
        "os": "linux",
        "config": {
            "Env": ["PATH=/bin"],
            "Cmd": ["/bin/busybox", "sleep", "2147483647"],
            "WorkingDir": "/"
        },
        "rootfs": {"type": "layers", "diff_ids": [format!("sha256:{diff_id}")]}
    })
    .to_string();
    let config_name = format!("{}.json", sha256_hex(config.as_bytes()));
    let layer_name = format!("{diff_id}/layer.tar");
    let manifest = serde_json::json!([{
        "Config": config_name,
        "RepoTags": [reference],
        "Layers": [layer_name]
    }])
    .to_string();

    let mut t = tar::Builder::new(Vec::new());
    append(&mut t, &diff_id, tar::EntryType::Directory, 0o755, &[])?;
    append(&mut t, &layer_name, tar::EntryType::Regular, 0o644, &layer)?;
    append(
        &mut t,
        &config_name,
        tar::EntryType::Regular,
        0o644,
        config.as_bytes(),
    )?;
    append(
        &mut t,
        "manifest.json",
        tar::EntryType::Regular,
        0o644,
        manifest.as_bytes(),
    )?;
    std::fs::write(dest, t.into_inner()?)
        .map_err(|e| io::Error::new(e.kind(), format!("write {}: {e}", dest.display())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_archive_names_its_layer_by_its_digest() {
        let dir = std::env::temp_dir().join(format!("pnt-{}-image", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let fake = dir.join("busybox");
        std::fs::write(&fake, b"\x7fELF not really").unwrap();
        let out = dir.join("img.tar");
        write_busybox_archive(&fake, "pnt.local/busybox:1", &out).unwrap();
        let mut files = std::collections::HashMap::new();
        let mut ar = tar::Archive::new(std::fs::File::open(&out).unwrap());
        for e in ar.entries().unwrap() {
            let mut e = e.unwrap();
            let mut data = Vec::new();
            std::io::Read::read_to_end(&mut e, &mut data).unwrap();
            files.insert(e.path().unwrap().display().to_string(), data);
        }
        let manifest: serde_json::Value = serde_json::from_slice(&files["manifest.json"]).unwrap();
        assert_eq!(manifest[0]["RepoTags"][0], "pnt.local/busybox:1");
        let layer_name = manifest[0]["Layers"][0].as_str().unwrap();
        let config: serde_json::Value =
            serde_json::from_slice(&files[manifest[0]["Config"].as_str().unwrap()]).unwrap();
        assert_eq!(
            config["rootfs"]["diff_ids"][0],
            format!("sha256:{}", sha256_hex(&files[layer_name]))
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
