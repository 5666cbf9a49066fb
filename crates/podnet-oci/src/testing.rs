//! Test support (feature `test-support`): a real registry on loopback (Debian's `docker-registry`) and
//! images built offline as OCI layouts, pushed with `skopeo`. Everything lives in temporary directories
//! and the registry process is killed in `Drop`.

use std::io::Write;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::digest::Digest;
use crate::manifest::Compression;

/// `docker-registry serve` on 127.0.0.1 and a free port, storage in a temporary directory.
pub struct TestRegistry {
    child: Option<Child>,
    pub port: u16,
    pub dir: tempfile::TempDir,
    config: PathBuf,
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl TestRegistry {
    pub fn start() -> TestRegistry {
        Self::start_inner(None)
    }

    /// A registry that wants basic credentials (htpasswd with bcrypt) for everything.
    pub fn start_with_htpasswd(user: &str, password: &str) -> TestRegistry {
        Self::start_inner(Some((user, password)))
    }

    fn start_inner(auth: Option<(&str, &str)>) -> TestRegistry {
        let dir = tempfile::Builder::new()
            .prefix("pnt-registry")
            .tempdir()
            .unwrap();
        let port = free_port();
        let mut config = format!(
            "version: 0.1\nlog:\n  level: error\n  accesslog:\n    disabled: true\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: 127.0.0.1:{port}\n",
            dir.path().join("data").display()
        );
        if let Some((user, password)) = auth {
            let hash = bcrypt::hash(password, 4).unwrap();
            let path = dir.path().join("htpasswd");
            std::fs::write(&path, format!("{user}:{hash}\n")).unwrap();
            config.push_str(&format!(
                "auth:\n  htpasswd:\n    realm: pnt\n    path: {}\n",
                path.display()
            ));
        }
        let cpath = dir.path().join("config.yml");
        std::fs::write(&cpath, config).unwrap();
        let mut r = TestRegistry {
            child: None,
            port,
            dir,
            config: cpath,
        };
        r.restart();
        r
    }

    /// (Re)start the process on the same port and storage.
    pub fn restart(&mut self) {
        self.kill();
        let child = Command::new("docker-registry")
            .arg("serve")
            .arg(&self.config)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("docker-registry (apt install docker-registry)");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "registry did not start on port {}",
                self.port
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// `127.0.0.1:PORT`
    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Where the registry keeps a blob's bytes (to corrupt it).
    pub fn blob_data(&self, d: &Digest) -> PathBuf {
        self.dir
            .path()
            .join("data/docker/registry/v2/blobs/sha256")
            .join(&d.hex()[..2])
            .join(d.hex())
            .join("data")
    }
}

impl Drop for TestRegistry {
    fn drop(&mut self) {
        self.kill();
    }
}

/// One entry of a test layer.
#[derive(Debug, Clone)]
pub enum Entry {
    Dir(&'static str),
    File(&'static str, Vec<u8>),
    Symlink(&'static str, &'static str),
    /// `.wh.<name>` in the name's directory.
    Whiteout(&'static str),
    /// `.wh..wh..opq` in the directory.
    Opaque(&'static str),
    /// Files, directories and symlinks of a host directory (same path, sorted) until `u64` bytes of
    /// file content: realistic layers for benchmarks.
    Tree(&'static str, u64),
}

fn append_tree(b: &mut tar::Builder<Vec<u8>>, dir: &Path, budget: &mut u64) {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    let mut entries: Vec<_> = rd.flatten().map(|e| e.path()).collect();
    entries.sort();
    for p in entries {
        if *budget == 0 {
            return;
        }
        let Ok(m) = std::fs::symlink_metadata(&p) else {
            continue;
        };
        let name = p.strip_prefix("/").unwrap();
        if m.is_dir() {
            b.append_dir(name, &p).unwrap();
            append_tree(b, &p, budget);
        } else if m.is_file() || m.file_type().is_symlink() {
            if m.is_file() && m.len() > *budget {
                continue;
            }
            if m.is_file() {
                *budget -= m.len();
            }
            let _ = b.append_path_with_name(&p, name);
        }
    }
}

#[derive(Debug, Clone)]
pub struct Layer {
    pub entries: Vec<Entry>,
    pub compression: Compression,
}

impl Layer {
    pub fn new(compression: Compression, entries: Vec<Entry>) -> Layer {
        Layer {
            entries,
            compression,
        }
    }

    /// `bin/busybox` (Debian's busybox-static) and `bin/sh -> busybox`.
    pub fn busybox(compression: Compression) -> Layer {
        let bb = std::fs::read("/bin/busybox").expect("busybox-static installed");
        Layer::new(
            compression,
            vec![
                Entry::Dir("bin"),
                Entry::File("bin/busybox", bb),
                Entry::Symlink("bin/sh", "busybox"),
            ],
        )
    }

    fn tar(&self) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        let hdr = |kind: tar::EntryType, mode: u32, size: u64| {
            let mut h = tar::Header::new_gnu();
            h.set_entry_type(kind);
            h.set_mode(mode);
            h.set_uid(0);
            h.set_gid(0);
            h.set_mtime(1_700_000_000);
            h.set_size(size);
            h
        };
        for e in &self.entries {
            match e {
                Entry::Dir(p) => {
                    let mut h = hdr(tar::EntryType::Directory, 0o755, 0);
                    b.append_data(&mut h, format!("{p}/"), &[][..]).unwrap();
                }
                Entry::File(p, data) => {
                    let mut h = hdr(tar::EntryType::Regular, 0o755, data.len() as u64);
                    b.append_data(&mut h, p, &data[..]).unwrap();
                }
                Entry::Symlink(p, t) => {
                    let mut h = hdr(tar::EntryType::Symlink, 0o777, 0);
                    b.append_link(&mut h, p, t).unwrap();
                }
                Entry::Whiteout(p) => {
                    let path = Path::new(p);
                    let name = format!(".wh.{}", path.file_name().unwrap().to_str().unwrap());
                    let full = path.parent().unwrap().join(name);
                    let mut h = hdr(tar::EntryType::Regular, 0o644, 0);
                    b.append_data(&mut h, full, &[][..]).unwrap();
                }
                Entry::Tree(dir, cap) => {
                    b.follow_symlinks(false);
                    let mut budget = *cap;
                    append_tree(&mut b, Path::new(dir), &mut budget);
                }
                Entry::Opaque(d) => {
                    let mut h = hdr(tar::EntryType::Regular, 0o644, 0);
                    b.append_data(&mut h, format!("{d}/.wh..wh..opq"), &[][..])
                        .unwrap();
                }
            }
        }
        b.into_inner().unwrap()
    }

    /// (blob, diffID, media type)
    fn build(&self) -> (Vec<u8>, Digest, &'static str) {
        let tar = self.tar();
        let diff = Digest::sha256_of(&tar);
        match self.compression {
            Compression::None => (tar, diff, "application/vnd.oci.image.layer.v1.tar"),
            Compression::Gzip => {
                let mut e =
                    flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
                e.write_all(&tar).unwrap();
                (
                    e.finish().unwrap(),
                    diff,
                    "application/vnd.oci.image.layer.v1.tar+gzip",
                )
            }
            Compression::Zstd => (
                zstd::encode_all(&tar[..], 3).unwrap(),
                diff,
                "application/vnd.oci.image.layer.v1.tar+zstd",
            ),
        }
    }
}

/// An image for one platform.
#[derive(Debug, Clone)]
pub struct Image {
    pub layers: Vec<Layer>,
    pub architecture: &'static str,
    pub annotations: Vec<(&'static str, String)>,
    pub labels: Vec<(&'static str, String)>,
}

impl Image {
    pub fn new(layers: Vec<Layer>) -> Image {
        Image {
            layers,
            architecture: "amd64",
            annotations: vec![],
            labels: vec![],
        }
    }
}

/// An OCI image layout directory being assembled.
pub struct Layout {
    pub dir: PathBuf,
    index: Vec<serde_json::Value>,
}

/// What was written for one image: its manifest digest and layer digests.
#[derive(Debug, Clone)]
pub struct Built {
    pub manifest: Digest,
    pub config: Digest,
    pub layers: Vec<Digest>,
    pub diff_ids: Vec<Digest>,
}

impl Layout {
    pub fn new(dir: &Path) -> Layout {
        std::fs::create_dir_all(dir.join("blobs/sha256")).unwrap();
        std::fs::write(dir.join("oci-layout"), br#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
        Layout {
            dir: dir.to_path_buf(),
            index: vec![],
        }
    }

    fn blob(&self, bytes: &[u8]) -> Digest {
        let d = Digest::sha256_of(bytes);
        std::fs::write(self.dir.join("blobs/sha256").join(d.hex()), bytes).unwrap();
        d
    }

    fn image(&self, img: &Image) -> (Built, usize) {
        let mut layers = vec![];
        let mut diffs = vec![];
        let mut descs = vec![];
        for l in &img.layers {
            let (blob, diff, media) = l.build();
            let d = self.blob(&blob);
            descs.push(serde_json::json!({"mediaType": media, "digest": d.to_string(), "size": blob.len()}));
            layers.push(d);
            diffs.push(diff);
        }
        let labels: serde_json::Map<String, serde_json::Value> = img
            .labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone().into()))
            .collect();
        let config = serde_json::json!({
            "created": "2026-01-02T03:04:05Z",
            "architecture": img.architecture, "os": "linux",
            "config": {"Env": ["PATH=/bin"], "Cmd": ["/bin/sh"], "Labels": labels},
            "rootfs": {"type": "layers", "diff_ids": diffs.iter().map(|d| d.to_string()).collect::<Vec<_>>()},
        });
        let cbytes = serde_json::to_vec(&config).unwrap();
        let cd = self.blob(&cbytes);
        let ann: serde_json::Map<String, serde_json::Value> = img
            .annotations
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone().into()))
            .collect();
        let mut m = serde_json::json!({
            "schemaVersion": 2, "mediaType": crate::manifest::OCI_MANIFEST,
            "config": {"mediaType": crate::manifest::OCI_CONFIG, "digest": cd.to_string(), "size": cbytes.len()},
            "layers": descs,
        });
        if !ann.is_empty() {
            m["annotations"] = ann.into();
        }
        let mbytes = serde_json::to_vec(&m).unwrap();
        let md = self.blob(&mbytes);
        (
            Built {
                manifest: md,
                config: cd,
                layers,
                diff_ids: diffs,
            },
            mbytes.len(),
        )
    }

    /// Add a single-platform image under `tag`.
    pub fn add(&mut self, tag: &str, img: &Image) -> Built {
        let (built, size) = self.image(img);
        self.index.push(serde_json::json!({
            "mediaType": crate::manifest::OCI_MANIFEST, "digest": built.manifest.to_string(), "size": size,
            "annotations": {"org.opencontainers.image.ref.name": tag},
        }));
        self.write_index();
        built
    }

    /// Add a multi-platform image (an index) under `tag`; returns the index digest and each image.
    pub fn add_multi(&mut self, tag: &str, imgs: &[Image]) -> (Digest, Vec<Built>) {
        let mut entries = vec![];
        let mut built = vec![];
        for img in imgs {
            let (b, size) = self.image(img);
            entries.push(serde_json::json!({
                "mediaType": crate::manifest::OCI_MANIFEST, "digest": b.manifest.to_string(), "size": size,
                "platform": {"os": "linux", "architecture": img.architecture},
            }));
            built.push(b);
        }
        let idx = serde_json::json!({"schemaVersion": 2, "mediaType": crate::manifest::OCI_INDEX, "manifests": entries});
        let ibytes = serde_json::to_vec(&idx).unwrap();
        let id = self.blob(&ibytes);
        self.index.push(serde_json::json!({
            "mediaType": crate::manifest::OCI_INDEX, "digest": id.to_string(), "size": ibytes.len(),
            "annotations": {"org.opencontainers.image.ref.name": tag},
        }));
        self.write_index();
        (id, built)
    }

    fn write_index(&self) {
        let idx = serde_json::json!({"schemaVersion": 2, "mediaType": crate::manifest::OCI_INDEX, "manifests": self.index});
        std::fs::write(
            self.dir.join("index.json"),
            serde_json::to_vec(&idx).unwrap(),
        )
        .unwrap();
    }

    /// `skopeo copy oci:<layout>:<tag> <dest>` with extra flags (`--format v2s2`, `--all`, creds).
    pub fn copy(&self, tag: &str, dest: &str, extra: &[&str]) {
        let out = Command::new("skopeo")
            .args(["copy", "--quiet", "--dest-tls-verify=false"])
            .args(extra)
            .arg(format!("oci:{}:{tag}", self.dir.display()))
            .arg(dest)
            .output()
            .expect("skopeo (apt install skopeo)");
        assert!(
            out.status.success(),
            "skopeo copy {tag} -> {dest}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Push `tag` to `registry/repo:tag`.
    pub fn push(&self, tag: &str, registry: &TestRegistry, repo: &str, extra: &[&str]) {
        // Without --preserve-digests skopeo recompresses zstd and uncompressed layers to gzip.
        let mut flags = extra.to_vec();
        if !extra.contains(&"--format") {
            flags.push("--preserve-digests");
        }
        self.copy(
            tag,
            &format!("docker://{}/{repo}:{tag}", registry.host()),
            &flags,
        );
    }
}

/// Incompressible bytes (layers big enough to be cut mid-transfer).
pub fn noise(len: usize, seed: u8) -> Vec<u8> {
    let mut out = Vec::with_capacity(len);
    let mut block = Digest::sha256_of(&[seed]).hex().as_bytes().to_vec();
    while out.len() < len {
        let d = Digest::sha256_of(&block);
        block = d.hex().as_bytes().to_vec();
        // 32 raw bytes per round from the hex digest.
        for pair in block.chunks(2) {
            out.push(u8::from_str_radix(std::str::from_utf8(pair).unwrap(), 16).unwrap());
        }
    }
    out.truncate(len);
    out
}

/// A TCP proxy on loopback in front of a registry that cuts a connection once it has carried
/// `cut_after` bytes towards the client, for the first `cuts` connections that get that far: what a
/// client sees when the registry dies mid-blob. It can also delay every chunk (`slow`).
pub struct CutProxy {
    pub port: u16,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    pub cuts_done: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

impl CutProxy {
    pub fn start(upstream: u16, cut_after: usize, cuts: usize, slow: Option<Duration>) -> CutProxy {
        use std::sync::Arc;
        use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        listener.set_nonblocking(true).unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let cuts_done = Arc::new(AtomicUsize::new(0));
        let (s, c) = (stop.clone(), cuts_done.clone());
        std::thread::spawn(move || {
            while !s.load(Ordering::Relaxed) {
                let Ok((client, _)) = listener.accept() else {
                    std::thread::sleep(Duration::from_millis(5));
                    continue;
                };
                client.set_nonblocking(false).unwrap();
                let Ok(server) = std::net::TcpStream::connect(("127.0.0.1", upstream)) else {
                    continue;
                };
                let (mut c_read, mut s_write) =
                    (client.try_clone().unwrap(), server.try_clone().unwrap());
                std::thread::spawn(move || {
                    let _ = std::io::copy(&mut c_read, &mut s_write);
                });
                let (mut s_read, mut c_write) = (server, client);
                let cuts_done = c.clone();
                let stop = s.clone();
                std::thread::spawn(move || {
                    use std::io::Read;
                    let mut buf = vec![0u8; 16 << 10];
                    let mut sent = 0usize;
                    loop {
                        let n = match s_read.read(&mut buf) {
                            Ok(0) | Err(_) => break,
                            Ok(n) => n,
                        };
                        if stop.load(Ordering::Relaxed) {
                            break;
                        }
                        if let Some(d) = slow {
                            std::thread::sleep(d);
                        }
                        if sent + n > cut_after && cuts_done.load(Ordering::SeqCst) < cuts {
                            cuts_done.fetch_add(1, Ordering::SeqCst);
                            let _ = c_write.write_all(&buf[..cut_after.saturating_sub(sent)]);
                            break;
                        }
                        if c_write.write_all(&buf[..n]).is_err() {
                            break;
                        }
                        sent += n;
                    }
                    let _ = c_write.shutdown(std::net::Shutdown::Both);
                    let _ = s_read.shutdown(std::net::Shutdown::Both);
                });
            }
        });
        CutProxy {
            port,
            stop,
            cuts_done,
        }
    }
}

impl Drop for CutProxy {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
    }
}
