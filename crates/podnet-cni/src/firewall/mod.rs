//! The plugin's firewall state, all in one nftables table it owns: `table inet podnet-cni`.
//!
//! - [`masq`]: one base chain per network, `masq-<network>-<hash>`, whose name carries a hash of the
//!   rules it holds. Installed once per node; afterwards an ADD only asks the kernel (netlink, no
//!   process) whether that chain exists, so a normal ADD changes no firewall state at all.
//! - [`hostports`]: two DNAT maps shared by every network on the node (a port is the node's, whichever
//!   network asks) and two chains that consult them. A pod's mappings are map elements.
//!
//! And per pod port, in one netlink batch at ADD ([`guard_port`]; DEL leaves them, GC cleans up):
//! - [`spoof`] (`spoofCheck`): the port's own MAC and addresses, in `bridge podnet-cni`;
//! - [`pending`]: the pod's address held until podnet-agent has programmed its policies (only where
//!   the agent's table exists).

pub mod hostports;
pub mod masq;
pub mod pending;
pub mod spoof;

use crate::fail;
use podnet_netns::NetNs;
use podnet_nft::NftFamily;
use podnet_types::cni::CniError;
use std::fs::OpenOptions;
use std::os::fd::AsRawFd;

pub const TABLE: &str = "podnet-cni";
pub(crate) const FAMILY: &str = "inet";
/// Where the install locks live: per boot, like the firewall state they guard.
const LOCK_DIR: &str = "/run/podnet-cni";

/// Serialises firewall installs of concurrent plugin runs in one network namespace (nft transactions
/// are atomic, but "is it there? then install" is not). Keyed by the namespace's identity, so nodes of
/// a lab that share a filesystem do not wait for each other.
pub(crate) struct InstallLock {
    _held: std::fs::File,
}

impl InstallLock {
    pub(crate) fn take() -> Result<InstallLock, CniError> {
        let ns = NetNs::current()
            .and_then(|n| n.id())
            .map_err(|e| fail::kernel("identify the network namespace", e))?;
        std::fs::create_dir_all(LOCK_DIR).map_err(|e| fail::io(format!("create {LOCK_DIR}"), e))?;
        let path = format!("{LOCK_DIR}/firewall-{}-{}.lock", ns.dev, ns.ino);
        let f = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|e| fail::io(format!("open {path}"), e))?;
        // SAFETY: flock on an fd we own; blocking is fine: holders only run one short nft script.
        if unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX) } != 0 {
            return Err(fail::io(
                format!("lock {path}"),
                std::io::Error::last_os_error(),
            ));
        }
        Ok(InstallLock { _held: f })
    }
}

pub(crate) fn chain_exists(chain: &str) -> Result<bool, CniError> {
    podnet_nft::chain_exists(NftFamily::Inet, TABLE, chain)
        .map_err(|e| fail::firewall(format!("look up chain {FAMILY} {TABLE} {chain}"), e))
}

pub(crate) fn table_line(s: &mut podnet_nft::Script) {
    s.line(format!("add table {FAMILY} {TABLE}"));
}

/// ADD: registers the port's anti-spoofing entries (when `spoof_check`) and marks the address
/// pending for the policy agent (when its table exists), in one netlink batch, with no process. The
/// first ADD of a node with `spoof_check` installs the table with `nft -f`, the port's elements in
/// the same script, and marks the address in a batch after it.
pub fn guard_port(
    port: &spoof::Port<'_>,
    spoof_check: bool,
    policy_hold: bool,
) -> Result<(), CniError> {
    let what = || format!("guard port {}", port.host_veth);
    // Only when asked (`policyHold`) and for the pod's primary interface: the agent learns (and so
    // clears) only the address the API shows, which is eth0's; another would stay held.
    let hold = (policy_hold && pending::installed()?).then_some(port.ip);
    let mut script = podnet_nft::Script::new();
    let _lock = if spoof_check {
        spoof::ensure(&mut script)?
    } else {
        None
    };
    if !script.is_empty() {
        spoof::add(&mut script, port);
        podnet_nft::apply(&script).map_err(|e| fail::firewall(what(), e))?;
    }
    let mut batch = Vec::new();
    if spoof_check && script.is_empty() {
        spoof::add_elements(&mut batch, port);
    }
    let spoof_only = batch.clone();
    if let Some(ip) = hold {
        pending::add(&mut batch, ip);
    }
    match podnet_nft::apply_elements(&batch) {
        // The agent removed its table between the question and the batch (its teardown): nothing
        // to hold any more.
        Err(_) if hold.is_some() && !pending::installed()? => {
            podnet_nft::apply_elements(&spoof_only)
        }
        other => other,
    }
    .map_err(|e| fail::firewall(what(), e))
}

/// A rolled-back ADD: removes what [`guard_port`] added, whether or not it is there (netlink).
/// DEL leaves both: the anti-spoofing elements are keyed by an interface index that dies with the
/// port (GC removes them), and a hold left on a released address is cleared by the agent once a
/// pod has it again (every address of the node's pods comes through ADD, which marks it anyway).
pub fn release_port(port: &spoof::Port<'_>) -> Result<(), CniError> {
    let mut batch = Vec::new();
    if spoof::installed()? {
        spoof::remove_elements(&mut batch, port);
    }
    if pending::installed()? {
        pending::remove(&mut batch, port.ip);
    }
    podnet_nft::apply_elements(&batch)
        .map_err(|e| fail::firewall(format!("release port {}", port.host_veth), e))
}
