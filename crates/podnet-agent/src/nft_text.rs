//! The text of one `nft -f` transaction on one table podnet owns (pure): the service proxy's
//! `ip podnet-services` and NetworkPolicy's `inet podnet-policy` write theirs with it.

use std::collections::BTreeMap;
use std::fmt::Write;

/// Elements per `add element` line: nft parses long lines slowly, and a transaction may add tens of
/// thousands.
const ELEMENTS_PER_LINE: usize = 1000;

/// What names the set or map an element goes to.
pub trait SetName {
    fn set_name(&self) -> std::borrow::Cow<'_, str>;
}

impl SetName for String {
    fn set_name(&self) -> std::borrow::Cow<'_, str> {
        self.into()
    }
}

/// A transaction's text, in the order its caller writes it (the kernel needs a set or chain declared
/// before anything names it).
#[derive(Debug, Default)]
pub struct Transaction {
    family: &'static str,
    table: String,
    text: String,
}

impl Transaction {
    /// A transaction on table `table` of `family` (`ip`, `inet`).
    pub fn new(family: &'static str, table: &str) -> Transaction {
        Transaction {
            family,
            table: table.to_string(),
            text: String::new(),
        }
    }

    pub fn raw(&mut self, line: &str) {
        self.text.push_str(line);
        self.text.push('\n');
    }

    /// `VERB WHAT FAMILY TABLE REST`.
    pub fn cmd(&mut self, verb: &str, what: &str, rest: std::fmt::Arguments<'_>) {
        let _ = writeln!(
            self.text,
            "{verb} {what} {} {} {rest}",
            self.family, self.table
        );
    }

    pub fn add_chain(&mut self, name: &str) {
        self.cmd("add", "chain", format_args!("{name}"));
    }
    pub fn flush_chain(&mut self, name: &str) {
        self.cmd("flush", "chain", format_args!("{name}"));
    }
    pub fn delete_chain(&mut self, name: &str) {
        self.cmd("delete", "chain", format_args!("{name}"));
    }
    pub fn add_rules(&mut self, chain: &str, rules: &[String]) {
        for r in rules {
            self.cmd("add", "rule", format_args!("{chain} {r}"));
        }
    }
    pub fn add_set(&mut self, name: &str, decl: &str) {
        self.cmd("add", "set", format_args!("{name} {decl}"));
    }
    pub fn delete_set(&mut self, name: &str) {
        self.cmd("delete", "set", format_args!("{name}"));
    }
    pub fn add_counter(&mut self, name: &str) {
        self.cmd("add", "counter", format_args!("{name}"));
    }
    pub fn delete_counter(&mut self, name: &str) {
        self.cmd("delete", "counter", format_args!("{name}"));
    }

    /// Adds elements (`key` or `key : value`), one line per set and chunk.
    pub fn add_elements<'a, S: SetName + Ord + 'a>(
        &mut self,
        elements: impl IntoIterator<Item = (&'a (S, String), &'a Option<String>)>,
    ) {
        self.elements("add", elements.into_iter().map(|(k, v)| (k, v.as_deref())));
    }

    pub fn delete_elements<'a, S: SetName + Ord + 'a>(
        &mut self,
        keys: impl IntoIterator<Item = &'a (S, String)>,
    ) {
        self.elements("delete", keys.into_iter().map(|k| (k, None)));
    }

    fn elements<'a, S: SetName + Ord + 'a>(
        &mut self,
        verb: &str,
        items: impl Iterator<Item = (&'a (S, String), Option<&'a str>)>,
    ) {
        let mut by: BTreeMap<&S, Vec<String>> = BTreeMap::new();
        for ((set, k), v) in items {
            by.entry(set).or_default().push(match v {
                Some(v) => format!("{k} : {v}"),
                None => k.clone(),
            });
        }
        for (set, items) in by {
            for chunk in items.chunks(ELEMENTS_PER_LINE) {
                self.cmd(
                    verb,
                    "element",
                    format_args!("{} {{ {} }}", set.set_name(), chunk.join(", ")),
                );
            }
        }
    }

    pub fn is_empty(&self) -> bool {
        self.text.is_empty()
    }

    pub fn text(&self) -> &str {
        &self.text
    }

    pub fn into_text(self) -> String {
        self.text
    }
}
