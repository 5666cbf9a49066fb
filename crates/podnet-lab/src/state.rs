//! The lab's state file: the plan, the mode and the daemon, written atomically.

use crate::error::{Result, io};
use crate::paths::LabPaths;
use podnet_types::lab::{Mode, Plan};
use serde::{Deserialize, Serialize};
use std::fs;
use std::io::Write;

pub const STATE_FORMAT: u32 = 1;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LabState {
    pub format: u32,
    pub name: String,
    pub plan: Plan,
    pub mode: Mode,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub daemon_pid: Option<u32>,
    /// The port asked for on 127.0.0.1 (0: any free port).
    #[serde(default = "default_api_port")]
    pub api_port: u16,
    /// Where the API server answers kubectl, once the daemon runs (`127.0.0.1:6443`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_address: Option<String>,
    /// A mode switch under way: set before the first change, cleared after the last, so a switch
    /// that was killed half-way is finished by the next `up` or `mode`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pending_mode: Option<Mode>,
    /// The kubeconfig `up` merged the lab's context into, so `down` removes it from the same file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kubeconfig: Option<std::path::PathBuf>,
    /// The image mirror (registry on 127.0.0.1) and the hosts directory pointing at it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mirror: Option<crate::mirror::MirrorState>,
    /// Set only once `up` finished: a state without it is a crashed `up`.
    pub complete: bool,
    /// Unix seconds.
    pub created: u64,
}

fn default_api_port() -> u16 {
    6443
}

impl LabState {
    pub fn load(paths: &LabPaths) -> Result<Option<LabState>> {
        let path = paths.state_file();
        match fs::read(&path) {
            Ok(bytes) => match serde_json::from_slice::<LabState>(&bytes) {
                Ok(s) if s.format <= STATE_FORMAT => Ok(Some(s)),
                // Unreadable or from a newer podnet: treat as a broken lab, which `up`/`down` clean.
                _ => Ok(None),
            },
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(crate::error::Error::Io {
                what: format!("read {}", path.display()),
                cause: e,
            }),
        }
    }

    pub fn save(&self, paths: &LabPaths) -> Result<()> {
        let dir = paths.run_dir();
        fs::create_dir_all(&dir).map_err(io(format!("create {}", dir.display())))?;
        let path = paths.state_file();
        let tmp = dir.join(".state.json.tmp");
        let mut f = fs::File::create(&tmp).map_err(io(format!("write {}", tmp.display())))?;
        f.write_all(&serde_json::to_vec_pretty(self).expect("state serializes"))
            .and_then(|_| f.sync_all())
            .map_err(io(format!("write {}", tmp.display())))?;
        fs::rename(&tmp, &path).map_err(io(format!("replace {}", path.display())))
    }
}
