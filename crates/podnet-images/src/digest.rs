//! sha256 digests as OCI spells them (`sha256:<64 hex>`), and a writer that hashes what passes.

use ring::digest::{Context, SHA256};
use std::io::{self, Write};

#[derive(
    Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
#[serde(transparent)]
pub struct Digest(String);

impl Digest {
    pub fn of(bytes: &[u8]) -> Digest {
        let mut c = Context::new(&SHA256);
        c.update(bytes);
        Digest::from_context(c)
    }

    fn from_context(c: Context) -> Digest {
        Digest(format!("sha256:{}", hex(c.finish().as_ref())))
    }

    /// `sha256:…`
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The 64 hex digits (the blob's file name in an OCI layout).
    pub fn hex(&self) -> &str {
        self.0.strip_prefix("sha256:").unwrap_or(&self.0)
    }

    /// The first 12 hex digits, for progress lines.
    pub fn short(&self) -> &str {
        &self.hex()[..12.min(self.hex().len())]
    }

    /// Parses `sha256:<64 lowercase hex>`.
    pub fn parse(s: &str) -> Option<Digest> {
        let hex = s.strip_prefix("sha256:")?;
        (hex.len() == 64 && hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')))
            .then(|| Digest(s.to_string()))
    }
}

impl std::fmt::Display for Digest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Passes writes through to `inner`, hashing and counting them.
pub struct HashWriter<W> {
    inner: W,
    ctx: Context,
    len: u64,
}

impl<W: Write> HashWriter<W> {
    pub fn new(inner: W) -> HashWriter<W> {
        HashWriter {
            inner,
            ctx: Context::new(&SHA256),
            len: 0,
        }
    }

    /// The inner writer, the digest and the byte count of everything written.
    pub fn finish(self) -> (W, Digest, u64) {
        (self.inner, Digest::from_context(self.ctx), self.len)
    }
}

impl<W: Write> Write for HashWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.ctx.update(&buf[..n]);
        self.len += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_vector_and_writer_agree() {
        let d = Digest::of(b"abc");
        assert_eq!(
            d.as_str(),
            "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        let mut w = HashWriter::new(Vec::new());
        w.write_all(b"ab").unwrap();
        w.write_all(b"c").unwrap();
        let (bytes, wd, n) = w.finish();
        assert_eq!((bytes.as_slice(), wd, n), (b"abc".as_slice(), d.clone(), 3));
        assert_eq!(Digest::parse(d.as_str()), Some(d));
        assert_eq!(Digest::parse("sha256:ABC"), None);
        assert_eq!(Digest::parse("md5:00"), None);
    }
}
