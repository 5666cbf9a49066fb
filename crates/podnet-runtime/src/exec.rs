//! A process run inside a running container with `runc exec`, with pipes or a pseudo-terminal.
//!
//! With a terminal, runc stays in the foreground (so it reports the process's exit status) and, as
//! runc does in that mode, makes the container-side pty itself and relays between it and its own
//! stdio. Its stdio is the slave of a pty made here, whose master the caller reads and writes; runc
//! is session leader with that slave as controlling terminal, so a resize (TIOCSWINSZ on the master)
//! reaches it as SIGWINCH and runc passes the new size on. (runc's `--console-socket`, which hands
//! the container pty's master over SCM_RIGHTS, is refused by runc unless it detaches, and a
//! detached exec's exit status would go to whichever process reaps it, not to us.)

use crate::error::{Error, Result};
use std::fs::File;
use std::os::fd::AsRawFd;
use std::os::unix::process::CommandExt;
use std::process::{Child, ChildStderr, ChildStdin, ChildStdout, Command, Stdio};

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
/// container id and arguments.
pub(crate) fn spawn(
    mut cmd: Command,
    id: &str,
    args: &[String],
    tty: bool,
    stdin: bool,
    size: Option<(u16, u16)>,
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
    let (cols, rows) = size.unwrap_or((80, 24));
    let ws = libc::winsize {
        ws_row: rows,
        ws_col: cols,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    let pty = nix::pty::openpty(Some(&ws), None)
        .map_err(|e| Error::sys(format!("{what}: openpty"), e))?;
    let master = File::from(pty.master);
    let slave = File::from(pty.slave);
    let dup = |f: &File| {
        f.try_clone()
            .map_err(|e| Error::io(format!("{what}: dup pty"), e))
    };
    cmd.arg("--tty").arg(id).args(args);
    cmd.stdin(Stdio::from(dup(&slave)?))
        .stdout(Stdio::from(dup(&slave)?))
        .stderr(Stdio::from(slave));
    // SAFETY: setsid and ioctl are async-signal-safe; fd 0 is the pty slave by now.
    unsafe {
        cmd.pre_exec(|| {
            if libc::setsid() < 0 || libc::ioctl(0, libc::TIOCSCTTY, 0) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let child = cmd
        .spawn()
        .map_err(|e| Error::io(format!("{what}: run runc exec --tty"), e))?;
    Ok(ExecProcess {
        stdin: None,
        stdout: None,
        stderr: None,
        pty: Some(master),
        child,
        what,
    })
}
