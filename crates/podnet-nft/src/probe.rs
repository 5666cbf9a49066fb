//! A cheap question to nf_tables over netlink: does this chain exist?
//!
//! podnet-cni installs its firewall state once per node and then only needs to know it is there.
//! Asking the kernel directly takes microseconds; running `nft list` would cost a process start and a
//! full parse on every pod ADD (the cost the reference plugins pay).

use crate::error::{Error, Result};
use crate::nl::encode::Msg;
use netlink_sys::{Socket, SocketAddr, protocols::NETLINK_NETFILTER};

const NFNL_SUBSYS_NFTABLES: u16 = 10;
const NFT_MSG_NEWCHAIN: u16 = 3;
const NFT_MSG_GETCHAIN: u16 = 4;
const NFTA_CHAIN_TABLE: u16 = 1;
const NFTA_CHAIN_NAME: u16 = 3;
const NLMSG_ERROR: u16 = 2;

/// nftables address families (`NFPROTO_*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum NftFamily {
    Inet = 1,
    Ip = 2,
    Bridge = 7,
    Ip6 = 10,
}

/// The GETCHAIN request, exactly as the kernel expects it.
fn getchain_request(family: NftFamily, table: &str, chain: &str, seq: u32) -> Vec<u8> {
    let mut m = Msg::new(NFT_MSG_GETCHAIN, 0, family as u8, seq);
    m.str(NFTA_CHAIN_TABLE, table).str(NFTA_CHAIN_NAME, chain);
    m.finish()
}

/// Whether `family table chain` exists in the calling thread's network namespace.
pub fn chain_exists(family: NftFamily, table: &str, chain: &str) -> Result<bool> {
    let mut socket = Socket::new(NETLINK_NETFILTER)?;
    socket.bind_auto()?;
    socket.connect(&SocketAddr::new(0, 0))?;
    socket.send(&getchain_request(family, table, chain, 1), 0)?;
    let mut buf = vec![0u8; 16 * 1024];
    let n = socket.recv(&mut &mut buf[..], 0)?;
    if n < 16 {
        return Err(Error::Decode("short nf_tables reply".into()));
    }
    let kind = u16::from_ne_bytes([buf[4], buf[5]]);
    if kind == NLMSG_ERROR {
        if n < 20 {
            return Err(Error::Decode("short nf_tables error".into()));
        }
        let code = i32::from_ne_bytes([buf[16], buf[17], buf[18], buf[19]]);
        return match -code {
            0 => Err(Error::Decode(
                "nf_tables acknowledged a get without an answer".into(),
            )),
            libc::ENOENT => Ok(false),
            errno => Err(Error::Kernel { errno }),
        };
    }
    Ok(kind == (NFNL_SUBSYS_NFTABLES << 8) | NFT_MSG_NEWCHAIN)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_layout() {
        let m = getchain_request(NftFamily::Inet, "podnet", "postrouting", 7);
        assert_eq!(m.len() % 4, 0);
        assert_eq!(
            u32::from_ne_bytes([m[0], m[1], m[2], m[3]]) as usize,
            m.len()
        );
        assert_eq!(u16::from_ne_bytes([m[4], m[5]]), (10 << 8) | 4);
        assert_eq!(m[16], 1, "family inet");
        // first attribute: table name "podnet\0" (len 4 + 7 = 11, padded to 12)
        assert_eq!(u16::from_ne_bytes([m[20], m[21]]), 11);
        assert_eq!(&m[24..31], b"podnet\0");
    }
}
