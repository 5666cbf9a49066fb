//! `podnet node exec NODE -- CMD`: run a command "logged in" to a node, as seed 000 does over ssh. The
//! command gets the node's network and UTS namespaces (`hostname` says the node's name) and a private
//! mount namespace in which /sys shows the node's interfaces, /etc/cni/net.d is the node's CNI
//! configuration and /etc/resolv.conf the node's own (naming the lab's resolver on the router), the
//! way `ip netns exec` prepares /etc/netns/NAME, and /run/netns holds the node's pod network
//! namespaces, so `ip netns` lists the node's pods as it would on a real node.

use crate::error::{Error, Result, io};
use crate::paths::LabPaths;
use nix::mount::{MntFlags, MsFlags, mount, umount2};
use nix::sched::{CloneFlags, setns, unshare};
use podnet_netns::persist;
use std::fs::File;
use std::os::fd::AsFd;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::Command;

/// Replaces the current process with `argv` inside the node. Returns only on failure.
pub fn exec_in_node(paths: &LabPaths, node: &str, argv: &[String]) -> Error {
    match prepare(paths, node, argv) {
        Ok(mut cmd) => Error::Other(format!("run {:?} in {node}: {}", argv[0], cmd.exec())),
        Err(e) => e,
    }
}

fn prepare(paths: &LabPaths, node: &str, argv: &[String]) -> Result<Command> {
    if argv.is_empty() {
        return Err(Error::Invalid(
            "podnet node exec NODE -- COMMAND [ARGS...]: no command given".into(),
        ));
    }
    let net_path = persist::netns_path(&paths.node_netns(node));
    let net = File::open(&net_path).map_err(|_| {
        Error::Invalid(format!(
            "no node {node} in lab {} ({} is missing)",
            paths.name,
            net_path.display()
        ))
    })?;
    let uts = File::open(paths.uts_file(node))
        .map_err(io(format!("open {}", paths.uts_file(node).display())))?;
    let cni_conf = paths.cni_conf_dir(node);
    // The machine's resolvers are not reachable from inside the node; the node's own file names
    // the lab's relay, as the node agent gives it to pods with dnsPolicy Default.
    let resolv_conf = crate::agents::node_resolv_conf(paths, node);
    // `ip netns` inside the node lists its pods' network namespaces.
    let pod_netns = paths.node_netns_dir(node);
    let mut cmd = Command::new(&argv[0]);
    cmd.args(&argv[1..]).env("PODNET_NODE", node);
    // SAFETY: runs in this process right before execve (Command::exec does not fork); only syscalls.
    unsafe {
        cmd.pre_exec(move || {
            let sys = |e: nix::errno::Errno| std::io::Error::from_raw_os_error(e as i32);
            setns(net.as_fd(), CloneFlags::CLONE_NEWNET).map_err(sys)?;
            setns(uts.as_fd(), CloneFlags::CLONE_NEWUTS).map_err(sys)?;
            unshare(CloneFlags::CLONE_NEWNS).map_err(sys)?;
            // Our mounts must not propagate back to the machine.
            mount(
                None::<&str>,
                "/",
                None::<&str>,
                MsFlags::MS_SLAVE | MsFlags::MS_REC,
                None::<&str>,
            )
            .map_err(sys)?;
            // A sysfs mounted from inside the node shows the node's interfaces under /sys/class/net.
            if umount2("/sys", MntFlags::MNT_DETACH).is_ok() {
                mount(
                    Some("sysfs"),
                    "/sys",
                    Some("sysfs"),
                    MsFlags::empty(),
                    None::<&str>,
                )
                .map_err(sys)?;
            }
            let etc_cni = Path::new("/etc/cni/net.d");
            if etc_cni.is_dir() && cni_conf.is_dir() {
                mount(
                    Some(&cni_conf),
                    etc_cni,
                    None::<&str>,
                    MsFlags::MS_BIND,
                    None::<&str>,
                )
                .map_err(sys)?;
            }
            let etc_resolv = Path::new("/etc/resolv.conf");
            if etc_resolv.exists() && resolv_conf.is_file() {
                mount(
                    Some(&resolv_conf),
                    etc_resolv,
                    None::<&str>,
                    MsFlags::MS_BIND,
                    None::<&str>,
                )
                .map_err(sys)?;
            }
            let run_netns = Path::new(persist::NETNS_RUN_DIR);
            if run_netns.is_dir() && pod_netns.is_dir() {
                // Recursive: each file is a mount of its namespace, which `ip netns exec` and
                // `ip link` (naming a veth's peer namespace) open.
                mount(
                    Some(&pod_netns),
                    run_netns,
                    None::<&str>,
                    MsFlags::MS_BIND | MsFlags::MS_REC,
                    None::<&str>,
                )
                .map_err(sys)?;
            } else if run_netns.is_dir() {
                // No pod ran on the node yet: `ip netns` lists nothing rather than the
                // machine's namespaces (other labs' nodes among them).
                mount(
                    Some("tmpfs"),
                    run_netns,
                    Some("tmpfs"),
                    MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
                    Some("size=16k,mode=755"),
                )
                .map_err(sys)?;
            }
            Ok(())
        });
    }
    Ok(cmd)
}
