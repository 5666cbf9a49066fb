//! Set elements added and removed over netlink, in one nf_tables batch (one transaction): what
//! podnet-cni does on every ADD and DEL, without starting `nft` (2 to 3 ms a process on these
//! machines, against tens of microseconds for the batch).
//!
//! Keys are the kernel's bytes: a concatenation is its fields one after another, each padded to a
//! multiple of 4 bytes (an nf_tables register), as nft lays them out ([`key`] builds them).

use crate::error::Result;
use crate::nl::{self, ir::Command};
use crate::probe::NftFamily;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Add,
    Delete,
}

/// One element to add or delete.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Element<'a> {
    pub op: Op,
    pub family: NftFamily,
    pub table: &'a str,
    pub set: &'a str,
    pub key: Vec<u8>,
}

/// Key fields as nf_tables stores them.
pub mod key {
    use std::net::{Ipv4Addr, Ipv6Addr};

    /// An interface name: `IFNAMSIZ` (16) bytes, zero-filled.
    pub fn ifname(name: &str) -> Vec<u8> {
        let mut k = vec![0u8; 16];
        let b = name.as_bytes();
        let n = b.len().min(15);
        k[..n].copy_from_slice(&b[..n]);
        k
    }

    /// An interface index (`iif`, type `iface_index`): host byte order.
    pub fn ifindex(index: u32) -> Vec<u8> {
        index.to_ne_bytes().to_vec()
    }

    pub fn ipv4(ip: Ipv4Addr) -> Vec<u8> {
        ip.octets().to_vec()
    }

    pub fn ipv6(ip: Ipv6Addr) -> Vec<u8> {
        ip.octets().to_vec()
    }

    pub fn ether(mac: [u8; 6]) -> Vec<u8> {
        mac.to_vec()
    }

    /// Fields joined as a concatenated key, each padded to 4 bytes.
    pub fn concat(fields: &[Vec<u8>]) -> Vec<u8> {
        let mut k = Vec::new();
        for f in fields {
            k.extend_from_slice(f);
            while !k.len().is_multiple_of(4) {
                k.push(0);
            }
        }
        k
    }
}

/// The element changes as batch commands, in order.
fn commands(elements: &[Element<'_>]) -> Vec<Command> {
    elements
        .iter()
        .map(|e| {
            let element = vec![nl::ir::Element {
                key: e.key.clone(),
                verdict: None,
                value: None,
            }];
            let set = e.set.to_string();
            let (verb, op) = match e.op {
                Op::Add => (
                    "add",
                    nl::ir::Op::AddElements {
                        set,
                        elements: element,
                    },
                ),
                Op::Delete => (
                    "delete",
                    nl::ir::Op::DeleteElements {
                        set,
                        elements: element,
                    },
                ),
            };
            Command {
                family: e.family,
                table: e.table.to_string(),
                source: format!("{verb} an element of set {} of table {}", e.set, e.table),
                op,
            }
        })
        .collect()
}

/// Applies the element changes in one transaction, in the calling thread's network namespace:
/// all of them or none (one failure aborts the batch; the error names the element's set).
pub fn apply_elements(elements: &[Element<'_>]) -> Result<()> {
    nl::send(&commands(elements))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_laid_out_as_nft_does() {
        let k = key::concat(&[key::ifname("pnv1"), key::ether([1, 2, 3, 4, 5, 6])]);
        assert_eq!(k.len(), 16 + 8, "a MAC takes two registers");
        assert_eq!(&k[..5], b"pnv1\0");
        assert_eq!(&k[16..22], &[1, 2, 3, 4, 5, 6]);
        let k = key::concat(&[key::ifname("pnv1"), key::ipv4("10.0.0.1".parse().unwrap())]);
        assert_eq!(k.len(), 20);
        assert_eq!(&k[16..], &[10, 0, 0, 1]);
    }

    #[test]
    fn a_batch_is_begin_elements_end() {
        let e = Element {
            op: Op::Add,
            family: NftFamily::Inet,
            table: "t",
            set: "s",
            key: vec![10, 0, 0, 1],
        };
        let b = crate::nl::encode::batch(
            &commands(&[
                e.clone(),
                Element {
                    op: Op::Delete,
                    ..e
                },
            ]),
            7,
        )
        .unwrap()
        .bytes;
        let mut off = 0;
        let mut kinds = Vec::new();
        while off < b.len() {
            let len = u32::from_ne_bytes(b[off..off + 4].try_into().unwrap()) as usize;
            assert_eq!(len % 4, 0);
            kinds.push((
                u16::from_ne_bytes([b[off + 4], b[off + 5]]),
                u32::from_ne_bytes(b[off + 8..off + 12].try_into().unwrap()),
            ));
            off += len;
        }
        assert_eq!(
            kinds,
            vec![
                (0x10, 7),
                ((10 << 8) | 12, 8),
                ((10 << 8) | 14, 9),
                (0x11, 10)
            ]
        );
        // The begin marker names the nf_tables subsystem, big-endian.
        assert_eq!(&b[16..20], &[0, 0, 0, 10]);
    }
}
