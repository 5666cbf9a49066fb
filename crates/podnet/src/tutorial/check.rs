//! Whether a step's output shows what it should: pure, so the rules are tested without a lab.

/// How a command ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ran {
    /// Exit status; `None` when it was stopped (a `follow` step, or the time limit).
    pub status: Option<i32>,
    /// stdout and stderr, interleaved as written.
    pub output: String,
    /// Stopped on purpose after its `follow` time (not a failure).
    pub followed: bool,
}

/// What a step wants to see.
#[derive(Debug, Clone, Default)]
pub struct Want<'a> {
    pub expect: &'a [String],
    pub expect_not: &'a [String],
    pub fails: bool,
    /// The exit status is not checked (only the output).
    pub may_fail: bool,
}

/// The problems with an outcome; empty when it is what the step wants.
pub fn problems(ran: &Ran, want: &Want) -> Vec<String> {
    let mut out = Vec::new();
    match (ran.status, want.fails, ran.followed) {
        (_, _, true) => {}
        (None, _, false) => out.push("did not finish in time".to_string()),
        (Some(0), true, _) => out.push("succeeded, but the tutorial shows it failing".to_string()),
        (Some(code), false, _) if code != 0 && !want.may_fail => {
            out.push(format!("failed (exit status {code})"))
        }
        _ => {}
    }
    for text in want.expect {
        if !ran.output.contains(text.as_str()) {
            out.push(format!("output does not show {text:?}"));
        }
    }
    for text in want.expect_not {
        if ran.output.contains(text.as_str()) {
            out.push(format!("output shows {text:?}, which it should not"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ran(status: Option<i32>, output: &str) -> Ran {
        Ran {
            status,
            output: output.into(),
            followed: false,
        }
    }

    #[test]
    fn exit_status_and_text() {
        let expect = vec!["It works!".to_string()];
        let want = Want {
            expect: &expect,
            ..Want::default()
        };
        assert!(problems(&ran(Some(0), "<h1>It works!</h1>"), &want).is_empty());
        let p = problems(&ran(Some(7), "curl: (7) refused"), &want);
        assert_eq!(p.len(), 2, "{p:?}");
        assert!(p[0].contains("exit status 7") && p[1].contains("It works!"));
    }

    #[test]
    fn failures_the_tutorial_shows() {
        let want = Want {
            fails: true,
            ..Want::default()
        };
        assert!(problems(&ran(Some(1), "error"), &want).is_empty());
        assert_eq!(problems(&ran(Some(0), ""), &want).len(), 1);
        assert_eq!(problems(&ran(None, ""), &want), ["did not finish in time"]);
    }

    #[test]
    fn may_fail_checks_only_the_output() {
        let expect = vec!["Server:".to_string()];
        let want = Want {
            expect: &expect,
            may_fail: true,
            ..Want::default()
        };
        assert!(
            problems(
                &ran(Some(1), "Server: 10.100.0.1\n** server can't find x"),
                &want
            )
            .is_empty()
        );
        assert_eq!(problems(&ran(Some(1), "timed out"), &want).len(), 1);
        assert_eq!(
            problems(&ran(None, "Server:"), &want),
            ["did not finish in time"]
        );
    }

    #[test]
    fn followed_commands_are_stopped_not_failed() {
        let not = vec!["error".to_string()];
        let want = Want {
            expect_not: &not,
            ..Want::default()
        };
        let mut r = ran(None, "GET / 200");
        r.followed = true;
        assert!(problems(&r, &want).is_empty());
        r.output.push_str("\nerror: lost");
        assert_eq!(problems(&r, &want).len(), 1);
    }
}
