//! Running a walkthrough's commands: bash in the walkthrough's directory, shell variables kept
//! from one command to the next (as in the reader's own terminal), output captured, every command
//! bounded in time and its whole process group stopped at the end.

use std::io::Read;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use super::check::Ran;

/// `s` as one shell word.
pub fn quote(s: &str) -> String {
    if !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./=:,@%+".contains(c))
    {
        return s.to_string();
    }
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// The command that runs `typed` in the interactive shell `shell` opens, as if typed at its prompt
/// (`kubectl exec P -it -- bash` + `curl localhost` -> `kubectl exec P -it -- bash -c 'curl localhost'`).
/// Run it with [`Terminal::Yes`], so that `-it` gets the terminal it asks for.
pub fn in_shell(shell: &str, typed: &str) -> String {
    format!("{} -c {}", shell.trim(), quote(typed))
}

/// Whether a command runs on a pseudo-terminal, as in a reader's terminal window: `kubectl exec
/// -it` then gives the container a terminal too, and programs print what they print on one (curl
/// no progress meter, ps its full lines in a wide window).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Terminal {
    Yes,
    No,
}

/// Set by SIGINT, SIGTERM or SIGHUP once [`stop_on_signals`] is in place: the running command is
/// stopped (its whole process group) and the walkthrough ends with its cleanup.
pub static INTERRUPTED: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(_: libc::c_int) {
    INTERRUPTED.store(true, Ordering::SeqCst);
}

/// Ctrl-C (and SIGTERM, SIGHUP) stop the walkthrough instead of killing podnet: each command runs in
/// its own process group, which a terminal's Ctrl-C does not reach, so podnet stops it and cleans up.
pub fn stop_on_signals() -> std::io::Result<()> {
    use nix::sys::signal::{SaFlags, SigAction, SigHandler, SigSet, Signal, sigaction};
    let action = SigAction::new(
        SigHandler::Handler(on_signal),
        SaFlags::SA_RESTART,
        SigSet::empty(),
    );
    for sig in [Signal::SIGINT, Signal::SIGTERM, Signal::SIGHUP] {
        // SAFETY: the handler only stores to an atomic, which is async-signal-safe.
        unsafe { sigaction(sig, &action) }.map_err(std::io::Error::from)?;
    }
    Ok(())
}

/// Runs commands as a reader's terminal would: variables a command sets (`podip=$(...)`) are there
/// for the next one. They live in a file of `export` lines, re-read before each command.
pub struct Shell {
    dir: PathBuf,
    state: PathBuf,
    env: Vec<(String, String)>,
}

impl Shell {
    pub fn new(dir: &Path, state: PathBuf, env: Vec<(String, String)>) -> std::io::Result<Shell> {
        std::fs::write(&state, "")?;
        Ok(Shell {
            dir: dir.to_path_buf(),
            state,
            env,
        })
    }

    /// Runs `command`; stops it (and whatever it started) after `follow` (a success) or `limit`.
    pub fn run(
        &self,
        command: &str,
        terminal: Terminal,
        limit: Duration,
        follow: Option<Duration>,
    ) -> std::io::Result<Ran> {
        // `set -a` exports plain assignments, so `export -p` keeps them for the next command.
        let script = format!(
            "exec 2>&1\nset -a\n. {state}\n{command}\n__podnet_rc=$?\nexport -p > {state}\nexit $__podnet_rc\n",
            state = quote(&self.state.to_string_lossy()),
        );
        let mut cmd = Command::new("bash");
        cmd.arg("-c")
            .arg(script)
            .current_dir(&self.dir)
            .envs(self.env.iter().map(|(k, v)| (k, v)));
        let output: Box<dyn Read + Send> = match terminal {
            Terminal::No => {
                // Its own process group: stopping it stops what it started (a --follow, a pipe).
                cmd.stdin(Stdio::null())
                    .stdout(Stdio::piped())
                    .stderr(Stdio::null())
                    .process_group(0);
                let mut child = cmd.spawn()?;
                let out = child.stdout.take().expect("piped");
                return self.finish(child, Box::new(out), limit, follow);
            }
            Terminal::Yes => {
                let (master, slave) = pseudo_terminal()?;
                cmd.stdin(Stdio::from(slave.try_clone()?))
                    .stdout(Stdio::from(slave.try_clone()?))
                    .stderr(Stdio::from(slave));
                // SAFETY: only async-signal-safe calls between fork and exec. Its own session (so
                // its own process group, as above) whose controlling terminal is the new one.
                unsafe {
                    cmd.pre_exec(|| {
                        if libc::setsid() < 0 || libc::ioctl(0, libc::TIOCSCTTY, 0) < 0 {
                            return Err(std::io::Error::last_os_error());
                        }
                        Ok(())
                    });
                }
                Box::new(std::fs::File::from(master))
            }
        };
        let child = cmd.spawn()?;
        // Our copies of the terminal's far end go with `cmd`: reading ends when the command's do.
        drop(cmd);
        self.finish(child, output, limit, follow)
    }

    fn finish(
        &self,
        mut child: std::process::Child,
        mut output: Box<dyn Read + Send>,
        limit: Duration,
        follow: Option<Duration>,
    ) -> std::io::Result<Ran> {
        let pgid = child.id() as i32;
        let reader = std::thread::spawn(move || {
            let mut buf = Vec::new();
            // A terminal's master reads EIO once no process holds the terminal: the end.
            let _ = output.read_to_end(&mut buf);
            buf
        });
        let start = Instant::now();
        let stop_at = follow.unwrap_or(limit).min(limit);
        let mut interrupted = false;
        let status = loop {
            if let Some(st) = child.try_wait()? {
                break st.code();
            }
            if start.elapsed() >= stop_at {
                break None;
            }
            if INTERRUPTED.load(Ordering::SeqCst) {
                interrupted = true;
                break None;
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        // Whatever is left of the group (the stopped command, or background children keeping the
        // output open) goes now.
        // SAFETY: kill on our own child's process group.
        unsafe {
            libc::kill(-pgid, libc::SIGTERM);
        }
        let grace = Instant::now();
        while child.try_wait()?.is_none() && grace.elapsed() < Duration::from_secs(2) {
            std::thread::sleep(Duration::from_millis(20));
        }
        // SAFETY: as above.
        unsafe {
            libc::kill(-pgid, libc::SIGKILL);
        }
        let _ = child.wait();
        // A terminal ends its lines with \r\n, and kubectl's terminal streams may carry NUL
        // padding, which a terminal does not show.
        let output = String::from_utf8_lossy(&reader.join().unwrap_or_default())
            .replace("\r\n", "\n")
            .replace('\0', "");
        if interrupted {
            return Err(std::io::Error::new(
                std::io::ErrorKind::Interrupted,
                "interrupted (Ctrl-C or a signal); the command was stopped",
            ));
        }
        Ok(Ran {
            status,
            output,
            followed: status.is_none() && follow.is_some_and(|f| f <= limit),
        })
    }
}

/// A new pseudo-terminal, 200 columns by 50 rows (so that `ps -aux` does not cut its lines):
/// (master, slave).
fn pseudo_terminal() -> std::io::Result<(std::os::fd::OwnedFd, std::os::fd::OwnedFd)> {
    let size = nix::pty::Winsize {
        ws_row: 50,
        ws_col: 200,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    let pty = nix::pty::openpty(Some(&size), None).map_err(std::io::Error::from)?;
    Ok((pty.master, pty.slave))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting() {
        assert_eq!(quote("localhost"), "localhost");
        assert_eq!(quote("curl localhost"), "'curl localhost'");
        assert_eq!(quote("it's"), r"'it'\''s'");
        assert_eq!(quote(""), "''");
    }

    #[test]
    fn typed_commands_run_in_the_shell_on_a_terminal() {
        assert_eq!(
            in_shell(
                "kubectl exec example-dev -it --container httpd -- bash",
                "curl localhost"
            ),
            "kubectl exec example-dev -it --container httpd -- bash -c 'curl localhost'"
        );
        let (_d, sh) = shell();
        let typed = in_shell("bash", "test -t 0 && test -t 1 && stty size; exit 4");
        let r = sh
            .run(&typed, Terminal::Yes, Duration::from_secs(10), None)
            .unwrap();
        assert_eq!((r.status, r.output.as_str()), (Some(4), "50 200\n"));
        // Off a terminal, the same is not on one.
        let r = sh
            .run(&typed, Terminal::No, Duration::from_secs(10), None)
            .unwrap();
        assert_eq!((r.status, r.output.as_str()), (Some(4), ""));
    }

    impl Shell {
        fn run_no_tty(
            &self,
            command: &str,
            limit: Duration,
            follow: Option<Duration>,
        ) -> std::io::Result<Ran> {
            self.run(command, Terminal::No, limit, follow)
        }
    }

    fn shell() -> (tempfile::TempDir, Shell) {
        let dir = tempfile::tempdir().unwrap();
        let sh = Shell::new(dir.path(), dir.path().join("state"), vec![]).unwrap();
        (dir, sh)
    }

    #[test]
    fn variables_carry_over_and_output_is_captured() {
        let (_d, sh) = shell();
        let r = sh
            .run_no_tty(
                "podip=10.244.1.5; echo set; echo err >&2",
                Duration::from_secs(5),
                None,
            )
            .unwrap();
        assert_eq!(r.status, Some(0));
        assert_eq!(r.output, "set\nerr\n");
        let r = sh
            .run_no_tty("echo $podip; exit 3", Duration::from_secs(5), None)
            .unwrap();
        assert_eq!((r.status, r.output.as_str()), (Some(3), "10.244.1.5\n"));
    }

    #[test]
    fn followed_and_overlong_commands_are_stopped() {
        let (_d, sh) = shell();
        let r = sh
            .run_no_tty(
                "echo first; sleep 30; echo never",
                Duration::from_secs(10),
                Some(Duration::from_millis(300)),
            )
            .unwrap();
        assert!(r.followed && r.status.is_none(), "{r:?}");
        assert_eq!(r.output, "first\n");
        let r = sh
            .run_no_tty("sleep 30", Duration::from_millis(300), None)
            .unwrap();
        assert!(!r.followed && r.status.is_none(), "{r:?}");
    }

    #[test]
    fn background_children_do_not_hold_the_step() {
        let (_d, sh) = shell();
        // A step held until its limit would have no exit status.
        let r = sh
            .run_no_tty("sleep 30 & echo started", Duration::from_secs(10), None)
            .unwrap();
        assert_eq!((r.status, r.output.as_str()), (Some(0), "started\n"));
    }
}
