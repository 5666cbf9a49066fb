//! A process run inside a running container with `runc exec`, with pipes or a pseudo-terminal.
//!
//! With a terminal, runc makes the pty inside the container and hands the master back over a unix
//! socket (`--console-socket`) as an SCM_RIGHTS message; the caller then reads and writes the master
//! and resizes it with TIOCSWINSZ. runc itself stays in the foreground and exits with the process's
//! status, which [`ExecProcess::wait`] returns.

use crate::error::{Error, Result};
use nix::sys::socket::{ControlMessageOwned, MsgFlags, recvmsg};
use std::fs::File;
use std::io::IoSliceMut;
use std::os::fd::{AsRawFd, FromRawFd};
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStderr, ChildStdin, ChildStdout, Command, Stdio};
use std::time::{Duration, Instant};

/// How long runc may take to hand over the terminal.
const CONSOLE_BOUND: Duration = Duration::from_secs(10);

/// A running exec. Streams are `Some` as requested: `stdin` when asked for, `stdout`/`stderr`
/// without a terminal, `pty` (the terminal's master, both directions) with one.
#[derive(Debug)]
pub struct ExecProcess {
    child: Child,
    pub stdin: Option<ChildStdin>,
    pub stdout: Option<ChildStdout>,
    pub stderr: Option<ChildStderr>,
    pub pty: Option<File>,
    what: String,
}

impl ExecProcess {
    /// Sets the terminal size (columns, rows); the process gets SIGWINCH.
    pub fn resize(&self, cols: u16, rows: u16) -> Result<()> {
        let pty = self
            .pty
            .as_ref()
            .ok_or_else(|| Error::Invalid(format!("{}: resize: no terminal", self.what)))?;
        set_size(pty, cols, rows)
            .map_err(|e| Error::io(format!("{}: resize terminal", self.what), e))
    }

    /// Waits for the process; returns its exit code (128 + signal if killed, as runc reports it).
    pub fn wait(&mut self) -> Result<i32> {
        drop(self.stdin.take());
        let status = self
            .child
            .wait()
            .map_err(|e| Error::io(format!("{}: wait for runc exec", self.what), e))?;
        Ok(status.code().unwrap_or_else(|| {
            use std::os::unix::process::ExitStatusExt;
            128 + status.signal().unwrap_or(0)
        }))
    }

    /// The exit code if it has finished.
    pub fn try_wait(&mut self) -> Result<Option<i32>> {
        match self.child.try_wait() {
            Ok(Some(s)) => Ok(Some(s.code().unwrap_or(128))),
            Ok(None) => Ok(None),
            Err(e) => Err(Error::io(format!("{}: wait for runc exec", self.what), e)),
        }
    }

    /// PID of the `runc exec` process (the exec'd process is its child).
    pub fn runc_pid(&self) -> u32 {
        self.child.id()
    }
}

fn set_size(pty: &File, cols: u16, rows: u16) -> std::io::Result<()> {
    let ws = libc::winsize {
        ws_row: rows,
        ws_col: cols,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCSWINSZ reads a winsize struct that outlives the call.
    if unsafe { libc::ioctl(pty.as_raw_fd(), libc::TIOCSWINSZ, &ws) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// Starts `runc exec`; `cmd` already has `--root` and the exec options up to (not including) the
/// container id and arguments. `sock_dir` holds the short-lived console socket.
pub(crate) fn spawn(
    mut cmd: Command,
    id: &str,
    args: &[String],
    tty: bool,
    stdin: bool,
    size: Option<(u16, u16)>,
    sock_dir: &Path,
    what: String,
) -> Result<ExecProcess> {
    if args.is_empty() {
        return Err(Error::Invalid(format!("{what}: no command")));
    }
    if !tty {
        cmd.arg(id).args(args);
        cmd.stdin(if stdin { Stdio::piped() } else { Stdio::null() })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd
            .spawn()
            .map_err(|e| Error::io(format!("{what}: run runc exec"), e))?;
        return Ok(ExecProcess {
            stdin: child.stdin.take(),
            stdout: child.stdout.take(),
            stderr: child.stderr.take(),
            pty: None,
            child,
            what,
        });
    }
    std::fs::create_dir_all(sock_dir)
        .map_err(|e| Error::io(format!("{what}: create {}", sock_dir.display()), e))?;
    let sock = SocketFile(sock_dir.join(format!(
        "{}.sock",
        crate::records::new_id()?.get(..16).unwrap_or("x")
    )));
    let listener = UnixListener::bind(&sock.0)
        .map_err(|e| Error::io(format!("{what}: listen on {}", sock.0.display()), e))?;
    listener
        .set_nonblocking(true)
        .map_err(|e| Error::io(format!("{what}: console socket"), e))?;
    cmd.arg("--tty")
        .arg("--console-socket")
        .arg(&sock.0)
        .arg(id)
        .args(args);
    cmd.stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let mut child = cmd
        .spawn()
        .map_err(|e| Error::io(format!("{what}: run runc exec"), e))?;
    let master = match receive_master(&listener, &mut child) {
        Ok(m) => m,
        Err(e) => {
            let _ = child.kill();
            let out = child.wait_with_output().ok();
            let msg = out
                .map(|o| crate::runc::message(&o.stderr))
                .unwrap_or_default();
            return Err(Error::Runc {
                what: format!("{what}: runc exec --tty"),
                message: format!("{e}; runc: {msg}"),
            });
        }
    };
    if let Some((c, r)) = size {
        set_size(&master, c, r).map_err(|e| Error::io(format!("{what}: set terminal size"), e))?;
    }
    Ok(ExecProcess {
        stdin: None,
        stdout: None,
        stderr: None,
        pty: Some(master),
        child,
        what,
    })
}

struct SocketFile(PathBuf);

impl Drop for SocketFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

fn receive_master(listener: &UnixListener, child: &mut Child) -> std::result::Result<File, String> {
    let end = Instant::now() + CONSOLE_BOUND;
    let stream = loop {
        match listener.accept() {
            Ok((s, _)) => break s,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                if let Ok(Some(status)) = child.try_wait() {
                    return Err(format!(
                        "runc exited ({status}) before sending the terminal"
                    ));
                }
                if Instant::now() > end {
                    return Err("no terminal from runc within 10 s".into());
                }
                std::thread::sleep(Duration::from_millis(2));
            }
            Err(e) => return Err(format!("accept on console socket: {e}")),
        }
    };
    stream.set_nonblocking(false).map_err(|e| e.to_string())?;
    let mut buf = [0u8; 4096];
    let mut iov = [IoSliceMut::new(&mut buf)];
    let mut cmsg = nix::cmsg_space!([std::os::fd::RawFd; 4]);
    let msg = recvmsg::<()>(
        stream.as_raw_fd(),
        &mut iov,
        Some(&mut cmsg),
        MsgFlags::MSG_CMSG_CLOEXEC,
    )
    .map_err(|e| format!("receive terminal: {e}"))?;
    for c in msg.cmsgs().map_err(|e| format!("receive terminal: {e}"))? {
        if let ControlMessageOwned::ScmRights(fds) = c
            && let Some(&fd) = fds.first()
        {
            for &extra in &fds[1..] {
                // SAFETY: received descriptors are ours to close.
                unsafe { libc::close(extra) };
            }
            // SAFETY: a freshly received descriptor that nothing else owns.
            return Ok(unsafe { File::from_raw_fd(fd) });
        }
    }
    Err("runc sent no file descriptor".into())
}
