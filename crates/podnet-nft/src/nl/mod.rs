//! Applying podnet's nft scripts over netlink, without the `nft` binary.
//!
//! podnet's components write their tables in nft's language (readable, logged and tested as text).
//! `nft -f` pays for that with a cache: before each transaction it loads the tables it touches
//! from the kernel, which with tens of thousands of chains takes longer than the change itself
//! (200 ms to add one map element next to 10k Services). This module compiles the subset of the
//! language podnet writes ([`parse`]) into the nf_tables messages `nft` would send ([`ir`],
//! [`encode`]) and sends them as one batch: the same atomic transaction, without reading anything
//! back.

pub mod encode;
pub mod ir;
pub mod parse;
mod socket;

use crate::error::{Error, Result};

/// A writer that remembers the sets it declared (their types encode later elements), and keeps
/// its socket open between batches in one namespace (see [`socket::Conn`]).
#[derive(Debug, Default)]
pub struct Netlink {
    sets: parse::Sets,
    conn: Option<socket::Conn>,
}

impl Netlink {
    pub fn new() -> Netlink {
        Netlink::default()
    }

    /// Applies `script` in one transaction in the calling thread's network namespace. After
    /// [`Error::Unsupported`] or [`Error::Refused`] nothing of it is applied (the kernel aborts the
    /// whole batch; a refusal quotes the command); after an I/O error the outcome is unknown (a
    /// full rebuild settles it).
    pub fn apply(&mut self, script: &str) -> Result<()> {
        let mut sets = self.sets.clone();
        let cmds = sets.compile(script).map_err(Error::Unsupported)?;
        if cmds.is_empty() {
            return Ok(());
        }
        // The socket is reused only by a thread in the namespace it was made in, and only after
        // a batch the kernel took whole (all its answers read); any error or refusal closes it.
        let here = socket::current_netns()?;
        let mut conn = match self.conn.take() {
            Some(c) if c.netns == here => c,
            _ => socket::Conn::open(here)?,
        };
        send_on(&mut conn, &cmds)?;
        self.conn = Some(conn);
        self.sets = sets;
        Ok(())
    }

    /// Records the set declarations of a script applied some other way (with `nft`), so later
    /// elements of those sets can be sent over netlink.
    pub fn learn(&mut self, script: &str) {
        self.sets.learn(script);
    }
}

/// Sends `cmds` as one batch in the calling thread's network namespace: all applied, or none
/// and the error names the command the kernel refused.
pub fn send(cmds: &[ir::Command]) -> Result<()> {
    if cmds.is_empty() {
        return Ok(());
    }
    let mut conn = socket::Conn::open(socket::current_netns()?)?;
    send_on(&mut conn, cmds)
}

/// Sends `cmds` as one batch on `conn`.
fn send_on(conn: &mut socket::Conn, cmds: &[ir::Command]) -> Result<()> {
    let batch = encode::batch(cmds, 1).map_err(|e| {
        Error::Unsupported(parse::ParseError {
            line: shorten(&e.command),
            reason: e.reason,
        })
    })?;
    let refused = conn.exchange(&batch, batch.next_seq)?;
    match refused.iter().min_by_key(|(s, _)| *s) {
        None => Ok(()),
        Some((seq, errno)) => Err(Error::Refused {
            command: batch
                .command_of(*seq)
                .map(|i| shorten(&cmds[i].source))
                .unwrap_or_else(|| "the batch (some errors were lost)".into()),
            errno: *errno,
        }),
    }
}

/// A command as errors quote it: element lines can hold a thousand elements.
fn shorten(line: &str) -> String {
    const MAX: usize = 240;
    if line.len() <= MAX {
        return line.to_string();
    }
    let mut cut = MAX;
    while !line.is_char_boundary(cut) {
        cut -= 1;
    }
    format!("{} ... ({} bytes)", &line[..cut], line.len())
}
