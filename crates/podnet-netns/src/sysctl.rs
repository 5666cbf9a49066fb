//! Network sysctls of the calling thread's namespace (`/proc/sys/net/...` resolves per thread), so call
//! these from inside [`crate::NetNs::run`] to reach another namespace.

use crate::error::{Error, Result};
use std::fs;
use std::io::{self, Write};
use std::path::PathBuf;

/// The path of a sysctl given as components, so interface names with dots stay intact
/// (`["net", "ipv6", "conf", "eth0.100", "accept_dad"]`).
pub fn path(parts: &[&str]) -> PathBuf {
    let mut p = PathBuf::from("/proc/sys");
    for part in parts {
        p.push(part);
    }
    p
}

pub fn read(parts: &[&str]) -> Result<String> {
    let p = path(parts);
    fs::read_to_string(&p)
        .map(|s| s.trim().to_string())
        .map_err(|e| Error::io(format!("read {}", p.display()), e))
}

/// Writes a sysctl unless it already has the value (writing `ip_forward` resets other settings in some
/// kernels, and a read is cheaper than a write).
pub fn ensure(parts: &[&str], value: &str) -> Result<()> {
    if read(parts).ok().as_deref() == Some(value) {
        return Ok(());
    }
    write(parts, value)
}

pub fn write(parts: &[&str], value: &str) -> Result<()> {
    let p = path(parts);
    fs::OpenOptions::new()
        .write(true)
        .open(&p)
        .and_then(|mut f| f.write_all(value.as_bytes()))
        .map_err(|e| Error::io(format!("set {} to {value}", p.display()), e))
}

/// Like [`ensure`], but a sysctl that does not exist (IPv6 disabled) is not an error.
pub fn ensure_if_present(parts: &[&str], value: &str) -> Result<()> {
    match read(parts) {
        Ok(v) if v == value => Ok(()),
        Err(Error::Io { cause, .. }) if cause.kind() == io::ErrorKind::NotFound => Ok(()),
        _ => write_if_present(parts, value).map(|_| ()),
    }
}

/// Like [`write`], but a sysctl that does not exist (IPv6 disabled, module absent) is not an error.
pub fn write_if_present(parts: &[&str], value: &str) -> Result<bool> {
    match write(parts, value) {
        Ok(()) => Ok(true),
        Err(Error::Io { cause, .. }) if cause.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(e),
    }
}
