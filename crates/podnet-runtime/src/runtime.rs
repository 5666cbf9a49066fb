//! [`Runtime`]: one node's pods. Every method blocks (processes, mounts, files); call them from a
//! plain thread or `spawn_blocking`, never on an async worker.

use crate::bundle::{self, SandboxContext};
use crate::config::RuntimeConfig;
use crate::crilog::{self, LogOptions};
use crate::error::{Error, Errors, Result};
use crate::exec::{self, ExecProcess};
use crate::records::{self, ContainerRecord, ExitRecord, InitRecord, SandboxRecord, check_id};
use crate::runc::Runc;
use crate::sandbox::{self, NsFlags};
use crate::spec::{ContainerSpec, EtcFiles, ExecSpec, SandboxSpec};
use crate::{cgroups, proc};
use nix::sys::signal::Signal;
use std::collections::BTreeMap;
use std::fs;
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// How long `runc create` (through the supervisor) may take before the agent gives up on it.
const CREATE_BOUND: Duration = Duration::from_secs(60);
/// After SIGKILL, how long a process may take to disappear.
const KILL_BOUND: Duration = Duration::from_secs(10);

/// A sandbox's state as CRI names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum SandboxState {
    /// The pause process runs.
    Ready,
    /// The pause process is gone (stopped, killed, or crashed).
    NotReady,
}

/// A sandbox as found on disk and in `/proc`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct SandboxStatus {
    pub record: SandboxRecord,
    pub state: SandboxState,
    /// Ids of the containers of this sandbox.
    pub containers: Vec<String>,
}

/// A container's state as CRI names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum ContainerState {
    /// `runc create` done, not started yet.
    Created,
    Running,
    /// The main process is gone; [`ContainerStatus::exit`] says how (`None` if its supervisor was
    /// killed before it could record it).
    Exited,
    /// Neither runc nor the supervisor know it (a half-made container after a crash).
    Unknown,
}

/// A container as found on disk, in runc's state and in `/proc`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ContainerStatus {
    pub record: ContainerRecord,
    pub state: ContainerState,
    /// Host PID of the main process while it runs.
    pub pid: Option<u32>,
    /// PID of the supervisor while it runs.
    pub shim_pid: Option<u32>,
    /// Unix time in ns of `runc start`.
    pub started_ns: Option<i64>,
    pub exit: Option<ExitRecord>,
}

impl ContainerStatus {
    pub fn id(&self) -> &str {
        &self.record.id
    }

    pub fn name(&self) -> &str {
        &self.record.spec.name
    }
}

/// One node's pod runtime. Cheap to construct; holds no open resources, so any number of agents
/// (or `podnet node ps`) can look at the same node.
#[derive(Debug, Clone)]
pub struct Runtime {
    cfg: RuntimeConfig,
}

impl Runtime {
    /// Makes the state directories (idempotent).
    pub fn new(cfg: RuntimeConfig) -> Result<Runtime> {
        for d in [
            cfg.sandboxes_dir(),
            cfg.containers_dir(),
            cfg.runc_root.clone(),
        ] {
            fs::create_dir_all(&d).map_err(|e| Error::io(format!("create {}", d.display()), e))?;
        }
        Ok(Runtime { cfg })
    }

    pub fn config(&self) -> &RuntimeConfig {
        &self.cfg
    }

    fn runc(&self) -> Runc<'_> {
        Runc {
            bin: &self.cfg.runc,
            root: &self.cfg.runc_root,
        }
    }

    // ---- sandboxes ----

    /// Starts a sandbox: the pause process in new namespaces, `lo` up, the network namespace
    /// bind-mounted at [`SandboxRecord::netns`] (hand that to CNI as `CNI_NETNS`), the pod's
    /// `/dev/shm`, and `/etc/hostname`, an initial `/etc/hosts` and an empty `/etc/resolv.conf`
    /// (replace them with [`Runtime::set_etc_files`] once CNI gave the pod its address).
    /// On failure nothing is left behind.
    pub fn run_sandbox(&self, spec: &SandboxSpec) -> Result<SandboxRecord> {
        let what = format!("start sandbox of pod {}", spec.pod);
        let id = records::new_id()?;
        let dir = self.cfg.sandbox_dir(&id);
        fs::create_dir_all(&dir)
            .map_err(|e| Error::io(format!("{what}: create {}", dir.display()), e))?;
        let mut record = SandboxRecord {
            id: id.clone(),
            pod: spec.pod.clone(),
            attempt: spec.attempt,
            hostname: spec.hostname.clone(),
            host_network: spec.host_network,
            share_pid: spec.share_pid,
            pause_pid: 0,
            pause_start: 0,
            netns: (!spec.host_network).then(|| self.cfg.netns_path(&id)),
            shm: dir.join("shm"),
            created_ns: records::now_ns(),
            labels: spec.labels.clone(),
        };
        // The record goes first, so a crash at any later point leaves something to find and remove.
        records::write_json(&dir.join("sandbox.json"), &record).map_err(|e| e.context(&what))?;
        let made = self.make_sandbox(spec, &mut record);
        if let Err(e) = made {
            let _ = self.remove_sandbox(&id);
            return Err(e.context(&what));
        }
        Ok(record)
    }

    fn make_sandbox(&self, spec: &SandboxSpec, rec: &mut SandboxRecord) -> Result<()> {
        let dir = self.cfg.sandbox_dir(&rec.id);
        let hosts = crate::etc::hosts(&[], &spec.hostname, None, &[]);
        records::write_atomic(
            &dir.join("hostname"),
            format!("{}\n", spec.hostname).as_bytes(),
        )?;
        records::write_atomic(&dir.join("hosts"), hosts.as_bytes())?;
        records::write_atomic(&dir.join("resolv.conf"), b"")?;
        sandbox::mount_shm(&rec.shm)?;
        let flags = NsFlags {
            net: !spec.host_network,
            uts: !spec.host_network,
        };
        let pid = sandbox::spawn_pause(&self.cfg.pause, &spec.hostname, flags, &rec.id)?;
        rec.pause_pid = pid;
        rec.pause_start = proc::start_time(pid).unwrap_or(0);
        records::write_json(&dir.join("sandbox.json"), rec)?;
        if let Some(netns) = &rec.netns {
            sandbox::loopback_up(pid)?;
            sandbox::bind_netns(pid, netns)?;
        }
        Ok(())
    }

    /// Replaces the pod's `/etc/hosts` and `/etc/resolv.conf` (seen by containers created after).
    pub fn set_etc_files(&self, sandbox_id: &str, files: &EtcFiles) -> Result<()> {
        let rec = self.sandbox_record(sandbox_id)?;
        let what = format!("write /etc files of pod {}", rec.pod);
        let dir = self.cfg.sandbox_dir(sandbox_id);
        records::write_atomic(&dir.join("hosts"), files.hosts.as_bytes())
            .map_err(|e| e.context(&what))?;
        records::write_atomic(&dir.join("resolv.conf"), files.resolv_conf.as_bytes())
            .map_err(|e| e.context(&what))
    }

    fn sandbox_record(&self, id: &str) -> Result<SandboxRecord> {
        check_id("sandbox", id)?;
        records::read_json(&self.cfg.sandbox_dir(id).join("sandbox.json"))?.ok_or_else(|| {
            Error::NotFound {
                kind: "sandbox",
                id: id.to_string(),
            }
        })
    }

    fn pause_alive(rec: &SandboxRecord) -> bool {
        rec.pause_pid != 0 && proc::alive(rec.pause_pid, Some(rec.pause_start))
    }

    /// Stops every container of the sandbox (SIGTERM, then SIGKILL after `grace`), then the pause
    /// process. The network namespace file stays until [`Runtime::remove_sandbox`], so CNI DEL can
    /// still run against it. Idempotent.
    pub fn stop_sandbox(&self, id: &str, grace: Duration) -> Result<()> {
        let rec = self.sandbox_record(id)?;
        let what = format!("stop sandbox {id} of pod {}", rec.pod);
        let mut errs = Errors::default();
        for c in self.containers_of(id)? {
            errs.push(self.stop_container(&c, grace));
        }
        if rec.pause_pid == 0 {
            errs.push(kill_untracked_pause(&self.cfg.pause, id));
        }
        if Self::pause_alive(&rec) {
            proc::signal(rec.pause_pid, Some(rec.pause_start), Signal::SIGTERM);
            let gone = proc::wait_until(grace.min(Duration::from_secs(2)), || {
                proc::reap_if_child(rec.pause_pid);
                !Self::pause_alive(&rec)
            });
            if !gone {
                proc::signal(rec.pause_pid, Some(rec.pause_start), Signal::SIGKILL);
                if !proc::wait_until(KILL_BOUND, || !Self::pause_alive(&rec)) {
                    errs.0.push(Error::Timeout(format!(
                        "kill pause process {}",
                        rec.pause_pid
                    )));
                }
            }
        }
        errs.into_result(what)
    }

    /// Removes a sandbox and everything in it: containers (and their supervisors, cgroups, logs),
    /// the pause process, the network namespace file, `/dev/shm`, the pod's cgroup, the state.
    /// Best-effort: every step runs, every failure is reported. Idempotent.
    pub fn remove_sandbox(&self, id: &str) -> Result<()> {
        check_id("sandbox", id)?;
        let rec =
            records::read_json::<SandboxRecord>(&self.cfg.sandbox_dir(id).join("sandbox.json"))?;
        let pod = rec
            .as_ref()
            .map(|r| r.pod.to_string())
            .unwrap_or_else(|| "?".into());
        let what = format!("remove sandbox {id} of pod {pod}");
        let mut errs = Errors::default();
        for c in self.containers_of(id)? {
            errs.push(self.remove_container(&c));
        }
        if let Some(rec) = &rec {
            if Self::pause_alive(rec) {
                proc::signal(rec.pause_pid, Some(rec.pause_start), Signal::SIGKILL);
                if !proc::wait_until(KILL_BOUND, || {
                    proc::reap_if_child(rec.pause_pid);
                    !Self::pause_alive(rec)
                }) {
                    errs.0.push(Error::Timeout(format!(
                        "kill pause process {}",
                        rec.pause_pid
                    )));
                }
            }
            // 0: the agent was killed between starting the pause and recording its PID, or the
            // sandbox is still being made (a removal racing its creation wins: the new pause goes).
            if rec.pause_pid == 0 {
                errs.push(kill_untracked_pause(&self.cfg.pause, id));
            }
            let pod_cgroup = format!("{}/{}", self.cfg.cgroup_parent, rec.pod.uid);
            if self.sandboxes_of_pod(&rec.pod.uid, id).is_empty() {
                errs.push(cgroups::remove(&pod_cgroup));
            }
        } else {
            // No readable record: a pause may still carry this sandbox's tag.
            errs.push(kill_untracked_pause(&self.cfg.pause, id));
        }
        errs.push(sandbox::unmount_remove(&self.cfg.netns_path(id), false));
        let dir = self.cfg.sandbox_dir(id);
        errs.push(sandbox::unmount_remove(&dir.join("shm"), true));
        if errs.0.is_empty() {
            match fs::remove_dir_all(&dir) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => errs
                    .0
                    .push(Error::io(format!("remove {}", dir.display()), e)),
            }
        }
        errs.into_result(what)
    }

    /// Other sandboxes of the same pod (a pod's cgroup is shared by its sandbox attempts).
    fn sandboxes_of_pod(&self, uid: &str, except: &str) -> Vec<String> {
        records::list_dir(&self.cfg.sandboxes_dir())
            .unwrap_or_default()
            .into_iter()
            .filter(|s| s != except)
            .filter(|s| self.sandbox_record(s).is_ok_and(|r| r.pod.uid == uid))
            .collect()
    }

    pub fn sandbox_status(&self, id: &str) -> Result<SandboxStatus> {
        let record = self.sandbox_record(id)?;
        let state = if Self::pause_alive(&record) {
            SandboxState::Ready
        } else {
            SandboxState::NotReady
        };
        Ok(SandboxStatus {
            containers: self.containers_of(id)?,
            record,
            state,
        })
    }

    /// Every sandbox of this node, from its state directory. The container records are read once
    /// for all sandboxes (not once per sandbox), so a relist stays linear in what the node runs.
    pub fn list_sandboxes(&self) -> Result<Vec<SandboxStatus>> {
        let mut by_sandbox: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for c in records::list_dir(&self.cfg.containers_dir())? {
            if let Ok(r) = self.container_record(&c) {
                by_sandbox.entry(r.sandbox_id).or_default().push(c);
            }
        }
        let mut out = Vec::new();
        for id in records::list_dir(&self.cfg.sandboxes_dir())? {
            let record = match self.sandbox_record(&id) {
                Ok(r) => r,
                Err(e) if e.is_not_found() => continue,
                Err(e) => return Err(e),
            };
            let state = if Self::pause_alive(&record) {
                SandboxState::Ready
            } else {
                SandboxState::NotReady
            };
            out.push(SandboxStatus {
                containers: by_sandbox.remove(&id).unwrap_or_default(),
                record,
                state,
            });
        }
        Ok(out)
    }

    fn containers_of(&self, sandbox_id: &str) -> Result<Vec<String>> {
        Ok(records::list_dir(&self.cfg.containers_dir())?
            .into_iter()
            .filter(|c| {
                self.container_record(c)
                    .is_ok_and(|r| r.sandbox_id == sandbox_id)
            })
            .collect())
    }

    // ---- containers ----

    fn container_record(&self, id: &str) -> Result<ContainerRecord> {
        check_id("container", id)?;
        records::read_json(&self.cfg.container_dir(id).join("container.json"))?.ok_or_else(|| {
            Error::NotFound {
                kind: "container",
                id: id.to_string(),
            }
        })
    }

    /// Creates a container in a ready sandbox: writes its bundle, starts its supervisor, which runs
    /// `runc create`. Returns the container id; the process waits for [`Runtime::start_container`].
    pub fn create_container(&self, sandbox_id: &str, spec: &ContainerSpec) -> Result<String> {
        let sb = self.sandbox_record(sandbox_id)?;
        let what = format!("create container {} of pod {}", spec.name, sb.pod);
        if !Self::pause_alive(&sb) {
            return Err(Error::Invalid(format!(
                "{what}: sandbox {sandbox_id} is not ready (pause process gone)"
            )));
        }
        let id = records::new_id()?;
        let dir = self.cfg.container_dir(&id);
        let bundle_dir = dir.join("bundle");
        fs::create_dir_all(&bundle_dir)
            .map_err(|e| Error::io(format!("{what}: create {}", bundle_dir.display()), e))?;
        let sdir = self.cfg.sandbox_dir(sandbox_id);
        let ns = |kind: &str| PathBuf::from(format!("/proc/{}/ns/{kind}", sb.pause_pid));
        let ctx = SandboxContext {
            // A host-network pod joins the namespace its pause process was started in (the node's),
            // by path, so it never depends on which namespace the caller's thread is in.
            net: Some(sb.netns.clone().unwrap_or_else(|| ns("net"))),
            ipc: ns("ipc"),
            uts: ns("uts"),
            pid: spec
                .pid_namespace
                .clone()
                .or_else(|| sb.share_pid.then(|| ns("pid"))),
            hosts: sdir.join("hosts"),
            hostname: sdir.join("hostname"),
            resolv_conf: sdir.join("resolv.conf"),
            shm: sb.shm.clone(),
            cgroup: format!("{}/{}/{}", self.cfg.cgroup_parent, sb.pod.uid, id),
        };
        let record = ContainerRecord {
            id: id.clone(),
            sandbox_id: sandbox_id.to_string(),
            pod: sb.pod.clone(),
            spec: spec.clone(),
            cgroup: ctx.cgroup.clone(),
            created_ns: records::now_ns(),
            init_record: true,
        };
        let made = (|| {
            records::write_json(&dir.join("container.json"), &record)?;
            let oci = bundle::build(spec, &ctx)?;
            let bytes = serde_json::to_vec(&oci)
                .map_err(|e| Error::Invalid(format!("encode config.json: {e}")))?;
            records::write_atomic(&bundle_dir.join("config.json"), &bytes)?;
            self.spawn_shim(&id, &dir, spec)
        })();
        match made {
            Ok(()) => Ok(id),
            Err(e) => {
                let _ = self.remove_container(&id);
                Err(e.context(what))
            }
        }
    }

    fn spawn_shim(&self, id: &str, dir: &Path, spec: &ContainerSpec) -> Result<()> {
        let args = crate::shim::ShimArgs {
            id: id.to_string(),
            bundle: dir.join("bundle"),
            state: dir.to_path_buf(),
            runc: self.cfg.runc.clone(),
            runc_root: self.cfg.runc_root.clone(),
            log: spec.log_path.clone(),
            log_max_bytes: spec.log_max_bytes,
            log_max_files: spec.log_max_files,
            stdin: spec.stdin,
            stdin_once: spec.stdin_once,
            tty: spec.tty,
        };
        let shim_log = fs::File::create(dir.join("shim.log"))
            .map_err(|e| Error::io(format!("create {}", dir.join("shim.log").display()), e))?;
        let (rd, wr) =
            nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(|e| Error::sys("pipe", e))?;
        let w = wr.as_raw_fd();
        let mut cmd = Command::new(&self.cfg.shim);
        cmd.args(args.to_args())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(shim_log);
        // SAFETY: dup2 is async-signal-safe; it clears close-on-exec on the copy, so only fd 3
        // reaches the supervisor.
        unsafe {
            cmd.pre_exec(move || {
                if libc::dup2(w, crate::shim::SYNC_FD) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let status = cmd
            .status()
            .map_err(|e| Error::io(format!("run supervisor {}", self.cfg.shim.display()), e))?;
        drop(wr);
        if !status.success() {
            let msg = fs::read_to_string(dir.join("shim.log")).unwrap_or_default();
            return Err(Error::Runc {
                what: "start supervisor".into(),
                message: format!("{status}: {}", msg.trim()),
            });
        }
        let reply =
            read_bounded(rd, CREATE_BOUND).map_err(|e| Error::io("wait for runc create", e))?;
        let reply = reply.trim();
        if reply.starts_with("ok ") {
            Ok(())
        } else if let Some(msg) = reply.strip_prefix("error ") {
            Err(Error::Runc {
                what: "runc create".into(),
                message: msg.to_string(),
            })
        } else {
            let msg = fs::read_to_string(dir.join("shim.log")).unwrap_or_default();
            Err(Error::Runc {
                what: "runc create".into(),
                message: format!("supervisor gave no answer: {}", msg.trim()),
            })
        }
    }

    /// `runc start`: the container's process begins.
    pub fn start_container(&self, id: &str) -> Result<()> {
        let rec = self.container_record(id)?;
        let what = format!("start container {} of pod {}", rec.spec.name, rec.pod);
        // Recorded just before: a process that exits at once must not look as if it ended before
        // it started.
        let started = self.cfg.container_dir(id).join("started");
        let now = records::now_ns().to_string();
        records::write_atomic(&started, now.as_bytes()).map_err(|e| e.context(&what))?;
        self.runc().start(id).map_err(|e| {
            let _ = fs::remove_file(&started);
            e.context(&what)
        })
    }

    /// SIGTERM to the main process, SIGKILL to every process of the container after `grace`.
    /// Returns once the main process is gone. Idempotent.
    pub fn stop_container(&self, id: &str, grace: Duration) -> Result<()> {
        let rec = self.container_record(id)?;
        let what = format!("stop container {} of pod {}", rec.spec.name, rec.pod);
        let st = self.container_status(id)?;
        if !matches!(st.state, ContainerState::Running | ContainerState::Created) {
            return Ok(());
        }
        let exited = || {
            let s = self.container_status(id);
            s.map(|s| !matches!(s.state, ContainerState::Running | ContainerState::Created))
                .unwrap_or(true)
        };
        if st.state == ContainerState::Running && !grace.is_zero() {
            self.runc()
                .kill(id, "TERM", false)
                .map_err(|e| e.context(&what))?;
            if proc::wait_until(grace, exited) {
                return Ok(());
            }
        }
        self.runc()
            .kill(id, "KILL", true)
            .map_err(|e| e.context(&what))?;
        if proc::wait_until(KILL_BOUND, exited) {
            Ok(())
        } else {
            Err(Error::Timeout(format!("{what}: SIGKILL")))
        }
    }

    /// Removes a container: kills what still runs, `runc delete`, the supervisor if it lingers, the
    /// cgroup, the state and the log files. Best-effort and idempotent; every failure is reported.
    pub fn remove_container(&self, id: &str) -> Result<()> {
        check_id("container", id)?;
        let dir = self.cfg.container_dir(id);
        let rec = records::read_json::<ContainerRecord>(&dir.join("container.json"))
            .ok()
            .flatten();
        let what = match &rec {
            Some(r) => format!("remove container {} of pod {}", r.spec.name, r.pod),
            None => format!("remove container {id}"),
        };
        let mut errs = Errors::default();
        if rec.is_some() {
            errs.push(
                self.stop_container(id, Duration::ZERO)
                    .or_else(|e| if e.is_not_found() { Ok(()) } else { Err(e) }),
            );
        }
        errs.push(self.runc().delete(id));
        // The supervisor leaves on its own once the container is gone; one still there after that
        // (it lost its container to a crash) is stopped here.
        if let Some(pid) = records::read_pid(&dir.join("shim.pid")) {
            let shim_gone = || !is_shim(pid, id);
            if !proc::wait_until(Duration::from_secs(2), shim_gone) {
                proc::signal(pid, None, Signal::SIGKILL);
                if !proc::wait_until(KILL_BOUND, shim_gone) {
                    errs.0
                        .push(Error::Timeout(format!("kill supervisor {pid}")));
                }
            }
        }
        if let Some(r) = &rec {
            errs.push(cgroups::remove(&r.cgroup));
            errs.push(crilog::remove(&r.spec.log_path));
        }
        if errs.0.is_empty() {
            match fs::remove_dir_all(&dir) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => errs
                    .0
                    .push(Error::io(format!("remove {}", dir.display()), e)),
            }
        }
        errs.into_result(what)
    }

    /// A container's state from its record, the supervisor's files and `/proc` (runc only when
    /// those cannot tell).
    pub fn container_status(&self, id: &str) -> Result<ContainerStatus> {
        let record = self.container_record(id)?;
        Ok(self.status_from(record))
    }

    fn status_from(&self, record: ContainerRecord) -> ContainerStatus {
        let dir = self.cfg.container_dir(&record.id);
        let exit: Option<ExitRecord> = records::read_json(&dir.join("exit.json")).ok().flatten();
        let started_ns = fs::read_to_string(dir.join("started"))
            .ok()
            .and_then(|s| s.trim().parse().ok());
        let shim_pid = records::read_pid(&dir.join("shim.pid")).filter(|&p| is_shim(p, &record.id));
        let init: Option<InitRecord> = records::read_json(&dir.join(records::INIT_FILE))
            .ok()
            .flatten();
        let (state, pid) = match (exit.is_some(), init) {
            (true, _) => (ContainerState::Exited, None),
            (false, Some(i)) if proc::alive(i.pid, Some(i.start)) => {
                // Still runc's init: created, not started; unless `runc start` was just issued (the
                // program is about to be executed) or was cut short by a crash: runc knows which.
                let created = proc::is_runc_init(i.pid)
                    && (started_ns.is_none()
                        || self
                            .runc()
                            .state(&record.id)
                            .ok()
                            .flatten()
                            .is_some_and(|r| r.status == "created"));
                if created {
                    (ContainerState::Created, Some(i.pid))
                } else {
                    (ContainerState::Running, Some(i.pid))
                }
            }
            // The process is gone but its supervisor is still copying the last output: the exit
            // record follows in a moment, and until then the container counts as running.
            (false, Some(_)) if shim_pid.is_some() => (ContainerState::Running, None),
            // Gone, and no exit was recorded: the supervisor died first.
            (false, Some(_)) => (ContainerState::Exited, None),
            // No init record and not started: `runc create` is under way (a failed one is removed
            // at once).
            (false, None) if record.init_record && started_ns.is_none() && shim_pid.is_some() => {
                (ContainerState::Created, None)
            }
            (false, None) if record.init_record && started_ns.is_none() => {
                (ContainerState::Unknown, None)
            }
            // A supervisor from before the init record, or one that could not write it (a start
            // was issued, so its create had ended): runc knows.
            (false, None) => {
                let runc = self.runc().state(&record.id).unwrap_or(None);
                match runc {
                    Some(r) if r.status == "running" && r.pid != 0 && proc::alive(r.pid, None) => {
                        (ContainerState::Running, Some(r.pid))
                    }
                    Some(r) if r.status == "created" => (ContainerState::Created, Some(r.pid)),
                    Some(_) if shim_pid.is_some() => (ContainerState::Running, None),
                    Some(_) => (ContainerState::Exited, None),
                    None => (ContainerState::Unknown, None),
                }
            }
        };
        ContainerStatus {
            record,
            state,
            pid,
            shim_pid,
            started_ns,
            exit,
        }
    }

    /// Every container of this node.
    pub fn list_containers(&self) -> Result<Vec<ContainerStatus>> {
        self.list_containers_where(|_| true)
    }

    /// The containers of one pod (by uid): only theirs are looked at.
    pub fn pod_containers(&self, uid: &str) -> Result<Vec<ContainerStatus>> {
        self.list_containers_where(|r| r.pod.uid == uid)
    }

    fn list_containers_where(
        &self,
        want: impl Fn(&ContainerRecord) -> bool,
    ) -> Result<Vec<ContainerStatus>> {
        let mut out = Vec::new();
        for id in records::list_dir(&self.cfg.containers_dir())? {
            match self.container_record(&id) {
                Ok(rec) if want(&rec) => out.push(self.status_from(rec)),
                Ok(_) => {}
                Err(e) if e.is_not_found() => {}
                Err(e) => return Err(e),
            }
        }
        Ok(out)
    }

    /// Runs a process in a running container (`kubectl exec`).
    pub fn exec(&self, id: &str, spec: &ExecSpec) -> Result<ExecProcess> {
        let rec = self.container_record(id)?;
        let what = format!(
            "exec {:?} in container {} of pod {}",
            spec.args.first().map(String::as_str).unwrap_or(""),
            rec.spec.name,
            rec.pod
        );
        let mut cmd = self.runc().command();
        cmd.arg("exec");
        if let Some(cwd) = &spec.cwd {
            cmd.arg("--cwd").arg(cwd);
        }
        for e in &spec.env {
            cmd.arg("--env").arg(e);
        }
        if let Some(u) = &spec.user {
            cmd.arg("--user").arg(format!("{}:{}", u.uid, u.gid));
            for g in &u.additional_gids {
                cmd.arg("--additional-gids").arg(g.to_string());
            }
        }
        exec::spawn(cmd, id, &spec.args, spec.tty, spec.stdin, spec.size, what)
    }

    /// Connects to the container's attach socket (see [`crate::attach`]) for `kubectl attach`.
    /// Containers whose supervisor predates attach have none.
    pub fn attach(&self, id: &str) -> Result<std::os::unix::net::UnixStream> {
        let rec = self.container_record(id)?;
        let what = format!("attach to container {} of pod {}", rec.spec.name, rec.pod);
        let dir = self.cfg.container_dir(id);
        let (_dir_fd, path) = crate::attach::short_path(&dir, "attach.sock")
            .map_err(|e| Error::io(format!("{what}: open {}", dir.display()), e))?;
        std::os::unix::net::UnixStream::connect(&path).map_err(|e| {
            Error::io(
                format!(
                    "{what}: connect to {}",
                    crate::attach::socket_path(&dir).display()
                ),
                e,
            )
        })
    }

    /// Writes the container's log to `w` as `kubectl logs` shows it; with `follow`, until the
    /// container has exited (and its last lines are written) or `cancel()` says to stop.
    pub fn read_logs(
        &self,
        id: &str,
        opts: &LogOptions,
        w: &mut dyn Write,
        cancel: &dyn Fn() -> bool,
    ) -> Result<()> {
        let rec = self.container_record(id)?;
        let dir = self.cfg.container_dir(id);
        let done = || {
            cancel()
                || dir.join("exit.json").exists()
                || !records::read_pid(&dir.join("shim.pid")).is_some_and(|p| is_shim(p, id))
        };
        crilog::read(&rec.spec.log_path, opts, w, &done).map_err(|e| {
            e.context(format!(
                "logs of container {} of pod {}",
                rec.spec.name, rec.pod
            ))
        })
    }

    // ---- everything ----

    /// Removes everything this node's runtime made: every container and sandbox on record, runc
    /// containers under its root without a record, namespace files and `/dev/shm` mounts left by a
    /// crash, and the node's cgroup tree. Every failure is reported; nothing stops at the first.
    pub fn remove_all(&self) -> Result<()> {
        let mut errs = Errors::default();
        match records::list_dir(&self.cfg.containers_dir()) {
            Ok(ids) => ids.iter().for_each(|c| errs.push(self.remove_container(c))),
            Err(e) => errs.0.push(e),
        }
        match records::list_dir(&self.cfg.sandboxes_dir()) {
            Ok(ids) => ids.iter().for_each(|s| errs.push(self.remove_sandbox(s))),
            Err(e) => errs.0.push(e),
        }
        match self.runc().list() {
            Ok(list) => list
                .iter()
                .for_each(|c| errs.push(self.runc().delete(&c.id))),
            Err(e) => errs.0.push(e),
        }
        for name in records::list_dir(&self.cfg.netns_dir).unwrap_or_default() {
            if name.starts_with("pn-") {
                errs.push(sandbox::unmount_remove(
                    &self.cfg.netns_dir.join(name),
                    false,
                ));
            }
        }
        // The directory is a shared bind mount of itself (as iproute2 makes /run/netns); it goes
        // once it is empty.
        if records::list_dir(&self.cfg.netns_dir)
            .unwrap_or_default()
            .is_empty()
        {
            errs.push(sandbox::unmount_remove(&self.cfg.netns_dir, true));
        }
        errs.push(cgroups::remove(&self.cfg.cgroup_parent));
        errs.into_result(format!(
            "remove everything under {}",
            self.cfg.state_dir.display()
        ))
    }
}

/// Kills the pause process of sandbox `id` found by its tag: one the agent started but was killed
/// before recording its PID.
fn kill_untracked_pause(pause: &Path, id: &str) -> Result<()> {
    let tag = format!("{}={id}", sandbox::SANDBOX_ENV);
    // The kernel names a process after the file it executes, cut to 15 bytes.
    let comm: String = pause
        .file_name()
        .map(|n| n.to_string_lossy().chars().take(15).collect())
        .unwrap_or_default();
    for (pid, start) in proc::with_env(&comm, &tag) {
        proc::signal(pid, Some(start), Signal::SIGKILL);
        if !proc::wait_until(KILL_BOUND, || {
            proc::reap_if_child(pid);
            !proc::alive(pid, Some(start))
        }) {
            return Err(Error::Timeout(format!(
                "kill unrecorded pause process {pid} of sandbox {id}"
            )));
        }
    }
    Ok(())
}

/// Whether `pid` is the supervisor of container `id` (not a reused PID).
fn is_shim(pid: u32, id: &str) -> bool {
    proc::alive(pid, None)
        && proc::cmdline(pid).is_some_and(|c| c.contains("podnet-shim") && c.contains(id))
}

/// Reads a pipe to its end, for at most `bound`.
fn read_bounded(rd: OwnedFd, bound: Duration) -> std::io::Result<String> {
    use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
    use std::os::fd::AsFd;
    let end = Instant::now() + bound;
    let mut out = Vec::new();
    let mut f = fs::File::from(rd);
    loop {
        let left = end.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "timed out",
            ));
        }
        let ms =
            PollTimeout::try_from(left.as_millis().min(60_000) as i32).unwrap_or(PollTimeout::MAX);
        let mut fds = [PollFd::new(f.as_fd(), PollFlags::POLLIN)];
        match poll(&mut fds, ms) {
            Ok(0) => continue,
            Ok(_) => {}
            Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => return Err(e.into()),
        }
        let mut buf = [0u8; 1024];
        match f.read(&mut buf)? {
            0 => return Ok(String::from_utf8_lossy(&out).into_owned()),
            n => out.extend_from_slice(&buf[..n]),
        }
    }
}
