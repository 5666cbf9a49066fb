//! `podnet image ...` end to end against a real registry on loopback: output formats, exit codes,
//! archives, and kill -9 in the middle of a pull and of an unpack. Root tests (overlay, ownership).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use podnet_oci::manifest::Compression;
use podnet_oci::testing::{CutProxy, Entry, Image, Layer, Layout, TestRegistry, noise};

struct Cli {
    tmp: tempfile::TempDir,
    store: PathBuf,
}

impl Cli {
    fn new() -> Cli {
        let tmp = tempfile::Builder::new()
            .prefix("pnt-image-cli")
            .tempdir()
            .unwrap();
        let store = tmp.path().join("store");
        Cli { tmp, store }
    }
    fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_podnet"));
        c.arg("image").arg("--store").arg(&self.store).args(args);
        // No lab, no user credentials: only what the test says.
        c.env("DOCKER_CONFIG", self.tmp.path().join("no-docker-config"));
        c
    }
    fn run(&self, args: &[&str]) -> Output {
        self.cmd(args).output().unwrap()
    }
    fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "podnet image {args:?}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }
    fn pull_args<'a>(&'a self, hosts: &'a str, r: &'a str) -> Vec<&'a str> {
        vec!["pull", "--hosts-dir", hosts, r]
    }
    fn hosts(&self) -> String {
        self.tmp.path().join("hosts.d").display().to_string()
    }
    fn dir_entries(&self, d: &str) -> Vec<String> {
        std::fs::read_dir(self.store.join(d))
            .map(|rd| {
                rd.flatten()
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default()
    }
}

fn substitute_image() -> Image {
    let mut img = Image::new(vec![
        Layer::busybox(Compression::Gzip),
        Layer::new(
            Compression::Gzip,
            vec![
                Entry::Dir("etc"),
                Entry::File("etc/hostname", b"pnt\n".to_vec()),
            ],
        ),
    ]);
    img.annotations.push((
        "io.podnet.image.substitute-for",
        "docker.io/library/busybox:latest".into(),
    ));
    img.annotations.push((
        "org.opencontainers.image.description",
        "test substitute".into(),
    ));
    img
}

#[test]
fn pull_list_inspect_rm_prune() {
    let reg = TestRegistry::start();
    let cli = Cli::new();
    let mut l = Layout::new(&cli.tmp.path().join("layout"));
    let built = l.add("v1", &substitute_image());
    l.push("v1", &reg, "pnt/cli", &[]);
    let r = format!("{}/pnt/cli:v1", reg.host());
    let hosts = cli.hosts();

    let out = cli.run(&cli.pull_args(&hosts, &r));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stdout.contains("SUBSTITUTE for docker.io/library/busybox:latest"),
        "{stdout}"
    );
    assert!(
        stderr.contains(&format!("resolved {r} to {}", built.manifest)),
        "plain progress lines off a terminal: {stderr}"
    );
    assert!(
        stderr.contains(&format!("layer {}: done", built.layers[0])),
        "{stderr}"
    );
    // Again: everything is already there.
    let again = cli.run(&cli.pull_args(&hosts, &r));
    assert!(String::from_utf8_lossy(&again.stderr).contains("already in the store"));

    let table = cli.ok(&["list"]);
    assert!(
        table.lines().next().unwrap().contains("SUBSTITUTE"),
        "{table}"
    );
    assert!(
        table.contains(&r) && table.contains("yes, for docker.io/library/busybox:latest"),
        "{table}"
    );

    let json: serde_json::Value = serde_json::from_str(&cli.ok(&["list", "-o", "json"])).unwrap();
    let i = &json[0];
    assert_eq!(i["reference"], r.as_str());
    assert_eq!(i["digest"], built.manifest.to_string());
    assert_eq!(i["id"], built.config.to_string());
    assert_eq!(i["platform"], "linux/amd64");
    assert_eq!(i["created"], "2026-01-02T03:04:05Z");
    assert_eq!(i["substitute"], true);
    assert_eq!(i["substituteFor"], "docker.io/library/busybox:latest");
    assert_eq!(
        i["annotations"]["org.opencontainers.image.description"],
        "test substitute"
    );
    assert!(i["size"].as_u64().unwrap() > 500_000);

    let inspect: serde_json::Value = serde_json::from_str(&cli.ok(&["inspect", &r])).unwrap();
    assert_eq!(inspect["layers"].as_array().unwrap().len(), 2);
    assert_eq!(inspect["config"]["architecture"], "amd64");
    assert_eq!(
        inspect["manifest"]["annotations"]["io.podnet.image.substitute-for"],
        "docker.io/library/busybox:latest"
    );
    // By image ID prefix too.
    cli.ok(&["inspect", built.config.short()]);

    assert!(cli.ok(&["rm", &r]).contains("removed"));
    assert_eq!(cli.ok(&["list", "-o", "json"]).trim(), "[]");
    let pruned = cli.ok(&["prune"]);
    assert!(pruned.contains("2 snapshots"), "{pruned}");
    assert!(cli.dir_entries("s").is_empty());
}

#[test]
fn missing_reference_exits_non_zero_naming_it() {
    let reg = TestRegistry::start();
    let cli = Cli::new();
    let r = format!("{}/pnt/absent:nope", reg.host());
    let out = cli.run(&cli.pull_args(&cli.hosts(), &r));
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(&r) && err.contains("not found"), "{err}");
    let bad = cli.run(&["pull", "Not A Reference"]);
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("invalid image reference"));
    let rm = cli.run(&["rm", "never-pulled"]);
    assert!(!rm.status.success());
    assert!(String::from_utf8_lossy(&rm.stderr).contains("never-pulled"));
}

#[test]
fn load_oci_and_docker_archives() {
    let cli = Cli::new();
    let mut l = Layout::new(&cli.tmp.path().join("layout"));
    let built = l.add("a", &substitute_image());
    let oci = cli.tmp.path().join("oci.tar");
    let docker = cli.tmp.path().join("docker.tar");
    l.copy(
        "a",
        &format!("oci-archive:{}:pnt/arch:oci", oci.display()),
        &[],
    );
    l.copy(
        "a",
        &format!("docker-archive:{}:pnt/arch:docker", docker.display()),
        &[],
    );
    assert!(
        cli.ok(&["load", oci.to_str().unwrap()])
            .contains("docker.io/pnt/arch:oci")
    );
    assert!(
        cli.ok(&["load", docker.to_str().unwrap()])
            .contains("docker.io/pnt/arch:docker")
    );
    let json: serde_json::Value = serde_json::from_str(&cli.ok(&["list", "-o", "json"])).unwrap();
    let refs: Vec<&str> = json
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["reference"].as_str().unwrap())
        .collect();
    assert_eq!(
        refs,
        ["docker.io/pnt/arch:docker", "docker.io/pnt/arch:oci"]
    );
    assert_eq!(json[1]["digest"], built.manifest.to_string());
    assert_eq!(
        json[1]["substitute"], true,
        "the annotation survives an OCI archive"
    );
    let out = cli.run(&["load", "/etc/hostname"]);
    assert!(!out.status.success());
}

fn big_image() -> Image {
    Image::new(vec![
        Layer::busybox(Compression::Gzip),
        Layer::new(
            Compression::Gzip,
            vec![Entry::File("noise1", noise(4 << 20, 7))],
        ),
        Layer::new(
            Compression::None,
            vec![Entry::File("noise2", noise(4 << 20, 8))],
        ),
    ])
}

/// Start `cmd`, wait until `ready()` says it is in the middle of the work, kill -9 it.
fn kill_when(mut cmd: Command, ready: impl Fn() -> bool) {
    let mut child = cmd
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while !ready() {
        assert!(Instant::now() < deadline, "the work never started");
        assert!(
            child.try_wait().unwrap().is_none(),
            "finished before it could be killed"
        );
        std::thread::sleep(Duration::from_millis(2));
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
}

#[test]
fn kill_9_during_pull_then_pull_succeeds() {
    let reg = TestRegistry::start();
    let cli = Cli::new();
    let mut l = Layout::new(&cli.tmp.path().join("layout"));
    l.add("big", &big_image());
    l.push("big", &reg, "pnt/big", &[]);
    // A slow path to the registry so the kill lands mid-transfer.
    let proxy = CutProxy::start(reg.port, usize::MAX, 0, Some(Duration::from_millis(5)));
    let hosts = cli.hosts();
    let slow = format!("127.0.0.1:{}/pnt/big:big", proxy.port);
    kill_when(cli.cmd(&cli.pull_args(&hosts, &slow)), || {
        !cli.dir_entries("ingest").is_empty() && !cli.dir_entries("tmp").is_empty()
    });
    assert_eq!(
        cli.ok(&["list", "-o", "json"]).trim(),
        "[]",
        "a killed pull records nothing"
    );
    assert!(
        !cli.dir_entries("ingest").is_empty(),
        "the killed pull left its temporaries"
    );
    // The next pull ignores the leftovers and completes.
    let out = cli.ok(&cli.pull_args(&hosts, &slow));
    assert!(out.contains("pulled"));
    assert!(cli.dir_entries("ingest").is_empty() && cli.dir_entries("tmp").is_empty());
    drop(proxy);
}

#[test]
fn kill_9_during_unpack_then_load_succeeds() {
    let cli = Cli::new();
    let mut l = Layout::new(&cli.tmp.path().join("layout"));
    l.add("big", &big_image());
    let archive = cli.tmp.path().join("big.tar");
    l.copy(
        "big",
        &format!("oci-archive:{}:pnt/big:v1", archive.display()),
        &[],
    );
    // Load unpacks from local files: kill it while a snapshot is being written.
    kill_when(cli.cmd(&["load", archive.to_str().unwrap()]), || {
        cli.dir_entries("tmp")
            .iter()
            .any(|n| !n.starts_with("load-"))
    });
    assert_eq!(cli.ok(&["list", "-o", "json"]).trim(), "[]");
    let out = cli.ok(&["load", archive.to_str().unwrap()]);
    assert!(out.contains("docker.io/pnt/big:v1"), "{out}");
    let pruned = cli.ok(&["prune"]);
    assert!(pruned.contains("0 snapshots"), "{pruned}");
    // Every layer is there and complete: a rootfs can be made from it.
    let inspect: serde_json::Value =
        serde_json::from_str(&cli.ok(&["inspect", "pnt/big:v1"])).unwrap();
    for layer in inspect["layers"].as_array().unwrap() {
        let snap = PathBuf::from(layer["snapshot"].as_str().unwrap());
        assert!(snap.is_dir());
    }
    assert!(
        Path::new(inspect["layers"][1]["snapshot"].as_str().unwrap())
            .join("noise1")
            .metadata()
            .unwrap()
            .len()
            == 4 << 20
    );
}

/// The lab's situation: the puller lives in a network namespace with no way out (here: not even to the
/// machine's loopback), and its dialer opens each connection from a short-lived thread inside the
/// machine's namespace, as the node agent's will.
#[test]
fn pull_from_an_isolated_namespace_through_a_dialer() {
    use std::sync::Arc;
    let reg = TestRegistry::start();
    let cli = Cli::new();
    let mut l = Layout::new(&cli.tmp.path().join("layout"));
    let built = l.add("ns", &substitute_image());
    l.push("ns", &reg, "pnt/ns", &[]);
    let machine = Arc::new(podnet_netns::NetNs::current().unwrap());
    let isolated = podnet_testkit::TestNs::new("img");
    let port = reg.port;
    let store = podnet_oci::Store::open(&cli.store).unwrap();
    let rec = isolated.run(|| {
        assert!(
            std::net::TcpStream::connect(("127.0.0.1", port)).is_err(),
            "the isolated namespace cannot reach the registry itself"
        );
        let dialer: podnet_oci::Dialer = Arc::new(move |host: &str, port: u16| {
            let host = host.to_string();
            machine
                .run(move || std::net::TcpStream::connect((host.as_str(), port)))
                .map_err(std::io::Error::other)?
        });
        let puller = podnet_oci::Puller::new(
            store.clone(),
            dialer,
            podnet_oci::Hosts::default(),
            podnet_oci::Keychain::empty(),
        );
        // Runtime threads are created here, so they too live in the isolated namespace.
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let r = podnet_oci::Reference::parse(&format!("127.0.0.1:{port}/pnt/ns:ns")).unwrap();
        rt.block_on(puller.pull(&r, &podnet_oci::PullOptions::default()))
    });
    let rec = rec.unwrap();
    assert_eq!(rec.digest, built.manifest);
    assert_eq!(
        rec.substitute_for.as_deref(),
        Some("docker.io/library/busybox:latest")
    );
}
