//! Rollback for ADD: every step that changes something registers how to undo it; on failure the steps
//! are undone in reverse, each attempted even if an earlier one fails, and every failure is reported.

use podnet_types::cni::CniError;

type Step<'a> = (String, Box<dyn FnOnce() -> Result<(), String> + 'a>);

#[derive(Default)]
pub struct Undo<'a> {
    steps: Vec<Step<'a>>,
}

impl<'a> Undo<'a> {
    pub fn new() -> Self {
        Self { steps: Vec::new() }
    }

    pub fn push(
        &mut self,
        what: impl Into<String>,
        step: impl FnOnce() -> Result<(), String> + 'a,
    ) {
        self.steps.push((what.into(), Box::new(step)));
    }

    /// Success: nothing is undone.
    pub fn commit(mut self) {
        self.steps.clear();
    }

    /// Failure: undoes everything and returns the original error, with any rollback failures appended
    /// to its details so nothing is silently left behind.
    pub fn rollback(mut self, err: CniError) -> CniError {
        let mut failures = Vec::new();
        while let Some((what, step)) = self.steps.pop() {
            if let Err(e) = step() {
                failures.push(format!("undo {what}: {e}"));
            }
        }
        if failures.is_empty() {
            return err;
        }
        let mut details = err.details.clone();
        if !details.is_empty() {
            details.push_str("; ");
        }
        details.push_str(&format!("rollback incomplete: {}", failures.join("; ")));
        err.with_details(details)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use podnet_types::cni::ErrorCode;
    use std::cell::RefCell;

    #[test]
    fn undoes_in_reverse_and_reports_failures() {
        let log = RefCell::new(Vec::new());
        let mut u = Undo::new();
        u.push("first", || {
            log.borrow_mut().push(1);
            Ok(())
        });
        u.push("second", || {
            log.borrow_mut().push(2);
            Err("busy".into())
        });
        let err = u.rollback(CniError::new(ErrorCode::Kernel, "boom"));
        assert_eq!(*log.borrow(), vec![2, 1]);
        assert!(err.details.contains("undo second: busy"), "{}", err.details);
    }

    #[test]
    fn commit_undoes_nothing() {
        let log = RefCell::new(0);
        let mut u = Undo::new();
        u.push("x", || {
            *log.borrow_mut() += 1;
            Ok(())
        });
        u.commit();
        assert_eq!(*log.borrow(), 0);
    }
}
