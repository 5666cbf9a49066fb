//! The per-container supervisor (`podnet-shim`), the library half. One runs for each container from
//! `runc create` until the container's main process is gone, and outlives the agent that started it.
//!
//! Protocol with the agent (everything else is files, so a restarted agent adopts without talking):
//! - argv: `podnet-shim --id ID --bundle DIR --state DIR --runc PATH --runc-root DIR --log PATH
//!   --log-max-bytes N --log-max-files N`; fd 3 is the write end of a pipe from the agent.
//! - The shim forks at once (the agent reaps the parent), starts a new session and becomes a child
//!   subreaper, so the container's init is re-parented to it when `runc create` exits.
//! - It runs `runc create --pid-file STATE/pid` with stdout and stderr as pipes it owns, then writes
//!   `ok <pid>\n` or `error <runc's message>\n` to fd 3 and closes it, after binding the attach
//!   socket and writing the init process's PID and start time to `STATE/init.json`
//!   ([`crate::records::InitRecord`]). The agent then runs `runc start`.
//! - It copies both pipes into the CRI log ([`crate::crilog`]) until the init process exits, drains
//!   what is left, and writes `STATE/exit.json` ([`crate::records::ExitRecord`]); the log is complete
//!   by the time that file appears. `STATE/shim.pid` holds its own pid.
//! - It serves `STATE/attach.sock` ([`crate::attach`]): the output also goes to attached clients, and
//!   with `--stdin` the container's stdin is a pipe the supervisor holds open and feeds from them
//!   (`--stdin-once`: closed when the first attached client ends its input).

use crate::crilog::{LineSplitter, LogWriter, Stream};
use crate::records::{self, ExitRecord};
use nix::errno::Errno;
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::signal::{SigSet, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use nix::unistd::{ForkResult, Pid, fork, setsid};
use std::fs::File;
use std::io::Write;
use std::os::fd::{AsFd, FromRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// The file descriptor on which the agent waits for the result of `runc create`.
pub const SYNC_FD: i32 = 3;

/// Parsed command line of the supervisor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShimArgs {
    pub id: String,
    pub bundle: PathBuf,
    pub state: PathBuf,
    pub runc: PathBuf,
    pub runc_root: PathBuf,
    pub log: PathBuf,
    pub log_max_bytes: u64,
    pub log_max_files: u32,
    /// Keep the container's stdin open (a pipe fed by attach clients); else it reads /dev/null.
    pub stdin: bool,
    /// Close that stdin when the first attach client ends its input.
    pub stdin_once: bool,
    /// The container has a terminal (runc's console socket); its master replaces the pipes.
    pub tty: bool,
}

impl ShimArgs {
    /// The argv after the program name.
    pub fn to_args(&self) -> Vec<String> {
        let p = |p: &Path| p.display().to_string();
        vec![
            "--id".into(),
            self.id.clone(),
            "--bundle".into(),
            p(&self.bundle),
            "--state".into(),
            p(&self.state),
            "--runc".into(),
            p(&self.runc),
            "--runc-root".into(),
            p(&self.runc_root),
            "--log".into(),
            p(&self.log),
            "--log-max-bytes".into(),
            self.log_max_bytes.to_string(),
            "--log-max-files".into(),
            self.log_max_files.to_string(),
        ]
        .into_iter()
        .chain(self.stdin.then(|| "--stdin".to_string()))
        .chain(self.stdin_once.then(|| "--stdin-once".to_string()))
        .chain(self.tty.then(|| "--tty".to_string()))
        .collect()
    }

    pub fn parse(args: &[String]) -> Result<ShimArgs, String> {
        let get = |k: &str| -> Result<String, String> {
            args.iter()
                .position(|a| a == k)
                .and_then(|i| args.get(i + 1))
                .cloned()
                .ok_or_else(|| format!("missing {k}"))
        };
        let num = |k: &str| -> Result<u64, String> {
            get(k)?.parse().map_err(|_| format!("{k}: not a number"))
        };
        Ok(ShimArgs {
            id: get("--id")?,
            bundle: get("--bundle")?.into(),
            state: get("--state")?.into(),
            runc: get("--runc")?.into(),
            runc_root: get("--runc-root")?.into(),
            log: get("--log")?.into(),
            log_max_bytes: num("--log-max-bytes")?,
            log_max_files: num("--log-max-files")? as u32,
            stdin: args.iter().any(|a| a == "--stdin"),
            stdin_once: args.iter().any(|a| a == "--stdin-once"),
            tty: args.iter().any(|a| a == "--tty"),
        })
    }
}

/// The supervisor's `main`: returns the process exit code. Messages go to stderr (the agent points it
/// at `STATE/shim.log`).
pub fn main(argv: &[String]) -> i32 {
    let args = match ShimArgs::parse(argv) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("podnet-shim: {e}");
            return 2;
        }
    };
    // SAFETY: the process is single-threaded here (nothing has spawned a thread yet).
    match unsafe { fork() } {
        Ok(ForkResult::Parent { .. }) => return 0,
        Ok(ForkResult::Child) => {}
        Err(e) => {
            eprintln!("podnet-shim {}: fork: {e}", args.id);
            return 1;
        }
    }
    // SAFETY: fd 3 was handed to us by the agent for exactly this purpose; nothing else owns it.
    let sync = unsafe { File::from_raw_fd(SYNC_FD) };
    match supervise(&args, sync) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("podnet-shim {}: {e}", args.id);
            1
        }
    }
}

fn sys(what: &str) -> impl Fn(Errno) -> String + '_ {
    move |e| format!("{what}: {e}")
}

fn supervise(args: &ShimArgs, mut sync: File) -> Result<(), String> {
    let _ = setsid();
    // SAFETY: prctl with integer arguments only.
    if unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) } != 0 {
        return Err(format!(
            "become subreaper: {}",
            std::io::Error::last_os_error()
        ));
    }
    std::fs::write(args.state.join("shim.pid"), std::process::id().to_string())
        .map_err(|e| format!("write shim.pid: {e}"))?;
    // SIGCHLD through a signalfd: no handler, no race between "exited" and "poll". std's Command
    // resets the mask in its children, so runc and the container start with nothing blocked.
    let mut mask = SigSet::empty();
    mask.add(Signal::SIGCHLD);
    mask.thread_block().map_err(sys("block SIGCHLD"))?;
    let sfd = SignalFd::with_flags(&mask, SfdFlags::SFD_NONBLOCK | SfdFlags::SFD_CLOEXEC)
        .map_err(sys("signalfd"))?;

    let mut log = LogWriter::open(&args.log, args.log_max_bytes, args.log_max_files)
        .map_err(|e| e.to_string())?;
    let (out_r, out_w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(sys("pipe"))?;
    let (err_r, err_w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(sys("pipe"))?;
    // The container's stdin: a pipe whose write end only this supervisor holds, or /dev/null.
    // With a terminal, runc gives the container the pty instead and the master comes back to us.
    let (stdin, stdin_w) = if args.stdin && !args.tty {
        let (r, w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(sys("pipe"))?;
        (Stdio::from(r), Some(w))
    } else {
        (Stdio::null(), None)
    };
    let console = if args.tty {
        Some(ConsoleSocket::listen(&args.state)?)
    } else {
        None
    };
    let pid_file = args.state.join("pid");
    let mut cmd = Command::new(&args.runc);
    cmd.arg("--root")
        .arg(&args.runc_root)
        .arg("--log")
        .arg(args.state.join("runc.log"))
        .arg("--log-format")
        .arg("json")
        .arg("create")
        .arg("--bundle")
        .arg(&args.bundle)
        .arg("--pid-file")
        .arg(&pid_file);
    if let Some(c) = &console {
        cmd.arg("--console-socket").arg(&c.path);
    }
    cmd.arg(&args.id)
        .stdin(stdin)
        .stdout(Stdio::from(out_w))
        .stderr(Stdio::from(err_w));
    let mut master: Option<OwnedFd> = None;
    let status = cmd.spawn().and_then(|mut child| {
        if let Some(c) = &console {
            master = c.receive(&mut child);
        }
        child.wait()
    });
    let created = match status {
        Ok(s) if s.success() && args.tty && master.is_none() => {
            Err("runc create: no terminal came back on the console socket".to_string())
        }
        Ok(s) if s.success() => {
            records::read_pid(&pid_file).ok_or_else(|| "runc create: no pid file".to_string())
        }
        Ok(s) => Err(format!("runc create: {} ({s})", runc_error(&args.state))),
        Err(e) => Err(format!("run {}: {e}", args.runc.display())),
    };
    drop(console);
    let cpid = match created {
        Ok(pid) => pid,
        Err(e) => {
            let _ = writeln!(sync, "error {}", e.replace('\n', " "));
            return Err(e);
        }
    };
    // With a terminal, the master is the container's output and (with stdin) its input.
    let dup = |fd: &OwnedFd| fd.try_clone().map_err(|e| format!("dup the terminal: {e}"));
    let (out_src, stdin_w, tty) = match &master {
        Some(m) => (
            dup(m)?,
            if args.stdin { Some(dup(m)?) } else { None },
            Some(dup(m)?),
        ),
        None => (out_r, stdin_w, None),
    };
    // Attach is an extra: a container runs (and logs) without it. Bound before the answer, so a
    // client may attach as soon as the container is created.
    let mut hub = match crate::attach::Hub::bind(&args.state, stdin_w, args.stdin_once, tty) {
        Ok(h) => Some(h),
        Err(e) => {
            eprintln!("podnet-shim {}: attach socket: {e}", args.id);
            None
        }
    };
    // Also before the answer: the agent reads the container's state from it as soon as it has one.
    // Without it (no start time readable: the init died at once), runc is asked.
    if let Some(start) = crate::proc::start_time(cpid) {
        let init = records::InitRecord { pid: cpid, start };
        if let Err(e) = records::write_json(&args.state.join(records::INIT_FILE), &init) {
            eprintln!("podnet-shim {}: {e}", args.id);
        }
    }
    let _ = writeln!(sync, "ok {cpid}");
    drop(sync);
    let terminal = master.is_some();
    let exit = pump(
        &sfd,
        out_src,
        err_r,
        cpid as i32,
        terminal,
        &mut log,
        hub.as_mut(),
    )?;
    drop(master);
    let written =
        records::write_json(&args.state.join("exit.json"), &exit).map_err(|e| e.to_string());
    if let Some(h) = hub {
        h.finish(exit.exit_code);
    }
    written
}

/// The socket runc hands a container's terminal master to (`runc create --console-socket`).
struct ConsoleSocket {
    listener: std::os::unix::net::UnixListener,
    /// A short path for runc: through this process's descriptor of the state directory, which
    /// `_dir` keeps open.
    path: PathBuf,
    _dir: OwnedFd,
}

impl ConsoleSocket {
    fn listen(state: &Path) -> Result<ConsoleSocket, String> {
        use std::os::fd::AsRawFd;
        let _ = std::fs::remove_file(state.join("console.sock"));
        let dir: OwnedFd = File::open(state)
            .map_err(|e| format!("open {}: {e}", state.display()))?
            .into();
        let path = PathBuf::from(format!(
            "/proc/{}/fd/{}/console.sock",
            std::process::id(),
            dir.as_raw_fd()
        ));
        let listener = std::os::unix::net::UnixListener::bind(&path)
            .map_err(|e| format!("console socket: {e}"))?;
        listener
            .set_nonblocking(true)
            .map_err(|e| format!("console socket: {e}"))?;
        Ok(ConsoleSocket {
            listener,
            path,
            _dir: dir,
        })
    }

    /// Waits (bounded) for runc to connect and send the master; gives up when runc has exited.
    fn receive(&self, runc: &mut std::process::Child) -> Option<OwnedFd> {
        use nix::sys::socket::{ControlMessageOwned, MsgFlags, recvmsg};
        use std::os::fd::{AsRawFd, FromRawFd};
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        let conn = loop {
            match self.listener.accept() {
                Ok((c, _)) => break c,
                Err(_) if std::time::Instant::now() > deadline => return None,
                Err(_) => {
                    if !matches!(runc.try_wait(), Ok(None)) {
                        return None;
                    }
                    std::thread::sleep(std::time::Duration::from_millis(5));
                }
            }
        };
        let _ = conn.set_nonblocking(false);
        let _ = conn.set_read_timeout(Some(std::time::Duration::from_secs(10)));
        let mut buf = [0u8; 4096];
        let mut iov = [std::io::IoSliceMut::new(&mut buf)];
        let mut space = nix::cmsg_space!([std::os::fd::RawFd; 4]);
        let msg = recvmsg::<()>(
            conn.as_raw_fd(),
            &mut iov,
            Some(&mut space),
            MsgFlags::MSG_CMSG_CLOEXEC,
        )
        .ok()?;
        let mut master = None;
        for c in msg.cmsgs().ok()? {
            if let ControlMessageOwned::ScmRights(fds) = c {
                for fd in fds {
                    // SAFETY: the kernel just installed these descriptors for us; nothing else
                    // owns them.
                    let owned = unsafe { OwnedFd::from_raw_fd(fd) };
                    if master.is_none() {
                        master = Some(owned);
                    }
                }
            }
        }
        master
    }
}

impl Drop for ConsoleSocket {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// runc's last error message from its JSON log (`{"level":"error","msg":"..."}`).
pub fn runc_error(state: &Path) -> String {
    let text = std::fs::read_to_string(state.join("runc.log")).unwrap_or_default();
    text.lines()
        .rev()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find(|v| v["level"] == "error")
        .and_then(|v| v["msg"].as_str().map(str::to_string))
        .unwrap_or_else(|| "failed (no message in runc.log)".into())
}

struct Source {
    fd: OwnedFd,
    stream: Stream,
    split: LineSplitter,
    open: bool,
}

impl Source {
    /// Reads once; returns false at end of file or when nothing is ready (non-blocking drain).
    fn read_once(
        &mut self,
        buf: &mut [u8],
        log: &mut LogWriter,
        hub: Option<&mut crate::attach::Hub>,
    ) -> bool {
        let n = match nix::unistd::read(&self.fd, buf) {
            Ok(0) => {
                self.open = false;
                return false;
            }
            Ok(n) => n,
            Err(Errno::EINTR) => return true,
            // A terminal's master reads EIO once the container side is closed for good.
            Err(Errno::EIO) => {
                self.open = false;
                return false;
            }
            Err(_) => return false,
        };
        let now = records::now_ns();
        let stream = self.stream;
        if let Some(h) = hub {
            let kind = match stream {
                Stream::Stdout => crate::attach::STDOUT,
                Stream::Stderr => crate::attach::STDERR,
            };
            h.broadcast(kind, &buf[..n]);
        }
        self.split.feed(&buf[..n], &mut |full, content| {
            // A full disk must not stop the container: the line is lost, the copying goes on.
            let _ = log.write_entry(now, stream, full, content);
        });
        true
    }

    fn finish(&mut self, log: &mut LogWriter) {
        let now = records::now_ns();
        let stream = self.stream;
        self.split.finish(&mut |full, content| {
            let _ = log.write_entry(now, stream, full, content);
        });
    }
}

/// How long, and how many times, the last output of a terminal is waited for after its container
/// exited (a process left holding the terminal must not hold up the exit for long).
const TERMINAL_DRAIN_MS: u16 = 100;
const TERMINAL_DRAIN_WAITS: u32 = 20;

fn pump(
    sfd: &SignalFd,
    out: OwnedFd,
    err: OwnedFd,
    cpid: i32,
    terminal: bool,
    log: &mut LogWriter,
    mut hub: Option<&mut crate::attach::Hub>,
) -> Result<ExitRecord, String> {
    let mut sources = [
        Source {
            fd: out,
            stream: Stream::Stdout,
            split: LineSplitter::default(),
            open: true,
        },
        Source {
            fd: err,
            stream: Stream::Stderr,
            split: LineSplitter::default(),
            open: true,
        },
    ];
    let mut buf = vec![0u8; 32 * 1024];
    let mut exit: Option<ExitRecord> = None;
    while exit.is_none() {
        let mut fds = vec![PollFd::new(sfd.as_fd(), PollFlags::POLLIN)];
        let open: Vec<usize> = (0..2).filter(|&i| sources[i].open).collect();
        for &i in &open {
            fds.push(PollFd::new(sources[i].fd.as_fd(), PollFlags::POLLIN));
        }
        let interests = hub.as_ref().map(|h| h.interests()).unwrap_or_default();
        for i in &interests {
            let mut f = PollFlags::empty();
            if i.read {
                f |= PollFlags::POLLIN;
            }
            if i.write {
                f |= PollFlags::POLLOUT;
            }
            fds.push(PollFd::new(i.fd, f));
        }
        match poll(&mut fds, PollTimeout::NONE) {
            Ok(_) | Err(Errno::EINTR) => {}
            Err(e) => return Err(format!("poll: {e}")),
        }
        let ready: Vec<bool> = fds.iter().map(|f| f.any().unwrap_or(false)).collect();
        let hub_ready: Vec<(bool, bool)> = fds[1 + open.len()..]
            .iter()
            .map(|f| {
                let e = f.revents().unwrap_or(PollFlags::empty());
                (
                    e.intersects(PollFlags::POLLIN | PollFlags::POLLHUP | PollFlags::POLLERR),
                    e.contains(PollFlags::POLLOUT),
                )
            })
            .collect();
        drop(fds);
        drop(interests);
        for (k, &i) in open.iter().enumerate() {
            if ready[k + 1] {
                sources[i].read_once(&mut buf, log, hub.as_deref_mut());
            }
        }
        if let Some(h) = hub.as_deref_mut() {
            h.ready(&hub_ready);
        }
        if ready[0] {
            while let Ok(Some(_)) = sfd.read_signal() {}
            exit = reap(cpid);
        }
    }
    // The init is gone; copy what is already in the pipes, but do not wait for writers that may
    // live on (a background process in a shared PID namespace keeps the pipe open). A terminal
    // hands what the container wrote to its master asynchronously (the tty layer's flip buffers),
    // so its last output may arrive just after the exit: the master is read until it reports the
    // container side closed (EIO), waiting a bounded time for each next piece.
    for s in sources.iter_mut() {
        let _ = nix::fcntl::fcntl(
            s.fd.as_fd(),
            nix::fcntl::FcntlArg::F_SETFL(nix::fcntl::OFlag::O_NONBLOCK),
        );
        let mut waits = 0;
        for _ in 0..10_000 {
            if !s.open {
                break;
            }
            if s.read_once(&mut buf, log, hub.as_deref_mut()) {
                continue;
            }
            if !s.open || !terminal || waits == TERMINAL_DRAIN_WAITS {
                break;
            }
            waits += 1;
            let mut fds = [PollFd::new(s.fd.as_fd(), PollFlags::POLLIN)];
            if !matches!(poll(&mut fds, PollTimeout::from(TERMINAL_DRAIN_MS)), Ok(n) if n > 0) {
                break;
            }
        }
        s.finish(log);
    }
    Ok(exit.expect("loop ends with an exit"))
}

/// Reaps every exited child (we are a subreaper, so orphans land here too); returns the exit of the
/// container's init if it was among them.
fn reap(cpid: i32) -> Option<ExitRecord> {
    let mut found = None;
    loop {
        match waitpid(Pid::from_raw(-1), Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::Exited(pid, code)) if pid.as_raw() == cpid => {
                found = Some(ExitRecord {
                    exit_code: code,
                    signal: None,
                    finished_ns: records::now_ns(),
                });
            }
            Ok(WaitStatus::Signaled(pid, sig, _)) if pid.as_raw() == cpid => {
                found = Some(ExitRecord {
                    exit_code: 128 + sig as i32,
                    signal: Some(sig as i32),
                    finished_ns: records::now_ns(),
                });
            }
            Ok(WaitStatus::StillAlive) | Err(_) => return found,
            Ok(_) => {}
        }
    }
}
