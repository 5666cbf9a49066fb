//! Walking through one tutorial: each step shown as a reader would type it, run, its output shown
//! and checked; the first step that does not show what it should ends the walkthrough with an error
//! naming it. Cleanup runs in every case.

use std::collections::BTreeMap;
use std::io::{IsTerminal, Write};
use std::path::Path;
use std::time::{Duration, Instant};

use super::check::{Ran, Want, problems};
use super::model::{Kind, Step, Walkthrough, fill};
use super::shell::{Shell, Terminal, in_shell, quote};

/// No single command may take longer (`kubectl wait --timeout=120s` fits inside).
const COMMAND_LIMIT: Duration = Duration::from_secs(180);

/// How a walkthrough went.
#[derive(Debug, Default)]
pub struct Outcome {
    pub commands: usize,
    pub checks: usize,
    pub skipped: usize,
    pub replaced: usize,
    /// Cleanup commands that failed (reported, not fatal).
    pub cleanup_errors: Vec<String>,
}

pub struct Runner<'a> {
    walkthrough: &'a Walkthrough,
    shell: Shell,
    saved: BTreeMap<String, String>,
    style: Style,
    outcome: Outcome,
}

#[derive(Clone, Copy)]
struct Style {
    color: bool,
}

impl Style {
    fn paint(&self, code: &str, text: &str) -> String {
        if self.color {
            format!("\x1b[{code}m{text}\x1b[0m")
        } else {
            text.to_string()
        }
    }
}

impl<'a> Runner<'a> {
    /// A runner for `walkthrough`, whose commands run in `dir` with `env` added (PATH with kubectl,
    /// helm and podnet; the lab's name). `lab` is `{{lab}}` (`ip netns exec {{lab}}-router ...`).
    pub fn new(
        walkthrough: &'a Walkthrough,
        dir: &Path,
        state: std::path::PathBuf,
        lab: &str,
        env: Vec<(String, String)>,
    ) -> std::io::Result<Runner<'a>> {
        Ok(Runner {
            walkthrough,
            shell: Shell::new(dir, state, env)?,
            saved: BTreeMap::from([("lab".to_string(), lab.to_string())]),
            style: Style {
                color: std::io::stdout().is_terminal(),
            },
            outcome: Outcome::default(),
        })
    }

    /// Runs every step, then the cleanup. Errors name the walkthrough and the step.
    pub fn run(mut self) -> Result<Outcome, String> {
        let w = self.walkthrough;
        println!(
            "{}",
            self.style
                .paint("1;36", &format!("━━ Seed {}: {}", w.id, w.title))
        );
        println!("   (shared/seeds/{})", w.seed);
        if !w.about.is_empty() {
            println!("{}", self.style.paint("2", w.about.trim()));
        }
        self.clear_earlier_runs();
        let started = Instant::now();
        let mut result = Ok(());
        for (i, step) in w.steps.iter().enumerate() {
            if let Err(e) = self.step(step, None) {
                result = Err(format!(
                    "seed {} step {} ({}): {e}",
                    w.id,
                    i + 1,
                    describe(step)
                ));
                break;
            }
        }
        // Cleanup runs after an interruption too (a second Ctrl-C stops it).
        super::shell::INTERRUPTED.store(false, std::sync::atomic::Ordering::SeqCst);
        self.cleanup();
        result?;
        println!(
            "{}",
            self.style.paint(
                "1;32",
                &format!(
                    "━━ Seed {} done in {:.0} s: {} commands, {} checks passed, {} tutorial commands shown with podnet's equivalent, {} not run.",
                    w.id,
                    started.elapsed().as_secs_f64(),
                    self.outcome.commands,
                    self.outcome.checks,
                    self.outcome.replaced,
                    self.outcome.skipped
                )
            )
        );
        Ok(self.outcome)
    }

    fn step(&mut self, step: &Step, shell: Option<(&str, &str)>) -> Result<(), String> {
        let indent = if shell.is_some() { "    " } else { "" };
        match step.kind()? {
            Kind::Section => {
                let title = step.section.as_deref().unwrap_or_default();
                println!("\n{}", self.style.paint("1", &format!("== {title}")));
            }
            Kind::Note => {
                let note = self.fill(step.note.as_deref().unwrap_or_default())?;
                for line in note.trim().lines() {
                    println!("{indent}{}", self.style.paint("2", &format!("# {line}")));
                }
            }
            Kind::Skip => {
                self.outcome.skipped += 1;
                let why = one_line(step.why.as_deref().unwrap_or_default());
                let skipped = self.fill(step.skip.as_deref().unwrap_or_default())?;
                let prompt = shell
                    .map(|(_, p)| format!("{p} "))
                    .unwrap_or_else(|| "$ ".into());
                println!(
                    "{indent}{}",
                    self.style.paint("9", &format!("{prompt}{skipped}"))
                );
                println!(
                    "{indent}{}",
                    self.style.paint("33", &format!("  (not run here: {why})"))
                );
            }
            Kind::Shell => {
                self.show_replaced(step, indent);
                let opened = self.fill(step.shell.as_deref().unwrap_or_default())?;
                println!("{}", self.style.paint("1", &format!("$ {opened}")));
                let prompt = self.fill(step.prompt.as_deref().unwrap_or("#"))?;
                for (i, inner) in step.steps.iter().enumerate() {
                    self.step(inner, Some((&opened, &prompt)))
                        .map_err(|e| format!("command {} typed in `{opened}`: {e}", i + 1))?;
                }
                println!("{indent}{}", self.style.paint("2", "(exit)"));
            }
            Kind::Run => self.command(step, shell)?,
        }
        Ok(())
    }

    fn command(&mut self, step: &Step, shell: Option<(&str, &str)>) -> Result<(), String> {
        let typed = self.fill(step.run.as_deref().unwrap_or_default())?;
        let indent = if shell.is_some() { "    " } else { "" };
        self.show_replaced(step, indent);
        let (shown, actual) = match shell {
            Some((opened, prompt)) => (format!("{prompt} {typed}"), in_shell(opened, &typed)),
            None => (format!("$ {typed}"), typed.clone()),
        };
        // Typed in an interactive shell: on a terminal, as the reader's shell is.
        let terminal = if shell.is_some() {
            Terminal::Yes
        } else {
            Terminal::No
        };
        println!("{indent}{}", self.style.paint("1", &shown));
        if let Some(secs) = step.follow {
            println!(
                "{indent}{}",
                self.style.paint(
                    "2",
                    &format!("  (following for {secs} s, then stopped as Ctrl-C would)")
                )
            );
        }
        let expect = self.fill_all(&step.expect)?;
        let expect_not = self.fill_all(&step.expect_not)?;
        let want = Want {
            expect: &expect,
            expect_not: &expect_not,
            fails: step.fails,
            may_fail: step.may_fail,
        };
        let deadline = Instant::now() + Duration::from_secs(step.until.unwrap_or(0));
        let follow = step.follow.map(Duration::from_secs);
        let mut attempts = 0;
        let (ran, problems) = loop {
            attempts += 1;
            let ran = self
                .shell
                .run(&actual, terminal, COMMAND_LIMIT, follow)
                .map_err(|e| format!("run bash for `{actual}`: {e}"))?;
            let problems = problems(&ran, &want);
            if problems.is_empty() || Instant::now() >= deadline {
                break (ran, problems);
            }
            std::thread::sleep(Duration::from_millis(500));
        };
        self.outcome.commands += 1;
        print_output(indent, &ran);
        if attempts > 1 {
            println!(
                "{indent}{}",
                self.style.paint(
                    "2",
                    &format!("  (shown after {attempts} tries, as the cluster converged)")
                )
            );
        }
        if !problems.is_empty() {
            for p in &problems {
                println!("{indent}{}", self.style.paint("1;31", &format!("  ✗ {p}")));
            }
            return Err(format!("`{actual}`: {}", problems.join("; ")));
        }
        for text in &expect {
            println!(
                "{indent}{}",
                self.style.paint("32", &format!("  ✓ shows {text:?}"))
            );
        }
        for text in &expect_not {
            println!(
                "{indent}{}",
                self.style
                    .paint("32", &format!("  ✓ does not show {text:?}"))
            );
        }
        if step.fails {
            println!(
                "{indent}{}",
                self.style.paint("32", "  ✓ fails, as the tutorial shows")
            );
        }
        if step.may_fail && ran.status != Some(0) {
            println!(
                "{indent}{}",
                self.style.paint(
                    "2",
                    &format!(
                        "  (exit status {:?}: the answer comes from outside the lab)",
                        ran.status.unwrap_or(-1)
                    )
                )
            );
        }
        self.outcome.checks += expect.len() + expect_not.len() + usize::from(step.fails);
        if let Some(name) = &step.save {
            let value = ran.output.trim().to_string();
            if value.is_empty() {
                return Err(format!(
                    "`{actual}` printed nothing to keep as {{{{{name}}}}}"
                ));
            }
            // Also a shell variable, for the reader's commands that follow.
            self.shell
                .run(
                    &format!("{name}={}", quote(&value)),
                    Terminal::No,
                    COMMAND_LIMIT,
                    None,
                )
                .map_err(|e| format!("keep {name}: {e}"))?;
            self.saved.insert(name.clone(), value);
        }
        Ok(())
    }

    /// The tutorial's own command, when the step runs podnet's equivalent, and why.
    fn show_replaced(&mut self, step: &Step, indent: &str) {
        if let Some(original) = &step.instead {
            self.outcome.replaced += 1;
            println!(
                "{indent}{}",
                self.style.paint("9", &format!("$ {}", original.trim()))
            );
            let why = one_line(step.why.as_deref().unwrap_or_default());
            println!(
                "{indent}{}",
                self.style.paint("33", &format!("  (on the lab: {why})"))
            );
        }
    }

    fn fill(&self, text: &str) -> Result<String, String> {
        fill(text, |name| self.saved.get(name).cloned())
    }

    fn fill_all(&self, texts: &[String]) -> Result<Vec<String>, String> {
        texts.iter().map(|t| self.fill(t)).collect()
    }

    /// The cleanup commands are idempotent: run before the steps, they clear what an earlier run
    /// that was killed may have left (a release still installed, a pod still there), quietly.
    /// Those naming a value saved by a step cannot run yet and are left out.
    fn clear_earlier_runs(&mut self) {
        for command in &self.walkthrough.cleanup {
            if let Ok(command) = self.fill(command) {
                let _ = self.shell.run(&command, Terminal::No, COMMAND_LIMIT, None);
            }
        }
    }

    fn cleanup(&mut self) {
        if self.walkthrough.cleanup.is_empty() {
            return;
        }
        println!(
            "\n{}",
            self.style
                .paint("2", "== Cleaning up what the walkthrough created")
        );
        for command in &self.walkthrough.cleanup {
            let command = match self.fill(command) {
                Ok(c) => c,
                Err(e) => {
                    // The step saving that value did not run: nothing of it to undo.
                    println!(
                        "{}",
                        self.style
                            .paint("2", &format!("(skipped `{command}`: {e})"))
                    );
                    continue;
                }
            };
            println!("{}", self.style.paint("2", &format!("$ {command}")));
            match self.shell.run(&command, Terminal::No, COMMAND_LIMIT, None) {
                Ok(ran) if ran.status == Some(0) => {}
                Ok(ran) => {
                    print_output("", &ran);
                    self.outcome.cleanup_errors.push(match ran.status {
                        Some(code) => format!("`{command}`: exit status {code}"),
                        None => format!("`{command}`: did not finish in time"),
                    });
                }
                Err(e) => self
                    .outcome
                    .cleanup_errors
                    .push(format!("`{command}`: {e}")),
            }
        }
        for e in &self.outcome.cleanup_errors {
            eprintln!("cleanup of seed {}: {e}", self.walkthrough.id);
        }
    }
}

fn print_output(indent: &str, ran: &Ran) {
    let mut out = std::io::stdout().lock();
    for line in ran.output.lines() {
        let _ = writeln!(out, "{indent}{line}");
    }
}

/// A YAML block's lines as one paragraph (the terminal wraps it).
fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn describe(step: &Step) -> String {
    let text = step
        .run
        .as_deref()
        .or(step.shell.as_deref())
        .or(step.skip.as_deref())
        .or(step.section.as_deref())
        .or(step.note.as_deref())
        .unwrap_or_default();
    let line = text.lines().next().unwrap_or_default();
    if line.chars().count() > 60 {
        format!("{}…", line.chars().take(60).collect::<String>())
    } else {
        line.to_string()
    }
}
