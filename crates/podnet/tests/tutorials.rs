//! The five seed tutorials walked through end to end (issue 11's "Must show"): each on a fresh
//! two-node lab, `podnet tutorial run NNN` runs the seed's commands with the real kubectl and helm
//! and checks every output the walkthrough names (a step whose output does not show what it should
//! fails the run, naming the step). These tests add what the whole run must show. Root tests; each
//! lab is torn down in `Drop`, also on failure.

mod common;

use common::kube::{LONG, wait_for};
use common::*;

/// Runs one walkthrough on a fresh lab; returns its output after asserting it passed.
fn walk(id: &str) -> String {
    let lab = Lab::up(&["--nodes", "2"]);
    let out = lab.podnet(&["tutorial", "run", id]);
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "walkthrough {id} failed:\n{text}");
    assert!(text.contains(&format!("━━ Seed {id} done")), "{text}");
    assert!(
        !text.contains('✗'),
        "a failed check in a passing run:\n{text}"
    );
    assert!(
        !text.contains("cleanup of seed"),
        "cleanup reported errors:\n{text}"
    );
    // What the walkthrough created goes (pods of a deleted Deployment terminate gracefully):
    // only the cluster DNS pods remain.
    wait_for(&format!("the pods of walkthrough {id} to go"), LONG, || {
        let pods = lab.kubectl_ok(&["get", "pods", "-A", "--no-headers"]);
        if pods.lines().all(|l| l.starts_with("kube-system")) {
            Ok(())
        } else {
            Err(pods)
        }
    });
    text
}

#[test]
fn seed_000_logs_localhost_pod_addresses_and_shared_processes() {
    let text = walk("000");
    for shown in [
        "$ helm install dev debug",
        "hello world",
        "root@example-dev:/usr/local/apache2# curl localhost",
        "<h1>It works!</h1>",
        "SIGHUP received",
        "$ helm install another tester",
        "root@example-dev:/# ps -aux",
        "podnet-pause",
    ] {
        assert!(
            text.contains(shown),
            "walkthrough 000 does not show {shown:?}:\n{text}"
        );
    }
    // Commands typed in a shell run on a terminal: curl prints no progress meter.
    assert!(!text.contains("% Total"), "{text}");
}

#[test]
fn seed_001_two_nodes_bridges_and_the_three_ways_between_them() {
    let text = walk("001");
    for shown in [
        "(pause sandbox) /pause",
        "10.244.1.0/24 via 10.100.0.2",
        "VXLAN",
        "You came from 10.100.0.3",
    ] {
        assert!(
            text.contains(shown),
            "walkthrough 001 does not show {shown:?}:\n{text}"
        );
    }
}

#[test]
fn seed_002_multi_container_pod_image_pull_and_dns() {
    let text = walk("002");
    for shown in [
        "Hello from Container 2",
        "ImagePullBackOff",
        "Failed to pull image \"nginx:no-such-tag\"",
        "Address: 10.96.0.1",
    ] {
        assert!(
            text.contains(shown),
            "walkthrough 002 does not show {shown:?}:\n{text}"
        );
    }
}

#[test]
fn seed_003_pod_to_pod_without_translation() {
    let text = walk("003");
    // echoserver-2 saw its own pod address as the client's.
    let client = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("client_address=10.244."))
        .map(str::to_string);
    assert!(client.is_some(), "{text}");
    assert!(
        text.contains("Use exec [POD] -- [COMMAND] instead"),
        "{text}"
    );
}

#[test]
fn seed_004_pause_sandbox_veth_peer_and_node_port() {
    let text = walk("004");
    for shown in [
        "peer_ifindex:",
        "\"NetworkMode\": \"container:",
        "table ip podnet-services",
        "NodePort",
        "Welcome to nginx!",
    ] {
        assert!(
            text.contains(shown),
            "walkthrough 004 does not show {shown:?}:\n{text}"
        );
    }
}

/// A walkthrough that does not show what it should fails, naming the step; cleanup still runs.
#[test]
fn a_failing_check_fails_the_walkthrough_and_cleanup_still_runs() {
    let lab = Lab::up(&["--nodes", "1"]);
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("seed-000")).unwrap();
    std::fs::write(
        dir.path().join("seed-000/walkthrough.yaml"),
        r#"
id: "000"
title: a check that cannot pass
seed: none
steps:
  - run: kubectl create configmap walk-probe --from-literal=a=b
    expect: [configmap/walk-probe created]
  - run: kubectl get configmap walk-probe -o jsonpath='{.data.a}'
    expect: [not-b]
  - run: echo never reached
cleanup:
  - kubectl delete configmap walk-probe
"#,
    )
    .unwrap();
    let out = lab
        .command()
        .args(["tutorial", "run", "000", "--examples"])
        .arg(dir.path())
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!out.status.success(), "{text}");
    assert!(
        text.contains("seed 000 step 2") && text.contains("does not show \"not-b\""),
        "{text}"
    );
    assert!(!text.contains("never reached"), "{text}");
    let gone = lab.kubectl(&["get", "configmap", "walk-probe"]);
    assert!(!gone.status.success(), "cleanup did not run");
}

/// Ctrl-C (SIGINT) stops the running command and its process group, then the cleanup runs; the
/// next run starts clean even when an earlier one was SIGKILLed before its cleanup.
#[test]
fn an_interrupted_walkthrough_cleans_up_and_a_killed_one_is_cleared_next_time() {
    let lab = Lab::up(&["--nodes", "1"]);
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("seed-000")).unwrap();
    let marker = format!("{}-interrupt", lab.name);
    std::fs::write(
        dir.path().join("seed-000/walkthrough.yaml"),
        format!(
            r#"
id: "000"
title: a long step
seed: none
steps:
  - run: kubectl create configmap walk-probe --from-literal=a=b
    expect: [configmap/walk-probe created]
  - run: bash -c 'exec -a {marker} sleep 300'
cleanup:
  - kubectl delete configmap walk-probe --ignore-not-found
"#
        ),
    )
    .unwrap();
    let start = |lab: &Lab| {
        lab.command()
            .args(["tutorial", "run", "0", "--examples"])
            .arg(dir.path())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap()
    };
    let sleeping = || {
        std::process::Command::new("pgrep")
            .args(["-f", &marker])
            .output()
            .unwrap()
            .status
            .success()
    };
    // SIGINT while the long step runs.
    let child = start(&lab);
    wait_for("the long step to start", LONG, || {
        if sleeping() {
            Ok(())
        } else {
            Err("not yet".to_string())
        }
    });
    // SAFETY: signalling our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let out = child.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!out.status.success(), "{text}");
    assert!(text.contains("interrupted"), "{text}");
    assert!(
        !sleeping(),
        "the interrupted step's process is still running"
    );
    assert!(
        !lab.kubectl(&["get", "configmap", "walk-probe"])
            .status
            .success(),
        "cleanup did not run"
    );

    // SIGKILL: no cleanup; the next run clears what was left and passes its first check again.
    let mut child = start(&lab);
    wait_for("the long step to start", LONG, || {
        if sleeping() {
            Ok(())
        } else {
            Err("not yet".to_string())
        }
    });
    child.kill().unwrap();
    child.wait().unwrap();
    let _ = std::process::Command::new("pkill")
        .args(["-f", &marker])
        .status();
    assert!(
        lab.kubectl(&["get", "configmap", "walk-probe"])
            .status
            .success()
    );
    let child = start(&lab);
    wait_for("the rerun to pass its first step", LONG, || {
        if sleeping() {
            Ok(())
        } else {
            Err("not yet".to_string())
        }
    });
    // SAFETY: as above.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let out = child.wait_with_output().unwrap();
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("configmap/walk-probe created"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}
