//! Under a real CNI runtime: Debian's podman (CNI backend) runs a container on a network served by
//! podnet-cni; the container gets its address and reaches its gateway, and `--rm` releases the address.
//! Root test: podman runs inside a node namespace the test creates, with its own storage and config.

mod common;

use common::plugin;
use podnet_testkit::{TempDir, TestNs};
use std::fs;
use std::path::Path;

fn podman_available() -> bool {
    std::process::Command::new("podman")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
}

fn write(path: &Path, text: &str) {
    fs::write(path, text).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
}

#[test]
fn podman_runs_a_container_on_a_podnet_network() {
    assert!(
        podman_available(),
        "podman is not installed: run scripts/setup.sh (it installs Debian's podman)"
    );
    let node = TestNs::new("pmnode");
    let dir = TempDir::new("podman");
    let d = &dir.0;
    for sub in [
        "net",
        "plugins",
        "rootfs/bin",
        "rootfs/etc",
        "root",
        "runroot",
        "tmp",
        "ipam",
    ] {
        fs::create_dir_all(d.join(sub)).unwrap();
    }
    fs::copy(plugin(), d.join("plugins/podnet-cni")).unwrap();
    fs::copy("/bin/busybox", d.join("rootfs/bin/busybox"))
        .expect("busybox-static provides /bin/busybox");
    write(
        &d.join("net/pntest.conflist"),
        &format!(
            r#"{{"cniVersion":"1.0.0","name":"pntest","plugins":[{{"type":"podnet-cni","bridge":"pn0","ipMasq":true,
            "clusterCIDR":"10.88.0.0/16","ipam":{{"subnet":"10.88.5.0/24","dataDir":"{}"}}}}]}}"#,
            d.join("ipam").display()
        ),
    );
    write(
        &d.join("containers.conf"),
        &format!(
            "[network]\nnetwork_backend = \"cni\"\nnetwork_config_dir = \"{net}\"\ncni_plugin_dirs = [\"{plugins}\"]\n\
             [engine]\ncgroup_manager = \"cgroupfs\"\nevents_logger = \"file\"\nruntime = \"runc\"\ntmp_dir = \"{tmp}\"\n\
             [containers]\n# podman's default ulimits need CAP_SYS_RESOURCE, which this machine lacks\n\
             default_ulimits = [\"nofile=20000:20000\", \"nproc=32768:32768\"]\n",
            net = d.join("net").display(),
            plugins = d.join("plugins").display(),
            tmp = d.join("tmp").display()
        ),
    );
    write(
        &d.join("storage.conf"),
        &format!(
            "[storage]\ndriver = \"vfs\"\ngraphroot = \"{}\"\nrunroot = \"{}\"\n",
            d.join("root").display(),
            d.join("runroot").display()
        ),
    );

    let out = node
        .command("podman")
        .env("CONTAINERS_CONF", d.join("containers.conf"))
        .env("CONTAINERS_STORAGE_CONF", d.join("storage.conf"))
        .args(["run", "--rm", "--network", "pntest", "--rootfs"])
        .arg(d.join("rootfs"))
        .args([
            "/bin/busybox",
            "sh",
            "-c",
            "/bin/busybox ip -4 addr show eth0 && /bin/busybox ping -c 1 -W 2 10.88.5.1",
        ])
        .output()
        .expect("run podman");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "podman failed: {}\n{stdout}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("inet 10.88.5.2/24"),
        "the container got its address from podnet-cni:\n{stdout}"
    );
    assert!(
        stdout.contains("1 packets received"),
        "the container reached its gateway:\n{stdout}"
    );

    // podman called DEL on --rm: the reservation is gone and the bridge holds no veth.
    let state =
        fs::read_to_string(d.join("ipam/pntest/state.json")).expect("podnet-cni kept state");
    let state: serde_json::Value = serde_json::from_str(&state).unwrap();
    assert_eq!(
        state["reservations"],
        serde_json::json!({}),
        "address released by DEL"
    );
    let links = node.netlink().links().unwrap();
    assert!(
        links.iter().any(|l| l.name == "pn0"),
        "the bridge podnet-cni made"
    );
    assert!(
        !links.iter().any(|l| l.name.starts_with("pnv")),
        "no veth left behind"
    );
}
