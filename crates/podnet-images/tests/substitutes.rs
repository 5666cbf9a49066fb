//! The substitutes end to end (root): built (from the shared layer cache, `.cache/images`, so a
//! warm run takes seconds and a cold one a couple of minutes), pushed with skopeo into a real
//! registry on loopback (Debian's docker-registry), inspected there, pulled back and unpacked with
//! umoci, and run: httpd answers and survives `kill -HUP 1`, nginx serves its welcome page and logs
//! to stdout, the echo server answers across namespaces as seed 003 shows.
//!
//! Needs the static echo server: `scripts/build-static.sh` (which `./run test` runs first).

use podnet_images::{Options, build, debian::Mirrors, publish, recipe};
use podnet_testkit::{TempDir, TestNs, link};
use serde_json::Value;
use std::collections::BTreeMap;
use std::io::Read;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn static_bin(name: &str) -> PathBuf {
    repo()
        .join("target/static/x86_64-unknown-linux-gnu/release")
        .join(name)
}

/// A child process killed (with its process group's leader) when the test ends.
struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A docker-registry on 127.0.0.1 with its own storage, stopped when dropped.
struct Registry {
    address: String,
    _proc: Proc,
    _dir: TempDir,
}

impl Registry {
    fn start() -> Registry {
        let dir = TempDir::new("registry");
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let address = format!("127.0.0.1:{port}");
        let config = dir.0.join("config.yml");
        std::fs::write(
            &config,
            format!(
                "version: 0.1\nlog:\n  level: warn\n  accesslog:\n    disabled: true\nstorage:\n  filesystem:\n    rootdirectory: {}\nhttp:\n  addr: {address}\n  secret: test\n",
                dir.0.join("storage").display()
            ),
        )
        .unwrap();
        let proc = Proc(
            Command::new("docker-registry")
                .arg("serve")
                .arg(&config)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("start docker-registry (scripts/setup.sh installs it)"),
        );
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(&address).is_err() {
            assert!(Instant::now() < deadline, "the registry did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
        Registry {
            address,
            _proc: proc,
            _dir: dir,
        }
    }
}

/// The substitutes built into a fresh layout and pushed into a fresh registry.
struct Fixture {
    out: TempDir,
    registry: Registry,
    built: podnet_images::Report,
    work: TempDir,
}

fn fixture() -> Fixture {
    podnet_testkit::require_root();
    let echoserver = static_bin("podnet-echoserver");
    assert!(
        echoserver.is_file(),
        "{} is missing: run scripts/build-static.sh",
        echoserver.display()
    );
    // podnet-pause when scripts/build-pause.sh has built it; without it any static binary stands in.
    let pause = Some(repo().join("target/x86_64-unknown-linux-gnu/pause/podnet-pause"))
        .filter(|p| p.is_file())
        .unwrap_or_else(|| echoserver.clone());
    // podnet-dns is built by scripts/build-static.sh too; without it the echoserver stands in.
    let dns = Some(static_bin("podnet-dns"))
        .filter(|p| p.is_file())
        .unwrap_or_else(|| echoserver.clone());
    // podnet-ingress likewise.
    let ingress = Some(static_bin("podnet-ingress"))
        .filter(|p| p.is_file())
        .unwrap_or_else(|| echoserver.clone());
    let out = TempDir::new("substitutes");
    let opts = Options {
        cache_dir: std::env::var_os("PODNET_IMAGE_CACHE")
            .map(PathBuf::from)
            .unwrap_or_else(|| repo().join(".cache/images")),
        out_dir: out.0.join("layout"),
        mirrors: Mirrors::default(),
        echoserver: Some(echoserver),
        pause: Some(pause),
        dns: Some(dns),
        ingress: Some(ingress),
        only: vec![],
    };
    let built = build(&opts, &mut |l| eprintln!("{l}")).expect("build the substitutes");
    assert!(built.skipped.is_empty(), "{:?}", built.skipped);
    let registry = Registry::start();
    let pushed = publish::publish(&opts.out_dir, &registry.address, &mut |l| eprintln!("{l}"))
        .expect("push to the registry");
    assert_eq!(pushed.pushed.len(), built.refs.len());
    Fixture {
        out,
        registry,
        built,
        work: TempDir::new("unpacked"),
    }
}

fn sh(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("run {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn skopeo_inspect(address: &str, reference: &str, raw: bool) -> Value {
    let mut cmd = Command::new("skopeo");
    cmd.args(["inspect", "--tls-verify=false"]);
    if raw {
        cmd.arg("--raw");
    }
    cmd.arg(format!("docker://{address}/{reference}"));
    serde_json::from_str(&sh(&mut cmd)).unwrap()
}

impl Fixture {
    /// Pulls `reference` back from the registry and unpacks it with umoci: the root filesystem
    /// and the runtime config as a container runtime would get them.
    fn unpack(&self, reference: &str) -> (PathBuf, Value) {
        let name = reference.replace(['/', ':', '.'], "-");
        let layout = self.work.0.join("pulled");
        sh(Command::new("skopeo")
            .args(["copy", "--quiet", "--src-tls-verify=false"])
            .arg(format!("docker://{}/{reference}", self.registry.address))
            .arg(format!("oci:{}:{name}", layout.display())));
        let bundle = self.work.0.join(&name);
        sh(Command::new("umoci")
            .args(["unpack", "--image"])
            .arg(format!("{}:{name}", layout.display()))
            .arg(&bundle));
        let config: Value =
            serde_json::from_slice(&std::fs::read(bundle.join("config.json")).unwrap()).unwrap();
        (bundle.join("rootfs"), config)
    }
}

#[test]
fn every_substitute_is_in_the_registry_and_says_it_is_a_substitute() {
    let f = fixture();
    let substitutes: BTreeMap<&str, Option<&str>> = recipe::IMAGES
        .iter()
        .flat_map(|i| i.refs)
        .map(|r| (r.reference, r.substitute_for))
        .collect();
    assert_eq!(f.built.refs.len(), substitutes.len());
    for b in &f.built.refs {
        let info = skopeo_inspect(&f.registry.address, &b.reference, false);
        assert_eq!(info["Digest"], b.manifest.as_str(), "{}", b.reference);
        let manifest = skopeo_inspect(&f.registry.address, &b.reference, true);
        let labels = &info["Labels"];
        // The same statement in the manifest and in the config.
        assert_eq!(&manifest["annotations"], labels, "{}", b.reference);
        let description = labels["org.opencontainers.image.description"]
            .as_str()
            .unwrap();
        for key in [
            "org.opencontainers.image.title",
            "org.opencontainers.image.version",
            "org.opencontainers.image.created",
            "org.opencontainers.image.source",
            "org.opencontainers.image.base.name",
        ] {
            assert!(labels[key].is_string(), "{}: no {key}", b.reference);
        }
        match substitutes[b.reference.as_str()] {
            Some(upstream) => {
                assert_eq!(labels[podnet_images::SUBSTITUTE_KEY], upstream);
                assert!(
                    description.starts_with(&format!("podnet substitute for {upstream}: "))
                        && description.ends_with("built locally; not the upstream image"),
                    "{description}"
                );
            }
            None => {
                assert!(labels.get(podnet_images::SUBSTITUTE_KEY).is_none());
                assert!(
                    description.starts_with("podnet's own image"),
                    "{description}"
                );
            }
        }
        assert_eq!(info["Architecture"], "amd64");
    }
    // Everything is in the registry now: a second publish pushes nothing.
    let again =
        publish::publish(&f.out.0.join("layout"), &f.registry.address, &mut |_| {}).unwrap();
    assert!(again.pushed.is_empty(), "{:?}", again.pushed);
    assert_eq!(again.present.len(), f.built.refs.len());
    // The Debian images share one base layer.
    let layers = |r: &str| -> Vec<Value> {
        skopeo_inspect(&f.registry.address, r, false)["Layers"]
            .as_array()
            .unwrap()
            .clone()
    };
    let base = layers("localhost/podnet/debian:bookworm");
    assert_eq!(base.len(), 1);
    for r in [
        "docker.io/library/nginx:latest",
        "docker.io/library/httpd:latest",
        "docker.io/library/ubuntu:latest",
        "registry.k8s.io/echoserver:1.4",
    ] {
        assert_eq!(layers(r)[0], base[0], "{r} is not on the shared base");
    }
}

/// A process started in a fresh PID and mount namespace chrooted into `root`, inside `ns`, like a
/// container (its first process is PID 1); killed with its namespace when dropped.
fn container(ns: &TestNs, root: &Path, env_path: &str, script: &str) -> (Proc, PathBuf) {
    let log = root.with_extension("log");
    let file = std::fs::File::create(&log).unwrap();
    // /dev as runc makes it: a tmpfs with null and the std stream links (nginx logs to
    // /dev/stdout), set up inside the new mount namespace before the chroot.
    let setup = r#"
r=$1; shift
mount -t tmpfs -o mode=755 tmpfs "$r/dev"
for d in null zero urandom; do touch "$r/dev/$d"; mount --bind "/dev/$d" "$r/dev/$d"; done
ln -s /proc/self/fd "$r/dev/fd"
ln -s /proc/self/fd/0 "$r/dev/stdin"; ln -s /proc/self/fd/1 "$r/dev/stdout"; ln -s /proc/self/fd/2 "$r/dev/stderr"
exec chroot "$r" "$@"
"#;
    let child = ns
        .command("unshare")
        .args([
            "--pid",
            "--fork",
            "--kill-child",
            "--mount",
            "--propagation",
            "private",
        ])
        .arg(format!("--mount-proc={}", root.join("proc").display()))
        .args(["/bin/sh", "-euc", setup, "sh"])
        .arg(root)
        .args(["/usr/bin/env", "-i", env_path, "/bin/sh", "-c", script])
        .stdout(file.try_clone().unwrap())
        .stderr(file)
        .spawn()
        .unwrap();
    (Proc(child), log)
}

fn wait_for(what: &str, mut ok: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !ok() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn curl(ns: &TestNs, url: &str) -> Option<String> {
    let out = ns.try_sh("curl", &["-sS", "--max-time", "3", url]);
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Seed 000's httpd container: the files it shows, then apache as PID 1 answering, restarting on
/// SIGHUP (apache's graceful restart) and logging requests to stdout.
#[test]
fn the_httpd_substitute_is_laid_out_as_seed_000_shows_and_restarts_on_hup() {
    let f = fixture();
    let (root, config) = f.unpack("docker.io/library/httpd:latest");
    let apache = root.join("usr/local/apache2");
    assert_eq!(
        std::fs::read_to_string(apache.join("htdocs/index.html")).unwrap(),
        "<html><body><h1>It works!</h1></body></html>\n"
    );
    let conf = std::fs::read_to_string(apache.join("conf/httpd.conf")).unwrap();
    assert!(
        conf.lines()
            .any(|l| l == "CustomLog /proc/self/fd/1 common")
    );
    assert_eq!(std::fs::read_dir(apache.join("logs")).unwrap().count(), 0);
    for tool in [
        "bin/bash",
        "usr/bin/curl",
        "usr/local/apache2/bin/httpd-foreground",
    ] {
        assert!(root.join(tool).is_file(), "{tool}");
    }
    assert_eq!(config["process"]["cwd"], "/usr/local/apache2");
    assert_eq!(config["process"]["args"][0], "httpd-foreground");

    let ns = TestNs::new("httpd");
    ns.sh("ip", &["link", "set", "lo", "up"]);
    let (server, log) = container(
        &ns,
        &root,
        "PATH=/usr/local/apache2/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        "cd /usr/local/apache2 && exec httpd-foreground",
    );
    wait_for("httpd to answer", || {
        curl(&ns, "http://127.0.0.1/").is_some_and(|b| b.contains("It works!"))
    });
    // `kill -HUP 1` inside the container: PID 1 is apache.
    let children = std::fs::read_to_string(format!(
        "/proc/{}/task/{}/children",
        server.0.id(),
        server.0.id()
    ))
    .unwrap();
    let pid1: u32 = children.split_whitespace().next().unwrap().parse().unwrap();
    sh(Command::new("nsenter")
        .arg(format!("--target={pid1}"))
        .args(["--pid", "--", "kill", "-HUP", "1"]));
    wait_for("apache's restart", || {
        std::fs::read_to_string(&log).is_ok_and(|l| l.contains("SIGHUP received"))
    });
    wait_for("httpd to answer after the restart", || {
        curl(&ns, "http://127.0.0.1/").is_some_and(|b| b.contains("It works!"))
    });
    assert!(
        Path::new(&format!("/proc/{pid1}")).exists(),
        "apache is still PID 1"
    );
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(text.contains("\"GET / HTTP/1.1\" 200 45"), "{text}");
    drop(server);
}

/// Seed 002's nginx container: the welcome page on :80, access log on stdout.
#[test]
fn the_nginx_substitute_serves_its_welcome_page_and_logs_to_stdout() {
    let f = fixture();
    for r in [
        "docker.io/library/nginx:latest",
        "docker.io/library/nginx:alpine",
    ] {
        let (root, config) = f.unpack(r);
        assert_eq!(
            config["process"]["args"],
            serde_json::json!(["nginx", "-g", "daemon off;"]),
            "{r}"
        );
        assert_eq!(
            std::fs::read_link(root.join("var/log/nginx/access.log")).unwrap(),
            Path::new("/dev/stdout")
        );
        let ns = TestNs::new("nginx");
        ns.sh("ip", &["link", "set", "lo", "up"]);
        let (server, log) = container(
            &ns,
            &root,
            "PATH=/usr/sbin:/usr/bin:/sbin:/bin",
            "exec nginx -g 'daemon off;'",
        );
        let mut page = String::new();
        wait_for("nginx to answer", || {
            curl(&ns, "http://127.0.0.1/").is_some_and(|b| {
                page = b;
                true
            })
        });
        assert!(page.contains("<h1>Welcome to nginx!</h1>"), "{page}");
        wait_for("the access log line on stdout", || {
            std::fs::read_to_string(&log).is_ok_and(|l| l.contains("\"GET / HTTP/1.1\" 200"))
        });
        drop(server);
    }
}

/// Seed 003: echoserver-1 answers echoserver-2's curl with both addresses; the image has bash and
/// curl for `kubectl exec -it echoserver-2 /bin/bash`.
#[test]
fn the_echoserver_substitute_answers_across_namespaces() {
    let f = fixture();
    for r in [
        "registry.k8s.io/echoserver:1.4",
        "k8s.gcr.io/echoserver:1.4",
    ] {
        let (root, config) = f.unpack(r);
        assert!(root.join("bin/bash").is_file() && root.join("usr/bin/curl").is_file());
        assert_eq!(
            config["process"]["args"][0],
            "/usr/local/bin/podnet-echoserver"
        );
        let a = TestNs::new("echo1");
        let b = TestNs::new("echo2");
        link(
            &a,
            "eth0",
            "10.78.0.1/24".parse().unwrap(),
            &b,
            "eth0",
            "10.78.0.2/24".parse().unwrap(),
        );
        let (_server, _log) = container(
            &a,
            &root,
            "PATH=/usr/local/bin:/usr/bin:/bin",
            "exec /usr/local/bin/podnet-echoserver",
        );
        let mut body = String::new();
        wait_for("the echo server", || {
            curl(&b, "http://10.78.0.1:8080/").is_some_and(|t| {
                body = t;
                true
            })
        });
        assert!(body.starts_with("CLIENT VALUES:\nclient_address=10.78.0.2\ncommand=GET\nreal path=/\nquery=nil\nrequest_version=1.1\nrequest_uri=http://10.78.0.1:8080/\n\nSERVER VALUES:\nserver_version=podnet-echoserver: "), "{body}");
        assert!(body.ends_with("BODY:\n-no body in request-\n"), "{body}");
    }
}

/// ubuntu has bash, coreutils, curl and `ps -aux`; busybox is busybox alone with its applets
/// (wget for seed 002); pause is one static binary.
#[test]
fn ubuntu_busybox_and_pause_hold_what_the_tutorials_run() {
    let f = fixture();
    let (root, _) = f.unpack("docker.io/library/ubuntu:latest");
    for tool in [
        "bin/bash",
        "usr/bin/ls",
        "usr/bin/curl",
        "usr/bin/ps",
        "usr/bin/apt-get",
    ] {
        assert!(root.join(tool).is_file(), "ubuntu: {tool}");
    }
    let ns = TestNs::new("ubuntu");
    let (_c, log) = container(
        &ns,
        &root,
        "PATH=/usr/bin:/bin",
        "ps -aux && curl --version && bash -c 'echo bash $BASH_VERSION'",
    );
    wait_for("ubuntu's commands", || {
        std::fs::read_to_string(&log).is_ok_and(|l| l.contains("bash 5."))
    });
    let out = std::fs::read_to_string(&log).unwrap();
    assert!(out.contains("USER") && out.contains("PID"), "{out}");
    assert!(out.contains("curl 7."), "{out}");

    let (root, config) = f.unpack("docker.io/library/busybox:latest");
    assert_eq!(config["process"]["args"], serde_json::json!(["sh"]));
    assert!(root.join("bin/busybox").is_file());
    assert_eq!(
        std::fs::read_link(root.join("bin/sh")).unwrap(),
        Path::new("/bin/busybox")
    );
    assert!(root.join("usr/bin/wget").symlink_metadata().is_ok());
    assert!(
        !root.join("usr/bin/apt-get").exists(),
        "busybox has no Debian under it"
    );
    let ns = TestNs::new("busybox");
    let (_c, log) = container(
        &ns,
        &root,
        "PATH=/bin:/usr/bin:/sbin:/usr/sbin",
        "mkdir -p /usr/share/nginx/html && echo Hello from Container 2 >> /usr/share/nginx/html/index.html && cat /usr/share/nginx/html/index.html",
    );
    wait_for("busybox's shell", || {
        std::fs::read_to_string(&log).is_ok_and(|l| l.contains("Hello from Container 2"))
    });

    let (root, config) = f.unpack("registry.k8s.io/pause:3.10");
    assert_eq!(config["process"]["args"], serde_json::json!(["/pause"]));
    let mut files: Vec<String> = std::fs::read_dir(&root)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    files.sort();
    assert_eq!(files, ["pause"]);
    let mut head = [0u8; 4];
    std::fs::File::open(root.join("pause"))
        .unwrap()
        .read_exact(&mut head)
        .unwrap();
    assert_eq!(&head, b"\x7fELF");
}
