//! The lab's image mirror, through the real `podnet` binary: `up` starts a registry on loopback and
//! writes the hosts files that put it behind each upstream, pushes the substitutes into it, brings
//! it back when it dies; `down` removes both. Root tests; each uses its own lab.
//!
//! Needs the substitutes built (`scripts/substitutes.sh`, which `./run test` runs first).

mod common;

use common::*;
use serde_json::Value;
use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::path::Path;
use std::time::Duration;

fn state(lab: &Lab) -> Value {
    serde_json::from_slice(&std::fs::read(format!("/run/podnet/{}/state.json", lab.name)).unwrap())
        .unwrap()
}

fn v2_status(address: &str) -> Option<String> {
    let mut s = TcpStream::connect(address).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(
        s,
        "GET /v2/ HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut line = String::new();
    BufReader::new(s).read_line(&mut line).ok()?;
    line.split_whitespace().nth(1).map(str::to_string)
}

fn cmdline(pid: u64) -> Vec<String> {
    std::fs::read(format!("/proc/{pid}/cmdline"))
        .map(|c| {
            c.split(|b| *b == 0)
                .filter(|s| !s.is_empty())
                .map(|s| String::from_utf8_lossy(s).into_owned())
                .collect()
        })
        .unwrap_or_default()
}

/// Registries of this lab still running (found by the config path on their command line).
fn registries(lab: &str) -> usize {
    let config = format!("/run/podnet/{lab}/registry.yml");
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u64>().ok())
        .filter(|p| cmdline(*p).contains(&config))
        .count()
}

#[test]
fn the_image_mirror_comes_up_with_the_lab_and_goes_with_down() {
    assert!(
        Path::new("/var/lib/podnet/_substitutes/index.json").exists(),
        "no substitutes built: run scripts/substitutes.sh"
    );
    let lab = Lab::up(&["--nodes", "1"]);
    let s = state(&lab);
    let address = s["mirror"]["address"].as_str().unwrap().to_string();
    let pid = s["mirror"]["pid"].as_u64().unwrap();
    assert!(address.starts_with("127.0.0.1:"), "{address}");
    assert_eq!(v2_status(&address).as_deref(), Some("200"));
    assert_eq!(
        cmdline(pid),
        [
            "docker-registry".to_string(),
            "serve".into(),
            format!("/run/podnet/{}/registry.yml", lab.name)
        ]
    );

    // One hosts file per upstream: the upstream first, then the mirror under its namespace.
    let hosts_dir = format!("/var/lib/podnet/{}/hosts.d", lab.name);
    assert_eq!(s["mirror"]["hosts_dir"], hosts_dir.as_str());
    for (registry, upstream) in [
        ("docker.io", "https://registry-1.docker.io"),
        ("registry.k8s.io", "https://registry.k8s.io"),
        ("k8s.gcr.io", "https://k8s.gcr.io"),
    ] {
        let text = std::fs::read_to_string(format!("{hosts_dir}/{registry}/hosts.toml")).unwrap();
        assert!(text.contains(&format!("server = \"{upstream}\"")), "{text}");
        let first = text.find(&format!("[host.\"{upstream}\"]")).unwrap();
        let mirror = text
            .find(&format!("[host.\"http://{address}/v2/{registry}\"]"))
            .unwrap();
        assert!(first < mirror, "{text}");
    }

    // The substitutes were pushed: what the hosts file points at resolves, labelled as such.
    let inspect = |r: &str| -> Value {
        let out = std::process::Command::new("skopeo")
            .args(["inspect", "--tls-verify=false"])
            .arg(format!("docker://{address}/{r}"))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "skopeo inspect {r}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap()
    };
    assert_eq!(
        inspect("docker.io/library/nginx:latest")["Labels"]["io.podnet.image.substitute-for"],
        "docker.io/library/nginx:latest"
    );
    assert_eq!(
        inspect("k8s.gcr.io/echoserver:1.4")["Labels"]["io.podnet.image.substitute-for"],
        "k8s.gcr.io/echoserver:1.4"
    );

    // A second `up` leaves it alone; a dead registry is brought back on the same address.
    let out = lab.ok(&["up", "--api-port", "0"]);
    assert!(out.contains("all in the mirror"), "{out}");
    assert_eq!(state(&lab)["mirror"]["pid"].as_u64(), Some(pid));
    std::process::Command::new("kill")
        .args(["-9", &pid.to_string()])
        .status()
        .unwrap();
    std::thread::sleep(Duration::from_millis(100));
    let out = lab.ok(&["up", "--api-port", "0"]);
    assert!(out.contains("restarted the image mirror"), "{out}");
    let s = state(&lab);
    assert_ne!(s["mirror"]["pid"].as_u64(), Some(pid));
    assert_eq!(s["mirror"]["address"], address.as_str());
    assert_eq!(v2_status(&address).as_deref(), Some("200"));
    assert_eq!(registries(&lab.name), 1);

    lab.ok(&["down"]);
    assert_eq!(registries(&lab.name), 0, "the registry outlived `down`");
    assert!(!Path::new(&hosts_dir).exists(), "{hosts_dir} left behind");
    assert_eq!(v2_status(&address), None);
    // The shared storage stays for the other labs.
    assert!(Path::new("/var/lib/podnet/_registry").is_dir());
}

/// A lab whose `up` was killed right after it started the registry: `down` still finds the
/// registry by its command line and stops it.
#[test]
fn down_finds_the_registry_without_the_state_file() {
    let lab = Lab::up(&["--nodes", "1"]);
    assert_eq!(registries(&lab.name), 1);
    std::fs::remove_file(format!("/run/podnet/{}/state.json", lab.name)).unwrap();
    lab.ok(&["down"]);
    assert_eq!(registries(&lab.name), 0);
}
