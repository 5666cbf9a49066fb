//! Where a pod's start goes: with `PODNET_TRACE_PODS=1` in the agent's environment, every sync that
//! did something logs one line with the time of each step (watch delivery, sandbox, CNI, images,
//! runc, status writes), e.g.
//! `pod default/web sync at 1700000000.123: watch 3ms, sandbox.pause 2ms, sandbox.cni 14ms, ...`.
//!
//! A sync runs on one blocking thread from start to end, so the steps are collected in a
//! thread-local record: the runtime calls deep inside a sync mark their step without every function
//! on the way carrying a recorder.

use std::cell::RefCell;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// The environment variable that turns the log lines on.
pub const ENV: &str = "PODNET_TRACE_PODS";

pub fn enabled() -> bool {
    static ON: OnceLock<bool> = OnceLock::new();
    *ON.get_or_init(|| std::env::var(ENV).is_ok_and(|v| !v.is_empty() && v != "0"))
}

struct Sync {
    pod: String,
    /// Something changed (an action ran, a status was written): the line is worth logging.
    worth: bool,
    wall: jiff::Timestamp,
    last: Instant,
    steps: Vec<(String, Duration)>,
}

thread_local! {
    static CURRENT: RefCell<Option<Sync>> = const { RefCell::new(None) };
}

/// Starts recording the steps of one sync of `pod` on this thread.
pub fn begin(pod: &str) {
    if !enabled() {
        return;
    }
    CURRENT.with(|c| {
        *c.borrow_mut() = Some(Sync {
            pod: pod.to_string(),
            worth: false,
            wall: jiff::Timestamp::now(),
            last: Instant::now(),
            steps: Vec::new(),
        })
    });
}

/// Records a step that already happened (e.g. how long an event waited before the sync began).
pub fn note(step: &str, took: Duration) {
    if !enabled() {
        return;
    }
    CURRENT.with(|c| {
        if let Some(s) = c.borrow_mut().as_mut() {
            s.steps.push((step.to_string(), took));
        }
    });
}

/// Ends the step `step`: the time since the previous mark (or the start) is its own.
/// [`mark`] with a name made only when tracing is on (no formatting on the hot path otherwise).
pub fn mark_with(step: impl FnOnce() -> String) {
    if enabled() {
        mark(&step());
    }
}

pub fn mark(step: &str) {
    if !enabled() {
        return;
    }
    CURRENT.with(|c| {
        if let Some(s) = c.borrow_mut().as_mut() {
            let now = Instant::now();
            s.steps.push((step.to_string(), now - s.last));
            s.last = now;
        }
    });
}

/// Times `f` as step `step` (what ran before it since the last mark is put under `before`).
pub fn time<T>(step: &str, f: impl FnOnce() -> T) -> T {
    if !enabled() {
        return f();
    }
    skip();
    let out = f();
    mark(step);
    out
}

/// The time since the last mark goes under `other` (work no step claims), so the next step starts now.
pub fn skip() {
    if !enabled() {
        return;
    }
    CURRENT.with(|c| {
        if let Some(s) = c.borrow_mut().as_mut() {
            let now = Instant::now();
            let gap = now - s.last;
            if gap >= Duration::from_millis(1) {
                s.steps.push(("other".into(), gap));
            }
            s.last = now;
        }
    });
}

/// The sync changed something: its line is logged.
pub fn worthy() {
    if !enabled() {
        return;
    }
    CURRENT.with(|c| {
        if let Some(s) = c.borrow_mut().as_mut() {
            s.worth = true;
        }
    });
}

/// Ends the sync: its line goes to the agent's log if it changed something.
pub fn end() {
    if !enabled() {
        return;
    }
    let Some(s) = CURRENT.with(|c| c.borrow_mut().take()) else {
        return;
    };
    if !s.worth {
        return;
    }
    let total: Duration = s.steps.iter().map(|(_, d)| *d).sum::<Duration>() + s.last.elapsed();
    let steps: Vec<String> = s
        .steps
        .iter()
        .map(|(n, d)| format!("{n} {:.1}ms", d.as_secs_f64() * 1e3))
        .collect();
    eprintln!(
        "pod {} sync at {:.3}: {} (total {:.1}ms)",
        s.pod,
        s.wall.as_millisecond() as f64 / 1e3,
        steps.join(", "),
        total.as_secs_f64() * 1e3
    );
}
