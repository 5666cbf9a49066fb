//! Running a walkthrough's commands: bash in the walkthrough's directory, shell variables kept
//! from one command to the next (as in the reader's own terminal), output captured, every command
//! bounded in time and its whole process group stopped at the end.

use std::io::Read;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
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

/// The command that runs `typed` in the interactive shell `shell` opens, as if typed at its prompt:
/// the shell gets `-c TYPED` (and keeps `-t`, not `-i`), and the whole runs on a pseudo-terminal (util-linux `script`), so that
/// `kubectl exec -it` gets the terminal it asks for and the programs in the container print what
/// they print on a reader's terminal (curl no progress meter, ls its columns).
pub fn in_shell(shell: &str, typed: &str) -> String {
    // Nothing is typed after the command: the shell keeps its terminal (-t) but not its input (-i),
    // which would only carry the end of input to the container's terminal.
    let words: Vec<&str> = shell
        .split_whitespace()
        .filter_map(|w| match w {
            "-it" | "-ti" => Some("-t"),
            "-i" | "--stdin" => None,
            w => Some(w),
        })
        .collect();
    // A wide terminal, so that `ps -aux` does not cut its lines at 80 columns.
    let command = format!(
        "stty cols 200 rows 50; {} -c {}",
        words.join(" "),
        quote(typed)
    );
    format!("script -qec {} /dev/null", quote(&command))
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
        limit: Duration,
        follow: Option<Duration>,
    ) -> std::io::Result<Ran> {
        // `set -a` exports plain assignments, so `export -p` keeps them for the next command.
        let script = format!(
            "exec 2>&1\nset -a\n. {state}\n{command}\n__podnet_rc=$?\nexport -p > {state}\nexit $__podnet_rc\n",
            state = quote(&self.state.to_string_lossy()),
        );
        self.bash(&script, limit, follow)
    }

    fn bash(
        &self,
        script: &str,
        limit: Duration,
        follow: Option<Duration>,
    ) -> std::io::Result<Ran> {
        let mut child = Command::new("bash")
            .arg("-c")
            .arg(script)
            .current_dir(&self.dir)
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            // Its own process group: stopping it stops what it started (a --follow, a pipe).
            .process_group(0)
            .spawn()?;
        let pgid = child.id() as i32;
        let mut stdout = child.stdout.take().expect("piped");
        let reader = std::thread::spawn(move || {
            let mut buf = Vec::new();
            let _ = stdout.read_to_end(&mut buf);
            buf
        });
        let start = Instant::now();
        let stop_at = follow.unwrap_or(limit).min(limit);
        let status = loop {
            if let Some(st) = child.try_wait()? {
                break st.code();
            }
            if start.elapsed() >= stop_at {
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
        // Output from a pseudo-terminal ends its lines with \r\n.
        // kubectl's terminal streams may carry NUL padding, which a terminal does not show.
        let output = String::from_utf8_lossy(&reader.join().unwrap_or_default())
            .replace("\r\n", "\n")
            .replace('\0', "");
        Ok(Ran {
            status,
            output,
            followed: status.is_none() && follow.is_some_and(|f| f <= limit),
        })
    }
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
            r"script -qec 'stty cols 200 rows 50; kubectl exec example-dev -t --container httpd -- bash -c '\''curl localhost'\''' /dev/null"
        );
        let (_d, sh) = shell();
        let typed = in_shell("bash", "test -t 1 && tput cols; exit 4");
        let r = sh.run(&typed, Duration::from_secs(10), None).unwrap();
        assert_eq!((r.status, r.output.as_str()), (Some(4), "200\n"));
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
            .run(
                "podip=10.244.1.5; echo set; echo err >&2",
                Duration::from_secs(5),
                None,
            )
            .unwrap();
        assert_eq!(r.status, Some(0));
        assert_eq!(r.output, "set\nerr\n");
        let r = sh
            .run("echo $podip; exit 3", Duration::from_secs(5), None)
            .unwrap();
        assert_eq!((r.status, r.output.as_str()), (Some(3), "10.244.1.5\n"));
    }

    #[test]
    fn followed_and_overlong_commands_are_stopped() {
        let (_d, sh) = shell();
        let r = sh
            .run(
                "echo first; sleep 30; echo never",
                Duration::from_secs(10),
                Some(Duration::from_millis(300)),
            )
            .unwrap();
        assert!(r.followed && r.status.is_none(), "{r:?}");
        assert_eq!(r.output, "first\n");
        let r = sh
            .run("sleep 30", Duration::from_millis(300), None)
            .unwrap();
        assert!(!r.followed && r.status.is_none(), "{r:?}");
    }

    #[test]
    fn background_children_do_not_hold_the_step() {
        let (_d, sh) = shell();
        // A step held until its limit would have no exit status.
        let r = sh
            .run("sleep 30 & echo started", Duration::from_secs(10), None)
            .unwrap();
        assert_eq!((r.status, r.output.as_str()), (Some(0), "started\n"));
    }
}
