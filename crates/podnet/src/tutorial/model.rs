//! The walkthrough file format (`examples/seed-NNN/walkthrough.yaml`) and its checks before
//! anything runs: a mistake in a walkthrough is reported with its step number, never half-run.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use serde::Deserialize;

/// One tutorial, walked through.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Walkthrough {
    /// `000` ... `004`: the seed's number.
    pub id: String,
    pub title: String,
    /// The seed file under `shared/seeds/` it follows.
    pub seed: String,
    /// Lab nodes the walkthrough needs at least.
    #[serde(default = "one")]
    pub nodes: usize,
    /// One paragraph: what the tutorial teaches and what the lab shows of it.
    #[serde(default)]
    pub about: String,
    pub steps: Vec<Step>,
    /// Commands that remove what the walkthrough created (run at the end, also after a failure;
    /// errors are reported, not fatal), so the next walkthrough starts from a clean lab.
    #[serde(default)]
    pub cleanup: Vec<String>,
}

fn one() -> usize {
    1
}

/// One step. Exactly one of `section`, `note`, `run`, `shell` or `skip` says what it is.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Step {
    /// A heading (the tutorial's own section title where it has one).
    pub section: Option<String>,
    /// Text shown to the reader.
    pub note: Option<String>,
    /// A command run on the machine (bash, in the walkthrough's directory).
    pub run: Option<String>,
    /// An interactive shell the tutorial opens (`kubectl exec -it POD -- bash`); its `steps` are
    /// the commands typed in it, each run as `<shell without -it> -c '<command>'`.
    pub shell: Option<String>,
    /// The prompt shown before each command typed in `shell`.
    pub prompt: Option<String>,
    /// A tutorial command that is shown but not run (`why` says why).
    pub skip: Option<String>,
    /// The tutorial's own command when `run` is podnet's equivalent of it.
    pub instead: Option<String>,
    /// Why a command is skipped or replaced.
    pub why: Option<String>,
    /// Text the output must contain (each of them).
    #[serde(default)]
    pub expect: Vec<String>,
    /// Text the output must not contain.
    #[serde(default)]
    pub expect_not: Vec<String>,
    /// The command must fail (a non-zero exit status), as the tutorial shows it failing.
    #[serde(default)]
    pub fails: bool,
    /// The exit status depends on the world outside the lab (an upstream resolver): shown, not
    /// checked. The output is still checked.
    #[serde(default)]
    pub may_fail: bool,
    /// Re-run the command for up to this many seconds until it succeeds and its output matches
    /// (the cluster converges: a pod starts, logs arrive).
    pub until: Option<u64>,
    /// A command that never ends by itself (`kubectl logs --follow`): stop it after this many
    /// seconds, as a reader presses Ctrl-C.
    pub follow: Option<u64>,
    /// Keep the command's trimmed output as `{{name}}` for later steps.
    pub save: Option<String>,
    /// Commands typed in `shell`.
    #[serde(default)]
    pub steps: Vec<Step>,
}

/// What a step is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Section,
    Note,
    Run,
    Shell,
    Skip,
}

impl Step {
    pub fn kind(&self) -> Result<Kind, String> {
        let kinds: Vec<Kind> = [
            (self.section.is_some(), Kind::Section),
            (self.note.is_some(), Kind::Note),
            (self.run.is_some(), Kind::Run),
            (self.shell.is_some(), Kind::Shell),
            (self.skip.is_some(), Kind::Skip),
        ]
        .into_iter()
        .filter_map(|(set, k)| set.then_some(k))
        .collect();
        match kinds.as_slice() {
            [k] => Ok(*k),
            [] => Err("says nothing: give one of section, note, run, shell or skip".into()),
            _ => Err(format!(
                "is several things at once ({kinds:?}): give only one"
            )),
        }
    }
}

impl Walkthrough {
    pub fn parse(text: &str, origin: &Path) -> Result<Walkthrough, String> {
        let w: Walkthrough = serde_yaml_ng::from_str(text)
            .map_err(|e| format!("read walkthrough {}: {e}", origin.display()))?;
        w.validate()
            .map_err(|e| format!("walkthrough {}: {e}", origin.display()))?;
        Ok(w)
    }

    /// Checks every step before anything runs: one kind per step, options only where they mean
    /// something, and each `{{name}}` saved by an earlier step.
    pub fn validate(&self) -> Result<(), String> {
        if self.steps.is_empty() {
            return Err("has no steps".into());
        }
        let mut saved = BTreeSet::from(["lab".to_string()]);
        for (i, step) in self.steps.iter().enumerate() {
            validate_step(step, false, &mut saved).map_err(|e| format!("step {}: {e}", i + 1))?;
        }
        for (i, command) in self.cleanup.iter().enumerate() {
            for name in placeholders(command) {
                if !saved.contains(&name) {
                    return Err(format!(
                        "cleanup command {}: uses {{{{{name}}}}}, which no step saves",
                        i + 1
                    ));
                }
            }
        }
        Ok(())
    }
}

fn validate_step(step: &Step, in_shell: bool, saved: &mut BTreeSet<String>) -> Result<(), String> {
    let kind = step.kind()?;
    let runs = matches!(kind, Kind::Run);
    let checks =
        !step.expect.is_empty() || !step.expect_not.is_empty() || step.fails || step.may_fail;
    if !runs && (checks || step.until.is_some() || step.follow.is_some() || step.save.is_some()) {
        return Err("expect/fails/may_fail/until/follow/save only go with run".into());
    }
    if step.instead.is_some() && !(runs || kind == Kind::Shell) {
        return Err("instead goes with run or shell (the command run in its place)".into());
    }
    if (step.instead.is_some() || kind == Kind::Skip) && step.why.is_none() {
        return Err("a skipped or replaced tutorial command needs a why".into());
    }
    if step.fails && step.may_fail {
        return Err("fails and may_fail contradict each other".into());
    }
    if step.follow.is_some() && (step.until.is_some() || step.fails) {
        return Err("follow cannot go with until or fails".into());
    }
    if kind == Kind::Shell {
        if in_shell {
            return Err("a shell inside a shell".into());
        }
        if step.steps.is_empty() {
            return Err("a shell with no commands typed in it".into());
        }
    } else if !step.steps.is_empty() || step.prompt.is_some() {
        return Err("steps and prompt only go with shell".into());
    }
    for text in [&step.run, &step.shell, &step.prompt, &step.note, &step.skip]
        .into_iter()
        .flatten()
        .chain(&step.expect)
        .chain(&step.expect_not)
    {
        for name in placeholders(text) {
            if !saved.contains(&name) {
                return Err(format!("uses {{{{{name}}}}}, which no earlier step saves"));
            }
        }
    }
    if let Some(name) = &step.save {
        if !is_name(name) {
            return Err(format!(
                "save: {name:?} is not a name (lowercase letters, digits, _)"
            ));
        }
        saved.insert(name.clone());
    }
    for (i, inner) in step.steps.iter().enumerate() {
        validate_step(inner, true, saved)
            .map_err(|e| format!("command {} in the shell: {e}", i + 1))?;
    }
    Ok(())
}

fn is_name(s: &str) -> bool {
    let mut chars = s.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_lowercase() || c == '_')
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
}

/// The `{{name}}` placeholders of a text. Anything else in double braces (a go-template such as
/// `{{.status.podIP}}`) is not a placeholder and stays as it is.
pub fn placeholders(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find("{{") {
        let after = &rest[start + 2..];
        match after.find("}}") {
            Some(end) if is_name(&after[..end]) => {
                out.push(after[..end].to_string());
                rest = &after[end + 2..];
            }
            _ => rest = after,
        }
    }
    out
}

/// Replaces each `{{name}}` by its value; a name without a value is an error naming it.
pub fn fill(text: &str, value: impl Fn(&str) -> Option<String>) -> Result<String, String> {
    let mut out = String::new();
    let mut rest = text;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        match after.find("}}") {
            Some(end) if is_name(&after[..end]) => {
                let name = &after[..end];
                out.push_str(&value(name).ok_or_else(|| format!("{{{{{name}}}}} has no value"))?);
                rest = &after[end + 2..];
            }
            _ => {
                out.push_str("{{");
                rest = after;
            }
        }
    }
    out.push_str(rest);
    Ok(out)
}

/// Each walkthrough file found, with what reading it gave.
pub type Found = Vec<(PathBuf, Result<Walkthrough, String>)>;

/// The walkthroughs found under `examples/`: `seed-NNN/walkthrough.yaml`, in order, each read on
/// its own (a broken one does not hide the others).
pub fn discover(examples: &Path) -> Result<Found, String> {
    let entries = std::fs::read_dir(examples)
        .map_err(|e| format!("list walkthroughs in {}: {e}", examples.display()))?;
    let mut dirs: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("seed-"))
                && p.join("walkthrough.yaml").is_file()
        })
        .collect();
    dirs.sort();
    Ok(dirs
        .into_iter()
        .map(|dir| {
            let file = dir.join("walkthrough.yaml");
            let read = std::fs::read_to_string(&file)
                .map_err(|e| format!("read walkthrough {}: {e}", file.display()))
                .and_then(|text| Walkthrough::parse(&text, &file));
            (dir, read)
        })
        .collect())
}

/// The walkthrough id a user means: `3` and `003` are seed 003.
pub fn normalize_id(id: &str) -> String {
    if !id.is_empty() && id.len() < 3 && id.chars().all(|c| c.is_ascii_digit()) {
        format!("{id:0>3}")
    } else {
        id.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Walkthrough, String> {
        Walkthrough::parse(text, Path::new("t.yaml"))
    }

    #[test]
    fn a_step_is_one_thing() {
        let err = parse("id: '0'\ntitle: t\nseed: s\nsteps:\n- run: a\n  note: b\n").unwrap_err();
        assert!(err.contains("step 1") && err.contains("several"), "{err}");
        let err = parse("id: '0'\ntitle: t\nseed: s\nsteps:\n- expect: [a]\n").unwrap_err();
        assert!(err.contains("says nothing"), "{err}");
    }

    #[test]
    fn replaced_commands_say_why() {
        let err = parse("id: '0'\ntitle: t\nseed: s\nsteps:\n- run: a\n  instead: docker ps\n")
            .unwrap_err();
        assert!(err.contains("needs a why"), "{err}");
        let err =
            parse("id: '0'\ntitle: t\nseed: s\nsteps:\n- skip: apt-get update\n").unwrap_err();
        assert!(err.contains("needs a why"), "{err}");
    }

    #[test]
    fn placeholders_must_be_saved_first() {
        let err =
            parse("id: '0'\ntitle: t\nseed: s\nsteps:\n- run: curl {{ip}}\n- run: x\n  save: ip\n")
                .unwrap_err();
        assert!(err.contains("{{ip}}") && err.contains("step 1"), "{err}");
        parse("id: '0'\ntitle: t\nseed: s\nsteps:\n- run: x\n  save: ip\n- run: curl {{ip}} {{lab}}\n")
            .unwrap();
    }

    #[test]
    fn shells_hold_commands() {
        let w = parse(
            "id: '0'\ntitle: t\nseed: s\nsteps:\n- shell: kubectl exec -it p -- bash\n  steps:\n  - run: curl localhost\n    expect: [It works]\n",
        )
        .unwrap();
        assert_eq!(w.steps[0].steps.len(), 1);
        let err = parse("id: '0'\ntitle: t\nseed: s\nsteps:\n- shell: bash\n").unwrap_err();
        assert!(err.contains("no commands"), "{err}");
        let err =
            parse("id: '0'\ntitle: t\nseed: s\nsteps:\n- note: n\n  expect: [x]\n").unwrap_err();
        assert!(err.contains("only go with run"), "{err}");
    }

    #[test]
    fn go_templates_are_not_placeholders() {
        assert_eq!(
            placeholders("-o go-template='{{.status.podIP}}' {{ip}}"),
            vec!["ip"]
        );
        let filled = fill("{{.a}} {{ip}}:8080 {{", |n| {
            (n == "ip").then(|| "10.0.0.1".into())
        })
        .unwrap();
        assert_eq!(filled, "{{.a}} 10.0.0.1:8080 {{");
        assert!(fill("{{x}}", |_| None).unwrap_err().contains("{{x}}"));
    }

    #[test]
    fn cleanup_placeholders_must_be_saved_by_a_step() {
        let err = parse(
            "id: '0'\ntitle: t\nseed: s\nsteps:\n- run: x\n  save: ip\ncleanup:\n- curl {{ipp}}\n",
        )
        .unwrap_err();
        assert!(
            err.contains("cleanup command 1") && err.contains("{{ipp}}"),
            "{err}"
        );
        parse("id: '0'\ntitle: t\nseed: s\nsteps:\n- run: x\n  save: ip\ncleanup:\n- curl {{ip}} {{lab}}\n").unwrap();
    }

    #[test]
    fn a_shell_may_replace_the_tutorials_own() {
        parse("id: '0'\ntitle: t\nseed: s\nsteps:\n- shell: podnet node exec node1 -- bash\n  instead: minikube ssh\n  why: w\n  steps:\n  - run: true\n").unwrap();
        let err = parse("id: '0'\ntitle: t\nseed: s\nsteps:\n- note: n\n  instead: x\n  why: w\n")
            .unwrap_err();
        assert!(err.contains("instead goes with run or shell"), "{err}");
    }

    #[test]
    fn unknown_fields_are_errors() {
        let err =
            parse("id: '0'\ntitle: t\nseed: s\nsteps:\n- run: a\n  expects: [x]\n").unwrap_err();
        assert!(err.contains("expects"), "{err}");
    }

    /// Every walkthrough in the repository parses and passes the checks (the e2e tests run them).
    #[test]
    fn the_repository_walkthroughs_are_valid() {
        let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples");
        let found: Vec<(PathBuf, Walkthrough)> = discover(&examples)
            .unwrap()
            .into_iter()
            .map(|(dir, w)| (dir, w.unwrap()))
            .collect();
        let ids: Vec<&str> = found.iter().map(|(_, w)| w.id.as_str()).collect();
        assert_eq!(ids, ["000", "001", "002", "003", "004"]);
        assert_eq!(normalize_id("3"), "003");
        assert_eq!(normalize_id("all"), "all");
        for (dir, w) in &found {
            let seed = Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../../../shared/seeds")
                .join(&w.seed);
            if seed.parent().is_some_and(|p| p.is_dir()) {
                assert!(
                    seed.is_file(),
                    "{}: seed {} not found",
                    dir.display(),
                    w.seed
                );
            }
        }
    }
}
