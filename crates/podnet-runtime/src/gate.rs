//! A bound on how many `runc create` run at once in this process. A burst of pods on a node would
//! otherwise start one `runc create` (a Go process, then its `runc init`) per container at the same
//! moment; on a machine with few CPUs they then share the CPUs with each other, so every one of them
//! (and the pods already waiting for their `runc start`) finishes late. With the bound, creates queue
//! and the first pods of a burst are Ready sooner; the whole burst no later.

use std::sync::{Condvar, Mutex, OnceLock};

pub(crate) struct Gate {
    busy: Mutex<usize>,
    freed: Condvar,
    limit: usize,
}

/// Held while a create runs; lets the next one in when dropped.
pub(crate) struct Pass<'a>(&'a Gate);

impl Gate {
    pub(crate) const fn new(limit: usize) -> Gate {
        Gate {
            busy: Mutex::new(0),
            freed: Condvar::new(),
            limit,
        }
    }

    pub(crate) fn enter(&self) -> Pass<'_> {
        let mut busy = self.busy.lock().unwrap_or_else(|p| p.into_inner());
        while *busy >= self.limit {
            busy = self.freed.wait(busy).unwrap_or_else(|p| p.into_inner());
        }
        *busy += 1;
        Pass(self)
    }
}

impl Drop for Pass<'_> {
    fn drop(&mut self) {
        let mut busy = self.0.busy.lock().unwrap_or_else(|p| p.into_inner());
        *busy -= 1;
        self.0.freed.notify_one();
    }
}

/// The gate of `runc create`: twice the CPUs this process may use (a create waits on its child
/// about half the time), at least 2.
pub(crate) fn creates() -> &'static Gate {
    static GATE: OnceLock<Gate> = OnceLock::new();
    GATE.get_or_init(|| {
        let cpus = std::thread::available_parallelism().map_or(2, |n| n.get());
        let limit = std::env::var("PODNET_CREATE_LIMIT")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(2 * cpus)
            .max(1);
        Gate::new(limit)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[test]
    fn no_more_than_the_limit_pass_at_once() {
        let gate = Arc::new(Gate::new(3));
        let inside = Arc::new(AtomicUsize::new(0));
        let most = Arc::new(AtomicUsize::new(0));
        let threads: Vec<_> = (0..12)
            .map(|_| {
                let (gate, inside, most) = (gate.clone(), inside.clone(), most.clone());
                std::thread::spawn(move || {
                    for _ in 0..50 {
                        let _pass = gate.enter();
                        let now = inside.fetch_add(1, Ordering::SeqCst) + 1;
                        most.fetch_max(now, Ordering::SeqCst);
                        std::thread::yield_now();
                        inside.fetch_sub(1, Ordering::SeqCst);
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(inside.load(Ordering::SeqCst), 0);
        let most = most.load(Ordering::SeqCst);
        assert!((1..=3).contains(&most), "at most 3 at once, saw {most}");
    }
}
