//! The `runc` command line, for one node's `--root`.

use crate::error::{Error, Result};
use serde::Deserialize;
use std::path::Path;
use std::process::{Command, Output, Stdio};

/// What `runc list` and `runc state` say about a container.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct RuncState {
    pub id: String,
    /// `created`, `running`, `paused` or `stopped`.
    pub status: String,
    #[serde(default)]
    pub pid: u32,
    #[serde(default)]
    pub bundle: String,
}

pub struct Runc<'a> {
    pub bin: &'a Path,
    pub root: &'a Path,
}

impl Runc<'_> {
    pub fn command(&self) -> Command {
        let mut c = Command::new(self.bin);
        c.arg("--root").arg(self.root);
        c
    }

    fn run(&self, args: &[&str], what: &str) -> Result<Output> {
        let out = self
            .command()
            .args(args)
            .stdin(Stdio::null())
            .output()
            .map_err(|e| Error::io(format!("{what}: run {}", self.bin.display()), e))?;
        if out.status.success() {
            Ok(out)
        } else {
            Err(Error::Runc {
                what: what.to_string(),
                message: message(&out.stderr),
            })
        }
    }

    pub fn start(&self, id: &str) -> Result<()> {
        self.run(&["start", id], "runc start").map(drop)
    }

    /// `runc kill [--all] ID SIG`; a container that is already gone is not an error.
    pub fn kill(&self, id: &str, sig: &str, all: bool) -> Result<()> {
        let mut args = vec!["kill"];
        if all {
            args.push("--all");
        }
        args.extend([id, sig]);
        match self.run(&args, "runc kill") {
            Err(Error::Runc { message, .. }) if gone(&message) => Ok(()),
            r => r.map(drop),
        }
    }

    /// `runc delete --force ID`; missing is fine.
    pub fn delete(&self, id: &str) -> Result<()> {
        match self.run(&["delete", "--force", id], "runc delete") {
            Err(Error::Runc { message, .. }) if gone(&message) => Ok(()),
            r => r.map(drop),
        }
    }

    pub fn state(&self, id: &str) -> Result<Option<RuncState>> {
        match self.run(&["state", id], "runc state") {
            Ok(out) => serde_json::from_slice(&out.stdout)
                .map(Some)
                .map_err(|e| Error::Invalid(format!("runc state {id}: {e}"))),
            Err(Error::Runc { message, .. }) if gone(&message) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Every container under this root.
    pub fn list(&self) -> Result<Vec<RuncState>> {
        if !self.root.exists() {
            return Ok(Vec::new());
        }
        let out = self.run(&["list", "--format", "json"], "runc list")?;
        // runc prints `null` when there is nothing.
        let list: Option<Vec<RuncState>> = serde_json::from_slice(&out.stdout)
            .map_err(|e| Error::Invalid(format!("runc list: {e}")))?;
        Ok(list.unwrap_or_default())
    }
}

fn gone(message: &str) -> bool {
    message.contains("does not exist")
        || message.contains("not exist")
        || message.contains("container not running")
}

/// runc's own words from its stderr (`time=... level=error msg="..."`), else the whole text.
pub fn message(stderr: &[u8]) -> String {
    let text = String::from_utf8_lossy(stderr);
    for line in text.lines().rev() {
        if let Some(i) = line.find("msg=") {
            let m = &line[i + 4..];
            let m = m
                .strip_prefix('"')
                .map(|m| m.rsplit_once('"').map_or(m, |(a, _)| a))
                .unwrap_or(m);
            return m.replace("\\\"", "\"");
        }
    }
    let t = text.trim();
    if t.is_empty() {
        "failed with no message".into()
    } else {
        t.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extracts_runcs_message() {
        let e = b"time=\"2026-01-01T00:00:00Z\" level=error msg=\"container \\\"x\\\" does not exist\"\n";
        assert_eq!(message(e), "container \"x\" does not exist");
        assert_eq!(message(b"plain failure\n"), "plain failure");
        assert_eq!(message(b""), "failed with no message");
    }
}
