//! nftables scripts as text, built from checked pieces. A script is applied by `nft -f -` in one
//! transaction: it either takes effect entirely or not at all.

use crate::error::{Error, Result};
use std::fmt::Write;

/// Whether `s` may be used unquoted as a table, chain, set or map name (nft's identifier rule: a letter
/// or `_`, then letters, digits, `/`, `\`, `-`, `_`, `.`). nft 1.0.6 does not accept quoted names in
/// every position, so podnet only ever uses such names.
pub fn is_identifier(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '/' | '\\' | '-' | '_' | '.'))
        && s.len() <= 255
}

pub fn identifier(s: &str) -> Result<&str> {
    if is_identifier(s) {
        Ok(s)
    } else {
        Err(Error::BadIdentifier(s.to_string()))
    }
}

/// Quotes a comment: nft strings cannot contain `"`; anything else printable is kept.
pub fn comment(s: &str) -> String {
    let cleaned: String = s
        .chars()
        .filter(|c| *c != '"' && !c.is_control())
        .take(120)
        .collect();
    format!("\"{cleaned}\"")
}

/// A script under construction. Lines are nft commands (`add chain ...`, `flush chain ...`).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Script {
    text: String,
}

impl Script {
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends one command line.
    pub fn line(&mut self, command: impl AsRef<str>) -> &mut Self {
        let _ = writeln!(self.text, "{}", command.as_ref());
        self
    }

    pub fn is_empty(&self) -> bool {
        self.text.is_empty()
    }

    pub fn as_str(&self) -> &str {
        &self.text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers() {
        assert!(is_identifier("masq-podnet-1a2b3c4d"));
        assert!(is_identifier("_x.y/z"));
        assert!(!is_identifier("1abc"));
        assert!(!is_identifier("a b"));
        assert!(!is_identifier("a\"b"));
        assert!(!is_identifier(""));
    }

    #[test]
    fn comments_cannot_break_out() {
        assert_eq!(comment("a\"b\nc"), "\"abc\"");
    }
}
