//! Pulls from a real registry on loopback (Debian's docker-registry) holding images built offline and
//! pushed with skopeo. Needs root (overlay mounts, ownership) and the Debian packages docker-registry,
//! skopeo and busybox-static.

use std::path::Path;
use std::sync::{Arc, Mutex};

use podnet_oci::manifest::Compression;
use podnet_oci::testing::{CutProxy, Entry, Image, Layer, Layout, TestRegistry, noise};
use podnet_oci::{
    Credentials, Hosts, Keychain, Progress, PullError, PullOptions, Puller, Reference,
    RegistryError, Store, StoreError, default_dialer,
};

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

struct Fixture {
    tmp: tempfile::TempDir,
    store: Store,
}

fn fixture() -> Fixture {
    let tmp = tempfile::Builder::new()
        .prefix("pnt-oci")
        .tempdir()
        .unwrap();
    let store = Store::open(tmp.path().join("store")).unwrap();
    Fixture { tmp, store }
}

/// Unmount every root filesystem a test made, also when it failed half-way.
impl Drop for Fixture {
    fn drop(&mut self) {
        for r in self.store.rootfs_records().unwrap_or_default() {
            let _ = self.store.remove_rootfs(&r.key);
        }
    }
}

impl Fixture {
    fn puller(&self) -> Puller {
        Puller::new(
            self.store.clone(),
            default_dialer(),
            Hosts::default(),
            Keychain::empty(),
        )
    }
    fn layout(&self, name: &str) -> Layout {
        Layout::new(&self.tmp.path().join(name))
    }
    fn pull(&self, p: &Puller, r: &str) -> Result<podnet_oci::ImageRecord, PullError> {
        rt().block_on(p.pull(&Reference::parse(r).unwrap(), &PullOptions::default()))
    }
    /// Nothing half-written anywhere: no temporaries, every snapshot reachable from a layer link.
    fn assert_clean(&self) {
        for d in ["ingest", "tmp"] {
            let left: Vec<_> = std::fs::read_dir(self.store.root().join(d))
                .unwrap()
                .collect();
            assert!(left.is_empty(), "{d}/ not empty: {left:?}");
        }
    }
}

/// The two-layer test image: busybox and files, then a layer that deletes and hides some of them.
fn layered(base: Compression, top: Compression) -> Image {
    let mut l1 = Layer::busybox(base);
    l1.entries.extend([
        Entry::Dir("etc"),
        Entry::File("etc/motd", b"old motd".to_vec()),
        Entry::Dir("var"),
        Entry::Dir("var/cache"),
        Entry::File("var/cache/stale", b"stale".to_vec()),
    ]);
    let l2 = Layer::new(
        top,
        vec![
            Entry::Dir("etc"),
            Entry::Whiteout("etc/motd"),
            Entry::File("etc/hostname", b"pnt\n".to_vec()),
            Entry::Dir("var"),
            Entry::Dir("var/cache"),
            Entry::Opaque("var/cache"),
            Entry::File("var/cache/fresh", b"fresh".to_vec()),
        ],
    );
    Image::new(vec![l1, l2])
}

/// Mount the rootfs, check the overlay view (whiteouts, opaque dirs, busybox runs), unmount.
fn check_rootfs(f: &Fixture, image: &str) {
    let mnt = f.tmp.path().join("mnt");
    let key = format!("pnt-{}", std::process::id());
    let rootfs = f
        .store
        .prepare_rootfs(image, &key, "pod default/t container c", &mnt)
        .unwrap();
    assert_eq!(rootfs.mountpoint, mnt);
    assert!(!mnt.join("etc/motd").exists(), "whiteout hides etc/motd");
    assert_eq!(std::fs::read(mnt.join("etc/hostname")).unwrap(), b"pnt\n");
    assert!(
        !mnt.join("var/cache/stale").exists(),
        "opaque directory hides the lower content"
    );
    assert!(mnt.join("var/cache/fresh").exists());
    let out = std::process::Command::new("chroot")
        .arg(&mnt)
        .args(["/bin/sh", "-c", "echo hi > /new; /bin/busybox cat /new"])
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "hi\n",
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        rootfs.upper.join("new").exists(),
        "writes go to the container's upper layer"
    );
    f.store.remove_rootfs(&key).unwrap();
    assert!(!mnt.join("bin").exists(), "unmounted");
    f.store.remove_rootfs(&key).unwrap();
}

#[test]
fn pull_oci_gzip_image_unpacks_whiteouts_and_opaque_dirs() {
    let reg = TestRegistry::start();
    let f = fixture();
    let mut l = f.layout("l");
    let built = l.add("v1", &layered(Compression::Gzip, Compression::Gzip));
    l.push("v1", &reg, "pnt/app", &[]);
    let rec = f
        .pull(&f.puller(), &format!("{}/pnt/app:v1", reg.host()))
        .unwrap();
    assert_eq!(rec.reference, format!("{}/pnt/app:v1", reg.host()));
    assert_eq!(rec.digest, built.manifest);
    assert_eq!(rec.config, built.config);
    assert_eq!(rec.platform.to_string(), "linux/amd64");
    assert_eq!(
        rec.layers
            .iter()
            .map(|l| l.diff_id.clone())
            .collect::<Vec<_>>(),
        built.diff_ids
    );
    for d in &built.layers {
        assert!(f.store.has_blob(d));
    }
    f.assert_clean();
    check_rootfs(&f, &rec.reference);
}

#[test]
fn pull_docker_schema2_manifest() {
    let reg = TestRegistry::start();
    let f = fixture();
    let mut l = f.layout("l");
    l.add("v2s2", &layered(Compression::Gzip, Compression::Gzip));
    l.push("v2s2", &reg, "pnt/docker", &["--format", "v2s2"]);
    let rec = f
        .pull(&f.puller(), &format!("{}/pnt/docker:v2s2", reg.host()))
        .unwrap();
    assert_eq!(rec.media_type, podnet_oci::manifest::DOCKER_MANIFEST);
    assert!(rec.layers.iter().all(|l| {
        l.media_type
            .starts_with("application/vnd.docker.image.rootfs")
    }));
    check_rootfs(&f, &rec.reference);
}

#[test]
fn pull_zstd_and_uncompressed_layers() {
    let reg = TestRegistry::start();
    let f = fixture();
    let mut l = f.layout("l");
    l.add("mixed", &layered(Compression::Zstd, Compression::None));
    l.push("mixed", &reg, "pnt/mixed", &[]);
    let rec = f
        .pull(&f.puller(), &format!("{}/pnt/mixed:mixed", reg.host()))
        .unwrap();
    assert_eq!(rec.layers[0].compression, Compression::Zstd);
    assert_eq!(rec.layers[1].compression, Compression::None);
    check_rootfs(&f, &rec.reference);
}

#[test]
fn manifest_list_resolves_to_linux_amd64() {
    let reg = TestRegistry::start();
    let f = fixture();
    let mut l = f.layout("l");
    let arm = Image {
        architecture: "arm64",
        ..Image::new(vec![Layer::new(
            Compression::Gzip,
            vec![Entry::File("arch", b"arm64".to_vec())],
        )])
    };
    let amd = Image::new(vec![Layer::new(
        Compression::Gzip,
        vec![Entry::File("arch", b"amd64".to_vec())],
    )]);
    let s390 = Image {
        architecture: "s390x",
        ..Image::new(vec![Layer::new(
            Compression::Gzip,
            vec![Entry::File("arch", b"s390x".to_vec())],
        )])
    };
    let (index, built) = l.add_multi("multi", &[arm, amd, s390]);
    l.push("multi", &reg, "pnt/multi", &["--all"]);
    let rec = f
        .pull(&f.puller(), &format!("{}/pnt/multi:multi", reg.host()))
        .unwrap();
    assert_eq!(rec.index_digest, Some(index));
    assert_eq!(rec.digest, built[1].manifest);
    assert_eq!(rec.platform.architecture, "amd64");
    let snap = f.store.snapshot(&rec.layers[0].diff_id).unwrap();
    assert_eq!(std::fs::read(snap.join("arch")).unwrap(), b"amd64");
    assert!(
        !f.store.has_blob(&built[0].layers[0]),
        "other platforms' layers are not fetched"
    );
}

#[test]
fn pull_by_digest_and_tag_plus_digest() {
    let reg = TestRegistry::start();
    let f = fixture();
    let mut l = f.layout("l");
    let built = l.add("d", &Image::new(vec![Layer::busybox(Compression::Gzip)]));
    l.push("d", &reg, "pnt/dig", &[]);
    let by_digest = format!("{}/pnt/dig@{}", reg.host(), built.manifest);
    let rec = f.pull(&f.puller(), &by_digest).unwrap();
    assert_eq!(rec.reference, by_digest);
    assert_eq!(rec.digest, built.manifest);
    // A digest that is not the tag's: the digest decides, and a wrong one is not found.
    let wrong = podnet_oci::Digest::sha256_of(b"nope");
    let e = f
        .pull(&f.puller(), &format!("{}/pnt/dig:d@{wrong}", reg.host()))
        .unwrap_err();
    assert!(
        matches!(&e, PullError::Registry { source, .. } if matches!(**source, RegistryError::NotFound { .. })),
        "{e}"
    );
}

#[test]
fn missing_reference_is_a_clear_error() {
    let reg = TestRegistry::start();
    let f = fixture();
    let r = format!("{}/pnt/none:nope", reg.host());
    let e = f.pull(&f.puller(), &r).unwrap_err();
    let msg = e.to_string();
    assert!(msg.contains(&r) && msg.contains("not found"), "{msg}");
    assert!(f.store.images().unwrap().is_empty());
}

#[test]
fn htpasswd_registry_needs_credentials() {
    let reg = TestRegistry::start_with_htpasswd("pnt", "s3cret");
    let f = fixture();
    let mut l = f.layout("l");
    l.add(
        "private",
        &Image::new(vec![Layer::busybox(Compression::Gzip)]),
    );
    l.push(
        "private",
        &reg,
        "pnt/private",
        &["--dest-creds", "pnt:s3cret"],
    );
    let r = format!("{}/pnt/private:private", reg.host());

    let e = f.pull(&f.puller(), &r).unwrap_err();
    assert!(
        e.to_string().contains("unauthorized") && e.to_string().contains("no credentials"),
        "{e}"
    );

    let wrong = Keychain::from_json(
        "test",
        format!(
            r#"{{"auths":{{"{}":{{"username":"pnt","password":"bad"}}}}}}"#,
            reg.host()
        )
        .as_bytes(),
    )
    .unwrap();
    let p = Puller::new(f.store.clone(), default_dialer(), Hosts::default(), wrong);
    let e = f.pull(&p, &r).unwrap_err();
    assert!(e.to_string().contains("credentials refused"), "{e}");

    // Per-pull credentials (what the kubelet passes from imagePullSecrets).
    let mut secret = Keychain::empty();
    secret.insert(&reg.host(), Credentials::new("pnt", "s3cret"));
    let opts = PullOptions {
        credentials: Some(secret),
        progress: None,
    };
    let rec = rt()
        .block_on(f.puller().pull(&Reference::parse(&r).unwrap(), &opts))
        .unwrap();
    assert_eq!(rec.layers.len(), 1);
}

#[test]
fn corrupted_blob_is_refused_and_nothing_is_stored() {
    let reg = TestRegistry::start();
    let f = fixture();
    let mut l = f.layout("l");
    let built = l.add("c", &Image::new(vec![Layer::busybox(Compression::Gzip)]));
    l.push("c", &reg, "pnt/corrupt", &[]);
    let data = reg.blob_data(&built.layers[0]);
    let mut bytes = std::fs::read(&data).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0xff;
    std::fs::write(&data, bytes).unwrap();
    let e = f
        .pull(&f.puller(), &format!("{}/pnt/corrupt:c", reg.host()))
        .unwrap_err();
    assert!(e.to_string().contains("does not match"), "{e}");
    assert!(!f.store.has_blob(&built.layers[0]));
    assert!(f.store.snapshot(&built.diff_ids[0]).is_none());
    assert!(f.store.images().unwrap().is_empty());
    assert_eq!(
        std::fs::read_dir(f.store.root().join("s")).unwrap().count(),
        0
    );
    f.assert_clean();
}

fn big_image() -> Image {
    Image::new(vec![
        Layer::busybox(Compression::Gzip),
        Layer::new(
            Compression::Gzip,
            vec![Entry::File("noise", noise(3 << 20, 1))],
        ),
    ])
}

#[test]
fn connection_lost_mid_blob_is_retried() {
    let reg = TestRegistry::start();
    let f = fixture();
    let mut l = f.layout("l");
    l.add("big", &big_image());
    l.push("big", &reg, "pnt/big", &[]);
    // The first two connections that carry over 1 MB die there; the third attempt gets through.
    let proxy = CutProxy::start(reg.port, 1 << 20, 2, None);
    let retries = Arc::new(Mutex::new(Vec::new()));
    let r2 = retries.clone();
    let opts = PullOptions {
        credentials: None,
        progress: Some(Arc::new(move |p: &Progress| {
            if let Progress::Retry { error, .. } = p {
                r2.lock().unwrap().push(error.clone());
            }
        })),
    };
    let r = Reference::parse(&format!("127.0.0.1:{}/pnt/big:big", proxy.port)).unwrap();
    let rec = rt().block_on(f.puller().pull(&r, &opts)).unwrap();
    assert_eq!(rec.layers.len(), 2);
    let retries = retries.lock().unwrap();
    assert!(!retries.is_empty(), "the cut connections were retried");
    assert!(
        retries
            .iter()
            .all(|e| e.contains("connection lost") || e.contains("body ended")),
        "{retries:?}"
    );
    f.assert_clean();
}

#[test]
fn registry_dying_mid_blob_for_good_is_a_clear_error() {
    let reg = TestRegistry::start();
    let f = fixture();
    let mut l = f.layout("l");
    let built = l.add("big", &big_image());
    l.push("big", &reg, "pnt/big", &[]);
    let proxy = CutProxy::start(reg.port, 1 << 20, usize::MAX, None);
    let e = f
        .pull(
            &f.puller(),
            &format!("127.0.0.1:{}/pnt/big:big", proxy.port),
        )
        .unwrap_err();
    let msg = e.to_string();
    assert!(
        msg.contains(&built.layers[1].to_string()) || msg.contains("blobs/"),
        "{msg}"
    );
    assert!(
        msg.contains("connection lost") || msg.contains("body ended"),
        "{msg}"
    );
    assert!(f.store.images().unwrap().is_empty());
    f.assert_clean();
}

#[test]
fn concurrent_pulls_share_the_work() {
    let reg = TestRegistry::start();
    let f = fixture();
    let mut l = f.layout("l");
    let built = l.add("c", &big_image());
    l.push("c", &reg, "pnt/conc", &[]);
    let r = Reference::parse(&format!("{}/pnt/conc:c", reg.host())).unwrap();
    let (a, b) = (f.puller(), f.puller());
    let o = PullOptions::default();
    let (ra, rb) = rt().block_on(async { tokio::join!(a.pull(&r, &o), b.pull(&r, &o)) });
    assert_eq!(ra.unwrap().digest, rb.unwrap().digest);
    let snaps = std::fs::read_dir(f.store.root().join("s")).unwrap().count();
    assert_eq!(snaps, built.layers.len(), "each layer unpacked once");
    f.assert_clean();
}

#[test]
fn rm_is_refused_while_a_rootfs_uses_the_image_then_prune_frees_everything() {
    let reg = TestRegistry::start();
    let f = fixture();
    let mut l = f.layout("l");
    l.add("u", &layered(Compression::Gzip, Compression::Gzip));
    l.push("u", &reg, "pnt/used", &[]);
    let r = format!("{}/pnt/used:u", reg.host());
    f.pull(&f.puller(), &r).unwrap();
    let mnt = f.tmp.path().join("mnt-used");
    f.store
        .prepare_rootfs(&r, "pnt-key-1", "pod default/web-1 container nginx", &mnt)
        .unwrap();
    let e = f.store.remove_image(&r).unwrap_err();
    assert!(matches!(e, StoreError::InUse { .. }), "{e}");
    assert!(
        e.to_string().contains("pod default/web-1 container nginx"),
        "{e}"
    );
    // Prune keeps what the rootfs uses.
    let report = f.store.prune().unwrap();
    assert_eq!(report.snapshots, 0);
    f.store.remove_rootfs("pnt-key-1").unwrap();
    f.store.remove_image(&r).unwrap();
    let report = f.store.prune().unwrap();
    assert_eq!(report.snapshots, 2);
    assert!(report.blobs >= 4, "{report:?}");
    assert_eq!(
        std::fs::read_dir(f.store.root().join("blobs/sha256"))
            .unwrap()
            .count(),
        0
    );
}

#[test]
fn ten_rootfs_of_one_image_share_its_snapshots() {
    let reg = TestRegistry::start();
    let f = fixture();
    let mut l = f.layout("l");
    l.add("t", &layered(Compression::Gzip, Compression::Gzip));
    l.push("t", &reg, "pnt/ten", &[]);
    let r = format!("{}/pnt/ten:t", reg.host());
    f.pull(&f.puller(), &r).unwrap();
    let du = |p: &Path| -> u64 {
        let out = std::process::Command::new("du")
            .args(["-s", "-B1", "-x"])
            .arg(p)
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout)
            .split_whitespace()
            .next()
            .unwrap()
            .parse()
            .unwrap()
    };
    let before = du(f.store.root());
    for i in 0..10 {
        let mnt = f.tmp.path().join(format!("m{i}"));
        f.store
            .prepare_rootfs(&r, &format!("pnt-ten-{i}"), &format!("container {i}"), &mnt)
            .unwrap();
        assert!(mnt.join("bin/busybox").exists());
    }
    let after = du(f.store.root());
    // Ten containers add only their empty upper/work directories and records.
    assert!(
        after - before < 10 * 64 * 1024,
        "before {before} after {after}"
    );
    for i in 0..10 {
        f.store.remove_rootfs(&format!("pnt-ten-{i}")).unwrap();
    }
    assert!(f.store.rootfs_records().unwrap().is_empty());
}

#[test]
fn mirrors_from_hosts_toml_are_tried_in_order_then_upstream() {
    let reg = TestRegistry::start();
    let f = fixture();
    let mut l = f.layout("l");
    l.add("m", &Image::new(vec![Layer::busybox(Compression::Gzip)]));
    l.push("m", &reg, "library/mirrored", &[]);
    // docker.io is unreachable here: the dead mirror fails, the live one serves.
    let hosts = f.tmp.path().join("hosts.d");
    std::fs::create_dir_all(hosts.join("docker.io")).unwrap();
    let dead = podnet_oci::testing::free_port();
    std::fs::write(
        hosts.join("docker.io/hosts.toml"),
        format!(
            "server = \"https://registry-1.docker.io\"\n[host.\"http://127.0.0.1:{dead}\"]\n  capabilities = [\"pull\", \"resolve\"]\n[host.\"http://{}\"]\n  capabilities = [\"pull\", \"resolve\"]\n",
            reg.host()
        ),
    )
    .unwrap();
    let dials = Arc::new(Mutex::new(Vec::new()));
    let d2 = dials.clone();
    let dialer: podnet_oci::Dialer = Arc::new(move |host: &str, port: u16| {
        d2.lock().unwrap().push(format!("{host}:{port}"));
        std::net::TcpStream::connect((host, port))
    });
    let p = Puller::new(
        f.store.clone(),
        dialer,
        Hosts::new(Some(hosts), vec![]),
        Keychain::empty(),
    );
    let rec = f.pull(&p, "mirrored:m").unwrap();
    assert_eq!(rec.reference, "docker.io/library/mirrored:m");
    let dials = dials.lock().unwrap();
    assert_eq!(
        dials[0],
        format!("127.0.0.1:{dead}"),
        "the dialer makes every connection: {dials:?}"
    );
    assert!(dials.iter().any(|d| *d == reg.host()));
    assert!(
        !dials.iter().any(|d| d.contains("docker.io")),
        "upstream not needed: {dials:?}"
    );
}

#[test]
fn load_oci_and_docker_archives() {
    let f = fixture();
    let mut l = f.layout("l");
    let built = l.add("arch", &layered(Compression::Gzip, Compression::Gzip));
    let oci_tar = f.tmp.path().join("oci.tar");
    let docker_tar = f.tmp.path().join("docker.tar");
    l.copy(
        "arch",
        &format!("oci-archive:{}:pnt/loaded:oci", oci_tar.display()),
        &[],
    );
    l.copy(
        "arch",
        &format!("docker-archive:{}:pnt/loaded:docker", docker_tar.display()),
        &[],
    );
    let plat = podnet_oci::Platform::linux_amd64();
    let recs = podnet_oci::load::load_archive(&f.store, &oci_tar, &plat).unwrap();
    assert_eq!(recs.len(), 1);
    assert_eq!(recs[0].reference, "docker.io/pnt/loaded:oci");
    assert_eq!(recs[0].digest, built.manifest);
    let recs = podnet_oci::load::load_archive(&f.store, &docker_tar, &plat).unwrap();
    assert_eq!(recs[0].reference, "docker.io/pnt/loaded:docker");
    assert_eq!(recs[0].config, built.config);
    check_rootfs(&f, "pnt/loaded:docker");
    f.assert_clean();
}

#[test]
fn substitutes_are_marked_by_annotation_or_label() {
    let reg = TestRegistry::start();
    let f = fixture();
    let mut l = f.layout("l");
    let mut a = Image::new(vec![Layer::busybox(Compression::Gzip)]);
    a.annotations.push((
        "io.podnet.image.substitute-for",
        "docker.io/library/nginx:latest".into(),
    ));
    a.annotations
        .push(("org.opencontainers.image.title", "nginx substitute".into()));
    l.add("a", &a);
    let mut b = Image::new(vec![Layer::busybox(Compression::Gzip)]);
    b.labels.push((
        "io.podnet.image.substitute-for",
        "docker.io/library/httpd:latest".into(),
    ));
    l.add("b", &b);
    l.add("c", &Image::new(vec![Layer::busybox(Compression::Gzip)]));
    for t in ["a", "b", "c"] {
        l.push(t, &reg, "pnt/sub", &[]);
    }
    let p = f.puller();
    let a = f.pull(&p, &format!("{}/pnt/sub:a", reg.host())).unwrap();
    let b = f.pull(&p, &format!("{}/pnt/sub:b", reg.host())).unwrap();
    let c = f.pull(&p, &format!("{}/pnt/sub:c", reg.host())).unwrap();
    assert_eq!(
        a.substitute_for.as_deref(),
        Some("docker.io/library/nginx:latest")
    );
    assert_eq!(
        a.annotations
            .get("org.opencontainers.image.title")
            .map(String::as_str),
        Some("nginx substitute")
    );
    assert_eq!(
        b.substitute_for.as_deref(),
        Some("docker.io/library/httpd:latest")
    );
    assert_eq!(c.substitute_for, None);
}

/// A front for the registry that demands a bearer token, as Docker Hub does: 401 with a `Bearer`
/// challenge, a token endpoint (anonymous), then requests with the token are passed through.
fn bearer_front(rt: &tokio::runtime::Runtime, upstream: u16) -> (u16, Arc<Mutex<Vec<String>>>) {
    use http_body_util::{BodyExt, Full, combinators::BoxBody};
    use hyper::body::Bytes;
    type Body = BoxBody<Bytes, hyper::Error>;
    let seen = Arc::new(Mutex::new(Vec::new()));
    let listener = rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let port = listener.local_addr().unwrap().port();
    let seen2 = seen.clone();
    rt.spawn(async move {
        let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
            .build_http::<http_body_util::Empty<Bytes>>();
        loop {
            let Ok((stream, _)) = listener.accept().await else { return };
            let (client, seen) = (client.clone(), seen2.clone());
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                    let (client, seen) = (client.clone(), seen.clone());
                    async move {
                        let full = |status: u16, body: String| -> Body {
                            let _ = status;
                            Full::new(Bytes::from(body)).map_err(|never| match never {}).boxed()
                        };
                        let pq = req.uri().path_and_query().map(|p| p.to_string()).unwrap_or_default();
                        seen.lock().unwrap().push(pq.clone());
                        if pq.starts_with("/token") {
                            assert!(pq.contains("scope=repository%3Apnt%2Fbearer%3Apull"), "{pq}");
                            assert!(pq.contains("service=pnt-registry"), "{pq}");
                            return Ok::<_, hyper::Error>(hyper::Response::new(full(200, r#"{"token":"pnt-token-1"}"#.into())));
                        }
                        let auth = req.headers().get("authorization").and_then(|v| v.to_str().ok()).unwrap_or("");
                        if auth != "Bearer pnt-token-1" {
                            let mut r = hyper::Response::new(full(401, r#"{"errors":[{"code":"UNAUTHORIZED"}]}"#.into()));
                            *r.status_mut() = hyper::StatusCode::UNAUTHORIZED;
                            r.headers_mut().insert(
                                "www-authenticate",
                                format!(r#"Bearer realm="http://127.0.0.1:{port}/token",service="pnt-registry",scope="repository:pnt/bearer:pull""#)
                                    .parse()
                                    .unwrap(),
                            );
                            return Ok(r);
                        }
                        let mut fwd = hyper::Request::get(format!("http://127.0.0.1:{upstream}{pq}"));
                        if let Some(a) = req.headers().get("accept") {
                            fwd = fwd.header("accept", a);
                        }
                        let resp = client.request(fwd.body(http_body_util::Empty::new()).unwrap()).await.unwrap();
                        let (parts, body) = resp.into_parts();
                        Ok(hyper::Response::from_parts(parts, body.boxed()))
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    (port, seen)
}

#[test]
fn anonymous_bearer_token_flow() {
    let reg = TestRegistry::start();
    let f = fixture();
    let mut l = f.layout("l");
    let built = l.add("b", &Image::new(vec![Layer::busybox(Compression::Gzip)]));
    l.push("b", &reg, "pnt/bearer", &[]);
    let server = rt();
    let (port, seen) = bearer_front(&server, reg.port);
    let rec = f
        .pull(&f.puller(), &format!("127.0.0.1:{port}/pnt/bearer:b"))
        .unwrap();
    assert_eq!(rec.digest, built.manifest);
    let seen = seen.lock().unwrap();
    let tokens = seen.iter().filter(|p| p.starts_with("/token")).count();
    assert_eq!(tokens, 1, "one token, cached for the blobs: {seen:?}");
}
