//! `flock` locks: one build per cache, and a build and a publish never overlap on one layout.

use crate::error::{Result, io_at};
use std::fs;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

/// The lock guarding an output layout against a publish reading it while it is rewritten.
pub fn lock_path(out_dir: &Path) -> PathBuf {
    let mut name = out_dir.file_name().unwrap_or_default().to_os_string();
    name.push(".lock");
    out_dir.with_file_name(name)
}

/// A held `flock`; released when dropped.
pub struct Lock(#[allow(dead_code)] fs::File);

/// Takes an exclusive (or shared) lock on `path`, saying so when it has to wait.
pub fn lock(path: &Path, exclusive: bool, progress: &mut dyn FnMut(&str)) -> Result<Lock> {
    let file = fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)
        .map_err(io_at("open", path))?;
    let mode = if exclusive {
        libc::LOCK_EX
    } else {
        libc::LOCK_SH
    };
    // SAFETY: flock on an fd we own.
    if unsafe { libc::flock(file.as_raw_fd(), mode | libc::LOCK_NB) } != 0 {
        progress(&format!(
            "waiting for {} (another build holds it)",
            path.display()
        ));
        // SAFETY: as above; blocking until the holder is done.
        if unsafe { libc::flock(file.as_raw_fd(), mode) } != 0 {
            return Err(io_at("lock", path)(std::io::Error::last_os_error()));
        }
    }
    Ok(Lock(file))
}
