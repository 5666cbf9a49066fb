//! A container's OCI runtime configuration (`config.json`), built with the `oci-spec` crate from a
//! [`ContainerSpec`] and the sandbox it joins. Pure: no IO except [`host_devices`] for privileged
//! containers, so the whole mapping is unit-tested.

use crate::error::{Error, Result};
use crate::spec::{BindMount, ContainerSpec, Security};
use oci_spec::runtime::{
    Capabilities, Capability, LinuxBuilder, LinuxCapabilitiesBuilder, LinuxCpuBuilder, LinuxDevice,
    LinuxDeviceBuilder, LinuxDeviceCgroup, LinuxDeviceCgroupBuilder, LinuxDeviceType,
    LinuxMemoryBuilder, LinuxNamespace, LinuxNamespaceBuilder, LinuxNamespaceType,
    LinuxResourcesBuilder, Mount, MountBuilder, ProcessBuilder, RootBuilder, Spec, SpecBuilder,
    UserBuilder, get_default_maskedpaths, get_default_readonly_paths,
};
use std::path::{Path, PathBuf};
use std::str::FromStr;

/// The sandbox-side inputs of a container's configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SandboxContext {
    /// Network namespace to join; `None` keeps runc's own (the node's, for host-network pods).
    pub net: Option<PathBuf>,
    pub ipc: PathBuf,
    pub uts: PathBuf,
    /// PID namespace to join (shared process namespace); `None` makes a new one.
    pub pid: Option<PathBuf>,
    pub hosts: PathBuf,
    pub hostname: PathBuf,
    pub resolv_conf: PathBuf,
    /// The sandbox's tmpfs, shared as `/dev/shm` by the pod's containers (they share IPC too).
    pub shm: PathBuf,
    /// Absolute cgroup path for this container.
    pub cgroup: String,
}

/// Capabilities every container gets unless dropped: the set containerd and Docker give (runc's own
/// `runc spec` template has only three, which breaks ordinary images: chown, setuid, ping).
pub const DEFAULT_CAPS: &[&str] = &[
    "CHOWN",
    "DAC_OVERRIDE",
    "FSETID",
    "FOWNER",
    "MKNOD",
    "NET_RAW",
    "SETGID",
    "SETUID",
    "SETFCAP",
    "SETPCAP",
    "NET_BIND_SERVICE",
    "SYS_CHROOT",
    "KILL",
    "AUDIT_WRITE",
];

/// Every capability up to CAP_CHECKPOINT_RESTORE (40), for privileged containers.
const ALL_CAPS: &[&str] = &[
    "CHOWN",
    "DAC_OVERRIDE",
    "DAC_READ_SEARCH",
    "FOWNER",
    "FSETID",
    "KILL",
    "SETGID",
    "SETUID",
    "SETPCAP",
    "LINUX_IMMUTABLE",
    "NET_BIND_SERVICE",
    "NET_BROADCAST",
    "NET_ADMIN",
    "NET_RAW",
    "IPC_LOCK",
    "IPC_OWNER",
    "SYS_MODULE",
    "SYS_RAWIO",
    "SYS_CHROOT",
    "SYS_PTRACE",
    "SYS_PACCT",
    "SYS_ADMIN",
    "SYS_BOOT",
    "SYS_NICE",
    "SYS_RESOURCE",
    "SYS_TIME",
    "SYS_TTY_CONFIG",
    "MKNOD",
    "LEASE",
    "AUDIT_WRITE",
    "AUDIT_CONTROL",
    "SETFCAP",
    "MAC_OVERRIDE",
    "MAC_ADMIN",
    "SYSLOG",
    "WAKE_ALARM",
    "BLOCK_SUSPEND",
    "AUDIT_READ",
    "PERFMON",
    "BPF",
    "CHECKPOINT_RESTORE",
];

fn oci(what: &str) -> impl Fn(oci_spec::OciSpecError) -> Error + '_ {
    move |e| Error::Invalid(format!("build {what}: {e}"))
}

fn parse_cap(name: &str) -> Result<Capability> {
    let upper = name.trim().to_ascii_uppercase();
    let bare = upper.strip_prefix("CAP_").unwrap_or(&upper);
    Capability::from_str(bare).map_err(|_| Error::Invalid(format!("unknown capability {name:?}")))
}

/// The capability set of a container: defaults, minus drops (`ALL` drops every default), plus adds;
/// privileged gets everything.
pub fn capabilities(sec: &Security) -> Result<Capabilities> {
    if sec.privileged {
        // Names this oci-spec version does not know are skipped, not refused: the kernel may be newer.
        return Ok(ALL_CAPS.iter().filter_map(|c| parse_cap(c).ok()).collect());
    }
    let drop_all = sec.cap_drop.iter().any(|c| c.eq_ignore_ascii_case("ALL"));
    let mut caps = Capabilities::new();
    if !drop_all {
        for c in DEFAULT_CAPS {
            caps.insert(parse_cap(c)?);
        }
        for c in &sec.cap_drop {
            caps.remove(&parse_cap(c)?);
        }
    }
    for c in &sec.cap_add {
        if c.eq_ignore_ascii_case("ALL") {
            caps.extend(ALL_CAPS.iter().filter_map(|c| parse_cap(c).ok()));
        } else {
            caps.insert(parse_cap(c)?);
        }
    }
    Ok(caps)
}

fn mount(dest: &str, typ: &str, source: &str, options: &[&str]) -> Result<Mount> {
    MountBuilder::default()
        .destination(dest)
        .typ(typ)
        .source(source)
        .options(options.iter().map(|s| s.to_string()).collect::<Vec<_>>())
        .build()
        .map_err(oci("mount"))
}

fn bind(source: &Path, dest: &str, readonly: bool) -> Result<Mount> {
    let mut options = vec!["rbind".to_string(), "rprivate".to_string()];
    if readonly {
        options.push("ro".into());
    }
    MountBuilder::default()
        .destination(dest)
        .typ("bind")
        .source(source)
        .options(options)
        .build()
        .map_err(oci("bind mount"))
}

/// The mounts of a container, in order: the kernel filesystems runc's template has, the pod's shared
/// `/dev/shm` and `/etc` files, then the caller's volumes.
pub fn mounts(spec: &ContainerSpec, sb: &SandboxContext) -> Result<Vec<Mount>> {
    let sys_mode = if spec.security.privileged { "rw" } else { "ro" };
    let mut out = vec![
        mount("/proc", "proc", "proc", &["nosuid", "noexec", "nodev"])?,
        mount(
            "/dev",
            "tmpfs",
            "tmpfs",
            &["nosuid", "strictatime", "mode=755", "size=65536k"],
        )?,
        mount(
            "/dev/pts",
            "devpts",
            "devpts",
            &[
                "nosuid",
                "noexec",
                "newinstance",
                "ptmxmode=0666",
                "mode=0620",
                "gid=5",
            ],
        )?,
        mount(
            "/dev/mqueue",
            "mqueue",
            "mqueue",
            &["nosuid", "noexec", "nodev"],
        )?,
        mount(
            "/sys",
            "sysfs",
            "sysfs",
            &["nosuid", "noexec", "nodev", sys_mode],
        )?,
        mount(
            "/sys/fs/cgroup",
            "cgroup",
            "cgroup",
            &["nosuid", "noexec", "nodev", "relatime", sys_mode],
        )?,
    ];
    let mut shm = bind(&sb.shm, "/dev/shm", false)?;
    shm.set_options(Some(vec![
        "rbind".into(),
        "rprivate".into(),
        "nosuid".into(),
        "nodev".into(),
        "noexec".into(),
    ]));
    out.push(shm);
    // A volume mounted over one of these files wins, as in kubelet (a user's own /etc/hosts).
    let user_has = |dest: &str| spec.mounts.iter().any(|m| m.destination == Path::new(dest));
    for (src, dest) in [
        (&sb.hosts, "/etc/hosts"),
        (&sb.hostname, "/etc/hostname"),
        (&sb.resolv_conf, "/etc/resolv.conf"),
    ] {
        if !user_has(dest) {
            out.push(bind(src, dest, spec.security.readonly_rootfs)?);
        }
    }
    for BindMount {
        source,
        destination,
        readonly,
    } in &spec.mounts
    {
        let dest = destination.to_str().ok_or_else(|| {
            Error::Invalid(format!(
                "mount destination {} is not UTF-8",
                destination.display()
            ))
        })?;
        if !destination.is_absolute() {
            return Err(Error::Invalid(format!(
                "mount destination {dest} is not absolute"
            )));
        }
        out.push(bind(source, dest, *readonly)?);
    }
    Ok(out)
}

fn ns(typ: LinuxNamespaceType, path: Option<&Path>) -> Result<LinuxNamespace> {
    let b = LinuxNamespaceBuilder::default().typ(typ);
    match path {
        Some(p) => b.path(p).build(),
        None => b.build(),
    }
    .map_err(oci("namespace"))
}

fn device_rule(allow: bool, access: &str) -> Result<LinuxDeviceCgroup> {
    LinuxDeviceCgroupBuilder::default()
        .allow(allow)
        .typ(LinuxDeviceType::A)
        .access(access)
        .build()
        .map_err(oci("device rule"))
}

/// The node's device nodes, given to privileged containers as Docker and containerd do.
pub fn host_devices() -> Vec<LinuxDevice> {
    use std::os::unix::fs::{FileTypeExt, MetadataExt};
    let mut out = Vec::new();
    let mut dirs = vec![PathBuf::from("/dev")];
    while let Some(dir) = dirs.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            let Ok(meta) = std::fs::symlink_metadata(&path) else {
                continue;
            };
            let ft = meta.file_type();
            if ft.is_dir() {
                // Mounted separately inside the container, or meaningless there.
                let skip = ["pts", "shm", "mqueue", "fd"];
                if !skip.iter().any(|s| path == Path::new("/dev").join(s)) {
                    dirs.push(path);
                }
                continue;
            }
            let typ = if ft.is_char_device() {
                LinuxDeviceType::C
            } else if ft.is_block_device() {
                LinuxDeviceType::B
            } else {
                continue;
            };
            if path == Path::new("/dev/console") || path == Path::new("/dev/ptmx") {
                continue; // runc provides its own
            }
            let rdev = meta.rdev();
            let dev = LinuxDeviceBuilder::default()
                .path(&path)
                .typ(typ)
                .major(libc::major(rdev) as i64)
                .minor(libc::minor(rdev) as i64)
                .file_mode(meta.mode() & 0o7777)
                .uid(meta.uid())
                .gid(meta.gid())
                .build();
            if let Ok(dev) = dev {
                out.push(dev);
            }
        }
    }
    out
}

/// The whole `config.json` of a container.
pub fn build(spec: &ContainerSpec, sb: &SandboxContext) -> Result<Spec> {
    if spec.args.is_empty() {
        return Err(Error::Invalid("no command: args are empty".into()));
    }
    if !spec.rootfs.is_absolute() {
        return Err(Error::Invalid(format!(
            "root filesystem {} is not an absolute path",
            spec.rootfs.display()
        )));
    }
    let caps = capabilities(&spec.security)?;
    let user = UserBuilder::default()
        .uid(spec.user.uid)
        .gid(spec.user.gid)
        .additional_gids(spec.user.additional_gids.clone())
        .build()
        .map_err(oci("user"))?;
    let capabilities = LinuxCapabilitiesBuilder::default()
        .bounding(caps.clone())
        .effective(caps.clone())
        .permitted(caps.clone())
        // Like containerd: no inheritable or ambient capabilities, so a non-root process does
        // not keep them across exec.
        .inheritable(Capabilities::new())
        .ambient(Capabilities::new())
        .build()
        .map_err(oci("capabilities"))?;
    let cwd = if spec.cwd.is_empty() { "/" } else { &spec.cwd };
    let mut env = spec.env.clone();
    if !env.iter().any(|e| e.starts_with("PATH=")) {
        env.insert(
            0,
            "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".into(),
        );
    }
    // No rlimits and no oomScoreAdj: root here lacks CAP_SYS_RESOURCE, and runc fails with
    // "can't get final child's PID from pipe: EOF" if asked to raise either.
    let mut process = ProcessBuilder::default()
        // With a terminal, runc hands the pty's master to the supervisor (--console-socket).
        .terminal(spec.tty)
        .user(user)
        .args(spec.args.clone())
        .env(env)
        .cwd(cwd)
        .capabilities(capabilities)
        .no_new_privileges(spec.security.no_new_privileges)
        .build()
        .map_err(oci("process"))?;
    process.set_rlimits(None); // the builder's default carries one

    let mut namespaces = vec![
        ns(LinuxNamespaceType::Mount, None)?,
        ns(LinuxNamespaceType::Ipc, Some(&sb.ipc))?,
        ns(LinuxNamespaceType::Uts, Some(&sb.uts))?,
        ns(LinuxNamespaceType::Pid, sb.pid.as_deref())?,
    ];
    if let Some(net) = &sb.net {
        namespaces.push(ns(LinuxNamespaceType::Network, Some(net))?);
    }

    let r = &spec.resources;
    let mut cpu = LinuxCpuBuilder::default();
    if let Some(s) = r.cpu_shares {
        cpu = cpu.shares(s);
    }
    if let Some(q) = r.cpu_quota {
        cpu = cpu.quota(q).period(r.cpu_period.unwrap_or(100_000));
    } else if let Some(p) = r.cpu_period {
        cpu = cpu.period(p);
    }
    let mut memory = LinuxMemoryBuilder::default();
    if let Some(m) = r.memory_limit {
        memory = memory.limit(m);
    }
    let devices_rules = if spec.security.privileged {
        vec![device_rule(true, "rwm")?]
    } else {
        // Deny everything; runc then allows its standard set (null, zero, full, tty, random, pts...).
        vec![device_rule(false, "rwm")?]
    };
    let resources = LinuxResourcesBuilder::default()
        .devices(devices_rules)
        .cpu(cpu.build().map_err(oci("cpu resources"))?)
        .memory(memory.build().map_err(oci("memory resources"))?)
        .build()
        .map_err(oci("resources"))?;

    let mut linux = LinuxBuilder::default()
        .namespaces(namespaces)
        .cgroups_path(PathBuf::from(&sb.cgroup))
        .resources(resources);
    if spec.security.privileged {
        linux = linux
            .devices(host_devices())
            .masked_paths(Vec::<String>::new())
            .readonly_paths(Vec::<String>::new());
    } else {
        linux = linux
            .masked_paths(get_default_maskedpaths())
            .readonly_paths(get_default_readonly_paths());
    }
    let root = RootBuilder::default()
        .path(&spec.rootfs)
        .readonly(spec.security.readonly_rootfs)
        .build()
        .map_err(oci("root"))?;
    let mut oci = SpecBuilder::default()
        .version("1.0.2")
        .root(root)
        .process(process)
        .mounts(mounts(spec, sb)?)
        .linux(linux.build().map_err(oci("linux section"))?)
        .build()
        .map_err(oci("spec"))?;
    // The UTS namespace is the sandbox's: runc refuses a hostname without a namespace of its own.
    oci.set_hostname(None);
    oci.set_annotations(None);
    Ok(oci)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::{Resources, User};

    fn spec() -> ContainerSpec {
        ContainerSpec {
            name: "web".into(),
            attempt: 0,
            image: "busybox".into(),
            rootfs: "/var/lib/x/rootfs".into(),
            args: vec!["httpd".into(), "-f".into()],
            env: vec!["A=1".into()],
            cwd: String::new(),
            user: User {
                uid: 1000,
                gid: 1000,
                additional_gids: vec![5],
            },
            security: Security::default(),
            resources: Resources::from_millicores(Some(250), Some(500), Some(64 << 20)),
            mounts: vec![BindMount {
                source: "/data".into(),
                destination: "/srv".into(),
                readonly: true,
            }],
            log_path: "/tmp/x.log".into(),
            log_max_bytes: 0,
            log_max_files: 0,
            stdin: false,
            stdin_once: false,
            tty: false,
            pid_namespace: None,
            labels: Default::default(),
        }
    }

    fn ctx(shared_pid: bool) -> SandboxContext {
        SandboxContext {
            net: Some("/run/netns/pn-abc".into()),
            ipc: "/proc/42/ns/ipc".into(),
            uts: "/proc/42/ns/uts".into(),
            pid: shared_pid.then(|| "/proc/42/ns/pid".into()),
            hosts: "/s/hosts".into(),
            hostname: "/s/hostname".into(),
            resolv_conf: "/s/resolv.conf".into(),
            shm: "/s/shm".into(),
            cgroup: "/podnet/n1/uid/cid".into(),
        }
    }

    fn json(spec: &ContainerSpec, shared: bool) -> serde_json::Value {
        serde_json::to_value(build(spec, &ctx(shared)).unwrap()).unwrap()
    }

    #[test]
    fn process_user_env_and_no_limits_runc_cannot_apply() {
        let v = json(&spec(), false);
        let p = &v["process"];
        assert_eq!(p["args"], serde_json::json!(["httpd", "-f"]));
        assert_eq!(
            p["env"][0].as_str().unwrap().split('=').next(),
            Some("PATH")
        );
        assert_eq!(p["env"][1], "A=1");
        assert_eq!(p["cwd"], "/");
        assert_eq!(p["user"]["uid"], 1000);
        assert_eq!(p["user"]["additionalGids"], serde_json::json!([5]));
        assert!(p.get("rlimits").is_none(), "{p}");
        assert!(p.get("oomScoreAdj").is_none(), "{p}");
        assert!(v.get("hostname").is_none(), "{v}");
    }

    #[test]
    fn namespaces_join_the_sandbox_and_pid_is_shared_only_on_request() {
        let v = json(&spec(), false);
        let nss = v["linux"]["namespaces"].as_array().unwrap().clone();
        let find = |t: &str| nss.iter().find(|n| n["type"] == t).cloned();
        assert!(find("mount").unwrap().get("path").is_none());
        assert_eq!(find("network").unwrap()["path"], "/run/netns/pn-abc");
        assert_eq!(find("ipc").unwrap()["path"], "/proc/42/ns/ipc");
        assert!(find("pid").unwrap().get("path").is_none());
        let v = json(&spec(), true);
        let nss = v["linux"]["namespaces"].as_array().unwrap();
        let pid = nss.iter().find(|n| n["type"] == "pid").unwrap();
        assert_eq!(pid["path"], "/proc/42/ns/pid");
        let mut host = ctx(false);
        host.net = None;
        let v = serde_json::to_value(build(&spec(), &host).unwrap()).unwrap();
        assert!(
            !v["linux"]["namespaces"]
                .as_array()
                .unwrap()
                .iter()
                .any(|n| n["type"] == "network")
        );
    }

    #[test]
    fn resources_become_cgroup_settings() {
        let v = json(&spec(), false);
        let r = &v["linux"]["resources"];
        assert_eq!(r["cpu"]["shares"], 256);
        assert_eq!(r["cpu"]["quota"], 50_000);
        assert_eq!(r["cpu"]["period"], 100_000);
        assert_eq!(r["memory"]["limit"], 64 << 20);
        assert_eq!(v["linux"]["cgroupsPath"], "/podnet/n1/uid/cid");
    }

    #[test]
    fn capabilities_add_drop_and_privileged() {
        let mut s = Security::default();
        let caps = capabilities(&s).unwrap();
        assert_eq!(caps.len(), DEFAULT_CAPS.len());
        s.cap_add = vec!["NET_ADMIN".into()];
        s.cap_drop = vec!["CAP_NET_RAW".into()];
        let caps = capabilities(&s).unwrap();
        assert!(caps.contains(&Capability::NetAdmin));
        assert!(!caps.contains(&Capability::NetRaw));
        s.cap_drop = vec!["ALL".into()];
        assert_eq!(capabilities(&s).unwrap().len(), 1);
        s.cap_add = vec!["NO_SUCH".into()];
        assert!(
            capabilities(&s)
                .unwrap_err()
                .to_string()
                .contains("NO_SUCH")
        );
        let p = Security {
            privileged: true,
            ..Default::default()
        };
        assert!(capabilities(&p).unwrap().contains(&Capability::SysAdmin));
        let mut sp = spec();
        sp.security = p;
        let v = json(&sp, false);
        assert_eq!(v["linux"]["maskedPaths"], serde_json::json!([]));
        assert_eq!(v["linux"]["resources"]["devices"][0]["allow"], true);
    }

    #[test]
    fn mounts_include_pod_files_shm_and_volumes_and_a_users_hosts_wins() {
        let mut s = spec();
        s.security.readonly_rootfs = true;
        let v = json(&s, false);
        assert_eq!(v["root"]["readonly"], true);
        let ms = v["mounts"].as_array().unwrap();
        let dest = |d: &str| ms.iter().find(|m| m["destination"] == d).cloned();
        assert_eq!(dest("/dev/shm").unwrap()["source"], "/s/shm");
        assert_eq!(dest("/etc/hosts").unwrap()["source"], "/s/hosts");
        assert_eq!(
            dest("/srv").unwrap()["options"],
            serde_json::json!(["rbind", "rprivate", "ro"])
        );
        for d in [
            "/proc",
            "/dev",
            "/dev/pts",
            "/dev/mqueue",
            "/sys",
            "/etc/resolv.conf",
            "/etc/hostname",
        ] {
            assert!(dest(d).is_some(), "{d} missing");
        }
        s.mounts.push(BindMount {
            source: "/mine".into(),
            destination: "/etc/hosts".into(),
            readonly: false,
        });
        let v = json(&s, false);
        let hosts: Vec<_> = v["mounts"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|m| m["destination"] == "/etc/hosts")
            .collect();
        assert_eq!(hosts.len(), 1);
        assert_eq!(hosts[0]["source"], "/mine");
    }

    #[test]
    fn refuses_empty_commands_and_relative_paths() {
        let mut s = spec();
        s.args.clear();
        assert!(build(&s, &ctx(false)).is_err());
        let mut s = spec();
        s.rootfs = "rootfs".into();
        assert!(build(&s, &ctx(false)).is_err());
        let mut s = spec();
        s.mounts[0].destination = "srv".into();
        assert!(build(&s, &ctx(false)).is_err());
    }
}
