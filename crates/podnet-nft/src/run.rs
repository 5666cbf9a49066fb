//! Applying scripts and reading back podnet's own tables with the `nft` binary.

use crate::error::{Error, Result};
use crate::script::Script;
use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};

/// Finds `nft`: `$PODNET_NFT`, then `$PATH`, then the usual sbin directories (runtimes often call CNI
/// plugins with a PATH that lacks them).
pub fn nft_binary() -> PathBuf {
    if let Some(p) = std::env::var_os("PODNET_NFT") {
        return PathBuf::from(p);
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/sbin", "/usr/bin", "/bin"].map(PathBuf::from))
        .map(|d| d.join("nft"))
        .find(|p| p.is_file())
        .unwrap_or_else(|| PathBuf::from("nft"))
}

/// Applies a script in one transaction, in the calling thread's network namespace (a child process
/// inherits the namespaces of the thread that starts it).
pub fn apply(script: &Script) -> Result<()> {
    if script.is_empty() {
        return Ok(());
    }
    let program = nft_binary();
    let mut child = Command::new(&program)
        .args(["-f", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| Error::Spawn {
            program: program.display().to_string(),
            cause: e,
        })?;
    let mut stdin = child.stdin.take().expect("piped stdin");
    let written = stdin.write_all(script.as_str().as_bytes());
    drop(stdin);
    let out = child.wait_with_output().map_err(|e| Error::Spawn {
        program: program.display().to_string(),
        cause: e,
    })?;
    if out.status.success() {
        written.map_err(|e| Error::Spawn {
            program: program.display().to_string(),
            cause: e,
        })
    } else {
        let stderr = String::from_utf8_lossy(&out.stderr);
        // nft prints the failing line and a caret line after the message; the first line is the reason.
        let first = stderr
            .lines()
            .next()
            .unwrap_or("failed without a message")
            .trim()
            .to_string();
        let exists = stderr.contains("File exists");
        Err(Error::Rejected {
            stderr: first,
            exists,
        })
    }
}

/// Lists output of `nft list ...` for podnet's own objects (never the whole ruleset).
pub fn list(args: &[&str]) -> Result<Option<String>> {
    list_with(&[], args)
}

/// Like [`list`], as nft's JSON (`nft -j list ...`), for reading values back exactly.
pub fn list_json(args: &[&str]) -> Result<Option<String>> {
    list_with(&["-j"], args)
}

fn list_with(options: &[&str], args: &[&str]) -> Result<Option<String>> {
    let program = nft_binary();
    let out = Command::new(&program)
        .args(options)
        .arg("list")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| Error::Spawn {
            program: program.display().to_string(),
            cause: e,
        })?;
    if out.status.success() {
        return Ok(Some(String::from_utf8_lossy(&out.stdout).into_owned()));
    }
    let stderr = String::from_utf8_lossy(&out.stderr);
    if stderr.contains("No such file or directory") {
        return Ok(None);
    }
    Err(Error::Rejected {
        stderr: stderr.lines().next().unwrap_or_default().to_string(),
        exists: false,
    })
}

/// The chain names of one table (empty if the table does not exist).
pub fn chains(family: &str, table: &str) -> Result<Vec<String>> {
    let Some(text) = list(&["table", family, table])? else {
        return Ok(Vec::new());
    };
    Ok(parse_chain_names(&text))
}

fn parse_chain_names(text: &str) -> Vec<String> {
    text.lines()
        .filter_map(|l| l.trim().strip_prefix("chain "))
        .filter_map(|rest| rest.split_whitespace().next())
        .map(str::to_string)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chain_names_are_read_from_a_listing() {
        let text = "table inet podnet-cni {\n\tchain masq-podnet-1a2b3c4d {\n\t\ttype nat hook postrouting priority srcnat; policy accept;\n\t}\n\tmap hp-x {\n\t}\n\tchain hp-pre-podnet {\n\t}\n}\n";
        assert_eq!(
            parse_chain_names(text),
            vec!["masq-podnet-1a2b3c4d", "hp-pre-podnet"]
        );
    }
}
