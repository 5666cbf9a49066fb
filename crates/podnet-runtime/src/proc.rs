//! Processes by PID, safely: a PID is only trusted together with its start time, so a PID reused by
//! an unrelated process after a crash is never signalled.

use std::time::{Duration, Instant};

/// Start time (clock ticks since boot) and state letter of a process, from `/proc/PID/stat`.
pub fn stat(pid: u32) -> Option<(u64, char)> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name is in parentheses and may contain spaces; fields resume after the last ')'.
    let rest = &text[text.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split(' ').collect();
    let state = fields.first()?.chars().next()?;
    let start = fields.get(19)?.parse().ok()?;
    Some((start, state))
}

pub fn start_time(pid: u32) -> Option<u64> {
    stat(pid).map(|(s, _)| s)
}

/// Whether `pid` runs and is the same process (same start time); zombies count as gone.
pub fn alive(pid: u32, start: Option<u64>) -> bool {
    match stat(pid) {
        Some((s, state)) => state != 'Z' && state != 'X' && start.is_none_or(|want| want == s),
        None => false,
    }
}

/// Whether `pid` is still runc's init, waiting in `runc create` for `runc start` (runc names it
/// `runc:[2:INIT]` until it executes the container's program, which renames it).
pub fn is_runc_init(pid: u32) -> bool {
    std::fs::read(format!("/proc/{pid}/comm")).is_ok_and(|c| c.starts_with(b"runc:["))
}

/// Sends `sig` if the process is still the one we mean.
pub fn signal(pid: u32, start: Option<u64>, sig: nix::sys::signal::Signal) -> bool {
    if pid == 0 || !alive(pid, start) {
        return false;
    }
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid as i32), sig).is_ok()
}

/// Waits until `gone()` holds, polling, for at most `bound`. Returns whether it did.
pub fn wait_until(bound: Duration, mut gone: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + bound;
    let mut pause = Duration::from_millis(2);
    loop {
        if gone() {
            return true;
        }
        if Instant::now() >= end {
            return false;
        }
        std::thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_millis(50));
    }
}

/// Reaps `pid` if it is our child and has exited (no-op otherwise).
pub fn reap_if_child(pid: u32) {
    let _ = nix::sys::wait::waitpid(
        nix::unistd::Pid::from_raw(pid as i32),
        Some(nix::sys::wait::WaitPidFlag::WNOHANG),
    );
}

/// The command line of a process, NUL-separated arguments joined by spaces.
pub fn cmdline(pid: u32) -> Option<String> {
    let raw = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
    Some(
        raw.split(|b| *b == 0)
            .filter(|a| !a.is_empty())
            .map(|a| String::from_utf8_lossy(a).into_owned())
            .collect::<Vec<_>>()
            .join(" "),
    )
}

/// The processes named `comm` (PID and start time) whose environment holds exactly `entry`
/// (`NAME=value`). The name is read first (`/proc/PID/comm` takes no lock on the process's
/// memory, which `environ` does: a process stuck holding it would block the scan), and the start
/// time before and after the environment, so a PID reused meanwhile is not taken for the first.
pub fn with_env(comm: &str, entry: &str) -> Vec<(u32, u64)> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    let mut found = Vec::new();
    for e in dir.flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else {
            continue;
        };
        let named = std::fs::read_to_string(format!("/proc/{pid}/comm"))
            .is_ok_and(|c| c.trim_end_matches('\n') == comm);
        if !named {
            continue;
        }
        let Some(start) = start_time(pid) else {
            continue;
        };
        let Ok(env) = std::fs::read(format!("/proc/{pid}/environ")) else {
            continue;
        };
        if env.split(|b| *b == 0).any(|v| v == entry.as_bytes()) && start_time(pid) == Some(start) {
            found.push((pid, start));
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn our_own_process_is_alive_and_a_wrong_start_time_is_not() {
        let me = std::process::id();
        let start = start_time(me).unwrap();
        assert!(alive(me, Some(start)));
        assert!(!alive(me, Some(start + 1)));
        assert!(!alive(u32::MAX - 1, None));
    }

    #[test]
    fn processes_are_found_by_an_environment_entry() {
        let entry = format!("PODNET_PROC_TEST={}", std::process::id());
        let mut child = std::process::Command::new("sleep")
            .arg("30")
            .env_clear()
            .env("PODNET_PROC_TEST", std::process::id().to_string())
            .spawn()
            .unwrap();
        // Until the child has exec'd, its environment is still a copy of ours.
        let mut found = Vec::new();
        wait_until(Duration::from_secs(10), || {
            found = with_env("sleep", &entry);
            !found.is_empty()
        });
        // A prefix of the value is not the entry, nor is a process of another name the one.
        let prefix = with_env("sleep", &entry[..entry.len() - 1]);
        let other = with_env("podnet-pause", &entry);
        let _ = child.kill();
        let _ = child.wait();
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(found[0].0, child.id());
        assert!(
            prefix.is_empty() && other.is_empty(),
            "{prefix:?} {other:?}"
        );
    }
}
