//! Delegation (spec section 4): running another plugin, typically an IPAM, with the same environment
//! and the complete configuration, its stderr passed through to ours.

use podnet_types::cni::error::WireError;
use podnet_types::cni::{CniError, CniResult, ErrorCode, Request, result};
use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};

fn find(plugin: &str, req: &Request) -> Result<PathBuf, CniError> {
    req.path
        .iter()
        .map(|dir| PathBuf::from(dir).join(plugin))
        .find(|p| p.is_file())
        .ok_or_else(|| {
            CniError::new(
                ErrorCode::InvalidConfig,
                format!(
                    "ipam.type: plugin {plugin:?} not found in CNI_PATH {:?}",
                    req.path.join(":")
                ),
            )
        })
}

/// Whether `plugin` is on `CNI_PATH`.
pub fn installed(plugin: &str, req: &Request) -> bool {
    find(plugin, req).is_ok()
}

/// Runs `plugin` with `CNI_COMMAND=command`; returns its stdout on success. Its error is returned with
/// its own code and message, as the spec asks.
pub fn exec(plugin: &str, command: &str, req: &Request, stdin: &[u8]) -> Result<Vec<u8>, CniError> {
    let path = find(plugin, req)?;
    let mut child = Command::new(&path)
        .env("CNI_COMMAND", command)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .map_err(|e| {
            CniError::new(
                ErrorCode::Delegate,
                format!("run delegated plugin {}: {e}", path.display()),
            )
        })?;
    let mut input = child.stdin.take().expect("piped stdin");
    let written = input.write_all(stdin);
    drop(input);
    let out = child.wait_with_output().map_err(|e| {
        CniError::new(
            ErrorCode::Delegate,
            format!("wait for delegated plugin {}: {e}", path.display()),
        )
    })?;
    if out.status.success() {
        written.map_err(|e| {
            CniError::new(
                ErrorCode::Delegate,
                format!("write config to {}: {e}", path.display()),
            )
        })?;
        return Ok(out.stdout);
    }
    match serde_json::from_slice::<WireError>(&out.stdout) {
        Ok(w) => Err(CniError::new(
            ErrorCode::from_code(w.code),
            format!("{plugin} {command}: {}", w.msg),
        )
        .with_details(w.details)),
        Err(_) => Err(CniError::new(
            ErrorCode::Delegate,
            format!(
                "{plugin} {command} failed ({}) without a CNI error on stdout",
                out.status
            ),
        )),
    }
}

/// ADD through a delegated IPAM plugin: its result (no interfaces, no indexes).
pub fn ipam_add(plugin: &str, req: &Request, stdin: &[u8]) -> Result<CniResult, CniError> {
    let out = exec(plugin, "ADD", req, stdin)?;
    let value: serde_json::Value = serde_json::from_slice(&out).map_err(|e| {
        CniError::new(
            ErrorCode::Decode,
            format!("{plugin} ADD result is not JSON: {e}"),
        )
    })?;
    CniResult::from_json(&value).map_err(|e: result::ResultError| {
        CniError::new(ErrorCode::Decode, format!("{plugin} ADD result: {e}"))
    })
}
