//! From nft's language to [`Command`]s (pure), for the subset podnet's own tables are written in:
//! tables, chains (with hooks), named sets and verdict maps of IPv4 addresses, protocols and ports,
//! their elements, and rules made of payload, meta, fib, ct and numgen matches, set lookups, verdicts,
//! dnat, masquerade, reject, mark arithmetic and set updates. Anything else is refused with the line
//! and the reason, never guessed at.
//!
//! Elements are encoded by their set's declared types, so the compiler remembers the sets it has
//! declared; a set it never saw declared is refused (a full rebuild declares everything again).

use super::ir::{
    CmpOp, Command, Data, Element, Expr, Field, Hook, Op, REG_1, REG_VERDICT, REG32_00, SetType,
    Verdict,
};
use crate::probe::NftFamily;
use std::collections::HashMap;
use std::net::Ipv4Addr;

/// Why a line was not compiled.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{reason}: {line}")]
pub struct ParseError {
    pub line: String,
    pub reason: String,
}

type Parsed<T> = Result<T, String>;

/// The set declarations compiled so far, per family, table and name.
#[derive(Debug, Clone, Default)]
pub struct Sets(HashMap<(NftFamily, String, String), SetType>);

impl Sets {
    /// Compiles a script into commands, updating `self` with the sets it declares and deletes.
    pub fn compile(&mut self, script: &str) -> Result<Vec<Command>, ParseError> {
        let mut out = Vec::new();
        for line in script.lines() {
            let toks = tokens(line);
            if toks.is_empty() || toks[0].starts_with('#') {
                continue;
            }
            let cmd = self.command(&toks).map_err(|reason| ParseError {
                line: line.trim().to_string(),
                reason,
            })?;
            out.push(Command {
                source: line.trim().to_string(),
                ..cmd
            });
        }
        Ok(out)
    }

    /// Takes in the set declarations and deletions of a script, line by line, skipping what
    /// does not compile.
    pub fn learn(&mut self, script: &str) {
        for line in script.lines() {
            let toks = tokens(line);
            if toks.len() >= 4 && matches!(toks[1], "table" | "set" | "map") {
                let _ = self.command(&toks);
            }
        }
    }

    fn command(&mut self, t: &[&str]) -> Parsed<Command> {
        if t.len() < 4 {
            return Err("too short a command".into());
        }
        let family = family(t[2])?;
        let table = name(t[3])?.to_string();
        let cmd = |op| {
            Ok(Command {
                family,
                table: table.clone(),
                op,
                source: String::new(),
            })
        };
        let rest = &t[4..];
        match (t[0], t[1]) {
            ("add", "table") if rest.is_empty() => cmd(Op::AddTable),
            ("delete", "table") if rest.is_empty() => {
                self.0
                    .retain(|(f, tb, _), _| !(*f == family && *tb == table));
                cmd(Op::DeleteTable)
            }
            ("flush", "table") if rest.is_empty() => cmd(Op::FlushTable),
            ("flush", "set" | "map") => cmd(Op::FlushSet {
                name: only_name(rest)?,
            }),
            ("add", "counter") => cmd(Op::AddCounter {
                name: only_name(rest)?,
            }),
            ("delete", "counter") => cmd(Op::DeleteCounter {
                name: only_name(rest)?,
            }),
            ("add", "chain") => {
                let (n, body) = split_name(rest)?;
                let hook = match body {
                    [] => None,
                    b => Some(chain_hook(braced(b)?, family)?),
                };
                cmd(Op::AddChain {
                    name: n.to_string(),
                    hook,
                })
            }
            ("flush", "chain") => cmd(Op::FlushChain {
                name: only_name(rest)?,
            }),
            ("delete", "chain") => cmd(Op::DeleteChain {
                name: only_name(rest)?,
            }),
            ("add", kind @ ("set" | "map")) => {
                let (n, body) = split_name(rest)?;
                let set = set_type(braced(body)?)?;
                let is_map = set.verdict_map || !set.data.is_empty();
                if is_map != (kind == "map") {
                    return Err(format!("a {kind} declared as the other kind"));
                }
                self.0
                    .insert((family, table.clone(), n.to_string()), set.clone());
                cmd(Op::AddSet {
                    name: n.to_string(),
                    set,
                })
            }
            ("delete", "set" | "map") => {
                let n = only_name(rest)?;
                self.0.remove(&(family, table.clone(), n.clone()));
                cmd(Op::DeleteSet { name: n })
            }
            (verb @ ("add" | "delete"), "element") => {
                let (n, body) = split_name(rest)?;
                let set = self
                    .0
                    .get(&(family, table.clone(), n.to_string()))
                    .ok_or_else(|| format!("set {n} was not declared to this compiler"))?;
                let elements = elements(set, braced(body)?, verb == "add")?;
                let set = n.to_string();
                cmd(if verb == "add" {
                    Op::AddElements { set, elements }
                } else {
                    Op::DeleteElements { set, elements }
                })
            }
            ("add", "rule") => {
                let (chain, body) = split_name(rest)?;
                let sets = |n: &str| self.0.get(&(family, table.clone(), n.to_string())).cloned();
                let exprs = rule(family, body, &sets)?;
                cmd(Op::AddRule {
                    chain: chain.to_string(),
                    exprs,
                })
            }
            (verb, what) => Err(format!("{verb} {what} is not supported")),
        }
    }
}

/// Words, with braces, commas and semicolons at either end split off as tokens of their own; a
/// double-quoted string (which podnet never writes with a quote inside) is one token, quotes kept.
fn tokens(line: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut rest = line.trim_start();
    while !rest.is_empty() {
        if let Some(q) = rest.strip_prefix('"') {
            let end = q.find('"').map_or(rest.len(), |i| i + 2);
            out.push(&rest[..end]);
            rest = rest[end..].trim_start();
            // A separator glued to the closing quote (`"x";`).
            while let Some(r) = rest.strip_prefix([';', ',', '}']) {
                out.push(&rest[..1]);
                rest = r.trim_start();
            }
            continue;
        }
        let end = rest.find(char::is_whitespace).unwrap_or(rest.len());
        let mut w = &rest[..end];
        rest = rest[end..].trim_start();
        while let Some(r) = w.strip_prefix('{') {
            out.push("{");
            w = r;
        }
        let mut tail = Vec::new();
        while let Some(last) = w.chars().last().filter(|c| matches!(c, '}' | ',' | ';')) {
            tail.push(match last {
                '}' => "}",
                ',' => ",",
                _ => ";",
            });
            w = &w[..w.len() - 1];
        }
        if !w.is_empty() {
            out.push(w);
        }
        out.extend(tail.into_iter().rev());
    }
    out
}

/// The text of a double-quoted token.
fn unquote(s: &str) -> Parsed<&str> {
    s.strip_prefix('"')
        .and_then(|r| r.strip_suffix('"'))
        .ok_or_else(|| format!("expected a quoted string, found {s:?}"))
}

fn family(s: &str) -> Parsed<NftFamily> {
    Ok(match s {
        "ip" => NftFamily::Ip,
        "ip6" => NftFamily::Ip6,
        "inet" => NftFamily::Inet,
        "bridge" => NftFamily::Bridge,
        _ => return Err(format!("family {s:?} is not supported")),
    })
}

fn name(s: &str) -> Parsed<&str> {
    if crate::script::is_identifier(s) {
        Ok(s)
    } else {
        Err(format!("{s:?} is not a name"))
    }
}

fn split_name<'a, 'b>(t: &'b [&'a str]) -> Parsed<(&'a str, &'b [&'a str])> {
    let (first, rest) = t.split_first().ok_or("a name is missing")?;
    Ok((name(first)?, rest))
}

fn only_name(t: &[&str]) -> Parsed<String> {
    match t {
        [n] => Ok(name(n)?.to_string()),
        _ => Err("expected just a name".into()),
    }
}

/// The tokens between a leading `{` and a final `}`.
fn braced<'a, 'b>(t: &'b [&'a str]) -> Parsed<&'b [&'a str]> {
    match t {
        ["{", inner @ .., "}"] => Ok(inner),
        _ => Err("expected { ... }".into()),
    }
}

/// `type nat hook postrouting priority srcnat ; policy accept ;`
fn chain_hook(t: &[&str], family: NftFamily) -> Parsed<Hook> {
    let mut kind = None;
    let mut hook = None;
    let mut priority = None;
    let mut policy = 1;
    let mut i = 0;
    while i < t.len() {
        let value = |k: usize| t.get(i + k).copied().ok_or("a value is missing");
        match t[i] {
            ";" => {
                i += 1;
                continue;
            }
            "type" => {
                kind = Some(value(1)?.to_string());
                i += 2;
            }
            "hook" => {
                hook = Some(match value(1)? {
                    "prerouting" => 0,
                    "input" => 1,
                    "forward" => 2,
                    "output" => 3,
                    "postrouting" => 4,
                    h => return Err(format!("hook {h:?} is not supported")),
                });
                i += 2;
            }
            "priority" => {
                let p = value(1)?;
                if family == NftFamily::Bridge && p.parse::<i32>().is_err() {
                    // The bridge family names its priorities differently.
                    return Err(format!("priority {p:?} in a bridge table is not supported"));
                }
                let mut prio = match p {
                    "raw" => -300,
                    "mangle" => -150,
                    "dstnat" => -100,
                    "filter" => 0,
                    "security" => 50,
                    "srcnat" => 100,
                    n => n
                        .parse::<i32>()
                        .map_err(|_| format!("priority {n:?} is not supported"))?,
                };
                i += 2;
                // `filter - 10`, `filter + 5`
                if let Some(sign @ ("+" | "-")) = t.get(i).copied() {
                    let n: i32 = t
                        .get(i + 1)
                        .ok_or("a priority offset is missing")?
                        .parse()
                        .map_err(|_| "a priority offset must be a number".to_string())?;
                    prio += if sign == "+" { n } else { -n };
                    i += 2;
                }
                priority = Some(prio);
            }
            "policy" => {
                policy = match value(1)? {
                    "accept" => 1,
                    "drop" => 0,
                    p => return Err(format!("policy {p:?} is not supported")),
                };
                i += 2;
            }
            w => return Err(format!("{w:?} in a chain's declaration is not supported")),
        }
    }
    Ok(Hook {
        kind: kind.ok_or("a hooked chain needs a type")?,
        hook: hook.ok_or("a hooked chain needs a hook")?,
        priority: priority.ok_or("a hooked chain needs a priority")?,
        policy,
    })
}

/// `type ipv4_addr . inet_proto . inet_service : verdict ; flags dynamic,timeout ; timeout 10s ;`
fn set_type(t: &[&str]) -> Parsed<SetType> {
    let mut set = SetType {
        fields: Vec::new(),
        verdict_map: false,
        data: Vec::new(),
        typeof_udata: None,
        flags: 0,
        timeout_ms: None,
        comment: None,
    };
    let mut i = 0;
    while i < t.len() {
        match t[i] {
            ";" => i += 1,
            "type" => {
                i += 1;
                loop {
                    let f = t.get(i).ok_or("a type is missing")?;
                    set.fields.push(match *f {
                        "ipv4_addr" => Field::Ipv4Addr,
                        "inet_proto" => Field::InetProto,
                        "inet_service" => Field::InetService,
                        other => return Err(format!("type {other:?} is not supported")),
                    });
                    i += 1;
                    if t.get(i) == Some(&".") {
                        i += 1;
                    } else {
                        break;
                    }
                }
                if t.get(i) == Some(&":") {
                    match t.get(i + 1) {
                        Some(&"verdict") => set.verdict_map = true,
                        other => return Err(format!("map data {other:?} is not supported")),
                    }
                    i += 2;
                }
            }
            "typeof" => {
                let end = t[i..]
                    .iter()
                    .position(|w| *w == ";")
                    .map_or(t.len(), |p| i + p);
                let (fields, data, udata) = typeof_decl(&t[i + 1..end])?;
                (set.fields, set.data, set.typeof_udata) = (fields, data, Some(udata));
                i = end;
            }
            "flags" => {
                for f in t.get(i + 1).ok_or("flags are missing")?.split(',') {
                    set.flags |= match f {
                        "constant" => 0x2,
                        "interval" => 0x4,
                        "timeout" => 0x10,
                        "dynamic" => 0x20,
                        other => return Err(format!("set flag {other:?} is not supported")),
                    };
                }
                i += 2;
            }
            "comment" => {
                let c = unquote(t.get(i + 1).ok_or("a comment is missing")?)?;
                if c.len() > 200 {
                    return Err("a set comment longer than 200 bytes".into());
                }
                set.comment = Some(c.to_string());
                i += 2;
            }
            "timeout" => {
                set.timeout_ms = Some(duration_ms(t.get(i + 1).ok_or("a timeout is missing")?)?);
                set.flags |= 0x10;
                i += 2;
            }
            w => return Err(format!("{w:?} in a set's declaration is not supported")),
        }
    }
    if set.fields.is_empty() {
        return Err("a set needs a type".into());
    }
    if set.flags & 0x4 != 0 {
        return Err("interval sets are not supported".into());
    }
    Ok(set)
}

/// `typeof numgen random mod N [offset O] : ip daddr . th dport`: a map from what `numgen` makes
/// to addresses and ports (the only typeof declaration podnet writes; nft refuses `type mark` for
/// a numgen key). Returns the key's and the data's fields and the set's user data as nft records
/// it (libnftnl's set udata: key byte order host, data byte order unset, the key's and the data's
/// typeof expressions, no data interval), so `nft list` prints the declaration back.
fn typeof_decl(t: &[&str]) -> Parsed<(Vec<Field>, Vec<Field>, Vec<u8>)> {
    let colon = t
        .iter()
        .position(|w| *w == ":")
        .ok_or("only typeof maps are supported")?;
    let (modulus, offset) = match &t[..colon] {
        ["numgen", "random", "mod", m] => (number(m)?, 0),
        ["numgen", "random", "mod", m, "offset", o] => (number(m)?, number(o)?),
        other => return Err(format!("typeof key {:?} is not supported", other.join(" "))),
    };
    // Payload fields: (field, nft's protocol description id, the field's template index).
    let mut data = Vec::new();
    let mut payloads = Vec::new();
    for part in t[colon + 1..].split(|w| *w == ".") {
        let (field, desc, index) = match part {
            ["ip", "saddr"] => (Field::Ipv4Addr, 12, 11),
            ["ip", "daddr"] => (Field::Ipv4Addr, 12, 12),
            ["th", "sport"] => (Field::InetService, 11, 1),
            ["th", "dport"] => (Field::InetService, 11, 2),
            other => {
                return Err(format!(
                    "typeof data {:?} is not supported",
                    other.join(" ")
                ));
            }
        };
        data.push(field);
        payloads.push((desc, index));
    }
    if data.is_empty() {
        return Err("typeof data is missing".into());
    }
    fn u32_attr(out: &mut Vec<u8>, kind: u8, v: u32) {
        out.extend_from_slice(&[kind, 4]);
        out.extend_from_slice(&v.to_ne_bytes());
    }
    fn nested(out: &mut Vec<u8>, kind: u8, inner: &[u8]) -> Parsed<()> {
        let len = u8::try_from(inner.len()).map_err(|_| "typeof user data too long")?;
        out.extend_from_slice(&[kind, len]);
        out.extend_from_slice(inner);
        Ok(())
    }
    // One typeof expression: its kind (nft's expression type) and its own attributes.
    fn expression(kind: u32, attrs: &[u8]) -> Parsed<Vec<u8>> {
        let mut e = Vec::new();
        u32_attr(&mut e, 0, kind);
        nested(&mut e, 1, attrs)?;
        Ok(e)
    }
    const EXPR_PAYLOAD: u32 = 7;
    const EXPR_CONCAT: u32 = 13;
    const EXPR_NUMGEN: u32 = 23;
    let mut ng = Vec::new();
    u32_attr(&mut ng, 0, 1); // NFT_NG_RANDOM
    u32_attr(&mut ng, 1, modulus);
    u32_attr(&mut ng, 2, offset);
    let key = expression(EXPR_NUMGEN, &ng)?;
    let payload = |(desc, index): (u32, u32)| {
        let mut p = Vec::new();
        u32_attr(&mut p, 0, desc);
        u32_attr(&mut p, 1, index);
        expression(EXPR_PAYLOAD, &p)
    };
    let value = if payloads.len() == 1 {
        payload(payloads[0])?
    } else {
        let mut members = Vec::new();
        for (n, p) in payloads.into_iter().enumerate() {
            nested(&mut members, n as u8, &payload(p)?)?;
        }
        expression(EXPR_CONCAT, &members)?
    };
    let mut udata = Vec::new();
    u32_attr(&mut udata, 0, 1); // key byte order: host
    u32_attr(&mut udata, 1, 0); // data byte order: unset (a concatenation)
    nested(&mut udata, 3, &key)?;
    nested(&mut udata, 4, &value)?;
    u32_attr(&mut udata, 6, 0); // the data is not an interval
    Ok((vec![Field::Integer], data, udata))
}

/// `10800s`, `3m`, `1h`, `500ms`.
fn duration_ms(s: &str) -> Parsed<u64> {
    let split = s
        .find(|c: char| !c.is_ascii_digit())
        .ok_or_else(|| format!("timeout {s:?} needs a unit"))?;
    let (n, unit) = s.split_at(split);
    let n: u64 = n.parse().map_err(|_| format!("bad timeout {s:?}"))?;
    let factor = match unit {
        "ms" => 1,
        "s" => 1000,
        "m" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        _ => return Err(format!("bad timeout unit in {s:?}")),
    };
    Ok(n * factor)
}

/// `k1 . k2 : goto chain, k3 . k4 : drop` (keys only when deleting or in plain sets).
fn elements(set: &SetType, t: &[&str], with_data: bool) -> Parsed<Vec<Element>> {
    let mut out = Vec::new();
    for item in t.split(|w| *w == ",") {
        if item.is_empty() {
            continue;
        }
        let (key_toks, data) = match item.iter().position(|w| *w == ":") {
            Some(p) => (&item[..p], Some(&item[p + 1..])),
            None => (item, None),
        };
        let parts: Vec<&str> = key_toks.iter().copied().filter(|w| *w != ".").collect();
        if parts.len() != set.fields.len() || key_toks.len() != 2 * parts.len() - 1 {
            return Err(format!(
                "element {:?} does not have the set's {} fields",
                key_toks.join(" "),
                set.fields.len()
            ));
        }
        let mut key = Vec::new();
        let concat = set.fields.len() > 1;
        for (field, text) in set.fields.iter().zip(parts) {
            let mut bytes = field_value(*field, text)?;
            if concat {
                bytes.resize(field.wire_len().div_ceil(4) * 4, 0);
            }
            key.extend(bytes);
        }
        let value_map = !set.data.is_empty();
        let verdict = match (data, set.verdict_map, with_data) {
            (Some(d), true, true) => Some(verdict(d)?),
            (None, true, true) => return Err("a map element needs a verdict".into()),
            (Some(_), false, _) if !value_map => return Err("a set element has no data".into()),
            (_, _, _) => None,
        };
        let value = match (data, value_map, with_data) {
            (Some(d), true, true) => Some(fields_value(&set.data, d)?),
            (None, true, true) => return Err("a map element needs a value".into()),
            _ => None,
        };
        out.push(Element {
            key,
            verdict,
            value,
        });
    }
    Ok(out)
}

/// `10.244.1.5 . 8080`: a map's value, each field padded to whole registers when concatenated.
fn fields_value(fields: &[Field], t: &[&str]) -> Parsed<Vec<u8>> {
    let parts: Vec<&str> = t.iter().copied().filter(|w| *w != ".").collect();
    if parts.len() != fields.len() || t.len() != 2 * parts.len() - 1 {
        return Err(format!(
            "value {:?} does not have the map's {} fields",
            t.join(" "),
            fields.len()
        ));
    }
    let mut out = Vec::new();
    for (field, text) in fields.iter().zip(parts) {
        let mut bytes = field_value(*field, text)?;
        if fields.len() > 1 {
            bytes.resize(field.wire_len().div_ceil(4) * 4, 0);
        }
        out.extend(bytes);
    }
    Ok(out)
}

fn verdict(t: &[&str]) -> Parsed<Verdict> {
    Ok(match t {
        ["drop"] => Verdict::Drop,
        ["accept"] => Verdict::Accept,
        ["return"] => Verdict::Return,
        ["jump", c] => Verdict::Jump(name(c)?.to_string()),
        ["goto", c] => Verdict::Goto(name(c)?.to_string()),
        _ => return Err(format!("verdict {:?} is not supported", t.join(" "))),
    })
}

fn field_value(f: Field, s: &str) -> Parsed<Vec<u8>> {
    Ok(match f {
        Field::Ipv4Addr => ipv4(s)?.octets().to_vec(),
        Field::InetProto => vec![protocol(s)?],
        Field::InetService => port(s)?.to_be_bytes().to_vec(),
        Field::Integer => number(s)?.to_ne_bytes().to_vec(),
    })
}

fn ipv4(s: &str) -> Parsed<Ipv4Addr> {
    s.parse()
        .map_err(|_| format!("{s:?} is not an IPv4 address"))
}

fn protocol(s: &str) -> Parsed<u8> {
    Ok(match s {
        "icmp" => 1,
        "tcp" => 6,
        "udp" => 17,
        "sctp" => 132,
        n => n.parse().map_err(|_| format!("{n:?} is not a protocol"))?,
    })
}

fn port(s: &str) -> Parsed<u16> {
    s.parse().map_err(|_| format!("{s:?} is not a port"))
}

fn number(s: &str) -> Parsed<u32> {
    match s.strip_prefix("0x") {
        Some(hex) => u32::from_str_radix(hex, 16),
        None => s.parse(),
    }
    .map_err(|_| format!("{s:?} is not a number"))
}

/// What a selector loads, and so how its values are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Ipv4,
    Proto,
    Port,
    /// A 32-bit integer in host byte order (marks, numgen).
    U32,
    AddrType,
    CtState,
    /// `ct status` bits (`dnat`, `snat`, ...).
    CtStatus,
    /// `ipv4`, `ipv6`.
    NfProto,
    /// An interface kind (`"bridge"`), 16 bytes.
    InterfaceType,
}

/// A selector: the expression that loads it into a register, and its length.
struct Selector {
    load: Expr,
    kind: Kind,
    len: usize,
}

impl Selector {
    fn into(mut self, reg: u32) -> Expr {
        match &mut self.load {
            Expr::Payload { dreg, .. }
            | Expr::Meta { dreg, .. }
            | Expr::Fib { dreg, .. }
            | Expr::Ct { dreg, .. }
            | Expr::Numgen { dreg, .. } => *dreg = reg,
            _ => unreachable!("selectors load"),
        }
        self.load
    }
}

fn payload(base: u32, offset: u32, len: u32) -> Expr {
    Expr::Payload {
        dreg: REG_1,
        base,
        offset,
        len,
    }
}

/// A rule's words, consumed left to right.
struct Rule<'a, 'b> {
    t: &'b [&'a str],
    i: usize,
    family: NftFamily,
    /// The declared type of a set of the rule's table, by name.
    sets: &'b dyn Fn(&str) -> Option<SetType>,
    exprs: Vec<Expr>,
    /// The rule already checks the packet is IPv4 (an inet table's `ip` matches need it once).
    ipv4_known: bool,
    /// The transport protocol the rule already checks for.
    l4proto: Option<u8>,
}

fn rule(
    family: NftFamily,
    t: &[&str],
    sets: &dyn Fn(&str) -> Option<SetType>,
) -> Parsed<Vec<Expr>> {
    let mut r = Rule {
        t,
        i: 0,
        family,
        sets,
        exprs: Vec::new(),
        ipv4_known: family == NftFamily::Ip,
        l4proto: None,
    };
    while r.i < t.len() {
        r.statement()?;
    }
    if r.exprs.is_empty() {
        return Err("an empty rule".into());
    }
    Ok(r.exprs)
}

impl<'a> Rule<'a, '_> {
    fn peek(&self, k: usize) -> Option<&'a str> {
        self.t.get(self.i + k).copied()
    }

    fn next(&mut self) -> Parsed<&'a str> {
        let w = self.peek(0).ok_or("the rule ends too early")?;
        self.i += 1;
        Ok(w)
    }

    fn expect(&mut self, w: &str) -> Parsed<()> {
        match self.next()? {
            got if got == w => Ok(()),
            got => Err(format!("expected {w:?}, found {got:?}")),
        }
    }

    fn verdict(&mut self, v: Verdict) {
        self.exprs.push(Expr::Immediate {
            dreg: REG_VERDICT,
            data: Data::Verdict(v),
        });
    }

    fn statement(&mut self) -> Parsed<()> {
        match self.peek(0).unwrap_or_default() {
            "jump" | "goto" => {
                let kind = self.next()?;
                let chain = name(self.next()?)?.to_string();
                self.verdict(if kind == "jump" {
                    Verdict::Jump(chain)
                } else {
                    Verdict::Goto(chain)
                });
            }
            "return" | "drop" | "accept" => {
                let v = match self.next()? {
                    "return" => Verdict::Return,
                    "drop" => Verdict::Drop,
                    _ => Verdict::Accept,
                };
                self.verdict(v);
            }
            "counter" if self.peek(1) == Some("name") => {
                self.i += 2;
                let name = unquote(self.next()?)?.to_string();
                crate::script::identifier(&name).map_err(|e| e.to_string())?;
                self.exprs.push(Expr::CounterRef { name });
            }
            "counter" => {
                self.i += 1;
                self.exprs.push(Expr::Counter);
            }
            "limit" => self.limit()?,
            "log" => self.log()?,
            "reject" => {
                self.i += 1;
                if self.peek(0) == Some("with") {
                    self.i += 1;
                    self.expect("tcp")?;
                    self.expect("reset")?;
                    // nft adds `meta l4proto tcp` itself when the rule lacks it; podnet writes it.
                    if self.l4proto != Some(6) {
                        return Err("`reject with tcp reset` needs `meta l4proto tcp` first".into());
                    }
                    self.exprs.push(Expr::Reject { kind: 1, code: 0 });
                } else if self.family == NftFamily::Ip {
                    // ICMP port unreachable, as nft writes a bare `reject` in an ip table.
                    self.exprs.push(Expr::Reject { kind: 0, code: 3 });
                } else {
                    return Err("a bare reject outside an ip table is not supported".into());
                }
            }
            "masquerade" => {
                self.i += 1;
                let mut flags = 0;
                let nat_flag = |f: &str| match f {
                    "random" => Some(0x4),
                    "persistent" => Some(0x8),
                    "fully-random" => Some(0x10),
                    _ => None,
                };
                // nft's syntax: one word, flags separated by commas (`random,persistent`).
                if let Some(w) = self.peek(0)
                    && w.split(',').all(|f| nat_flag(f).is_some())
                {
                    flags = w.split(',').filter_map(nat_flag).sum();
                    self.i += 1;
                }
                self.exprs.push(Expr::Masq { flags });
            }
            "dnat" => self.dnat()?,
            "update" => {
                self.i += 1;
                let set = self.set_ref()?;
                self.expect("{")?;
                let sel = self.selector()?;
                self.expect("}")?;
                self.check_set(&set, &[sel.kind], false)?;
                self.exprs.push(sel.into(REG_1));
                self.exprs.push(Expr::Dynset {
                    set,
                    op: 1,
                    sreg_key: REG_1,
                });
            }
            "meta" if self.peek(2) == Some("set") => self.meta_set()?,
            _ => self.matching()?,
        }
        Ok(())
    }

    /// `limit rate N/UNIT burst M packets`.
    fn limit(&mut self) -> Parsed<()> {
        self.expect("limit")?;
        self.expect("rate")?;
        let r = self.next()?;
        let (n, unit) = r
            .split_once('/')
            .ok_or_else(|| format!("rate {r:?} needs a unit"))?;
        let rate: u64 = n.parse().map_err(|_| format!("bad rate {r:?}"))?;
        let unit = match unit {
            "second" => 1,
            "minute" => 60,
            "hour" => 3600,
            "day" => 86400,
            u => return Err(format!("rate unit {u:?} is not supported")),
        };
        let mut burst = 5;
        if self.peek(0) == Some("burst") {
            self.i += 1;
            burst = number(self.next()?)?;
            self.expect("packets")?;
        }
        self.exprs.push(Expr::Limit { rate, unit, burst });
        Ok(())
    }

    /// `log prefix "..." group G snaplen S` (NFLOG).
    fn log(&mut self) -> Parsed<()> {
        self.expect("log")?;
        let (mut prefix, mut group, mut snaplen) = (None, None, None);
        loop {
            match self.peek(0) {
                Some("prefix") => {
                    self.i += 1;
                    prefix = Some(unquote(self.next()?)?.to_string());
                }
                Some("group") => {
                    self.i += 1;
                    group = Some(
                        u16::try_from(number(self.next()?)?)
                            .map_err(|_| "a log group is 16 bits".to_string())?,
                    );
                }
                Some("snaplen") => {
                    self.i += 1;
                    snaplen = Some(number(self.next()?)?);
                }
                _ => break,
            }
        }
        self.exprs.push(Expr::Log {
            group: group.ok_or("only logging to an NFLOG group is supported")?,
            prefix,
            snaplen,
        });
        Ok(())
    }

    /// `meta nfproto ipv4` before an inet table's first `ip` match, as nft adds it.
    fn need_ipv4(&mut self) {
        if !self.ipv4_known {
            self.exprs.push(Expr::Meta {
                key: 15,
                dreg: REG_1,
            });
            self.exprs.push(Expr::Cmp {
                sreg: REG_1,
                op: CmpOp::Eq,
                data: vec![2],
            });
            self.ipv4_known = true;
        }
    }

    fn set_ref(&mut self) -> Parsed<String> {
        let w = self.next()?;
        let n = w
            .strip_prefix('@')
            .ok_or_else(|| format!("expected @set, found {w:?}"))?;
        Ok(name(n)?.to_string())
    }

    /// `dnat to ADDR[:PORT]` in an ip table.
    fn dnat(&mut self) -> Parsed<()> {
        self.i += 1;
        if self.family != NftFamily::Ip {
            return Err("dnat outside an ip table is not supported".into());
        }
        self.expect("to")?;
        if self.peek(0) == Some("numgen") {
            return self.dnat_by_map();
        }
        let target = self.next()?;
        let (addr, port) = match target.split_once(':') {
            Some((a, p)) => (a, Some(self::port(p)?)),
            None => (target, None),
        };
        if port.is_some() && self.l4proto.is_none() {
            return Err("dnat to a port needs a transport protocol match first".into());
        }
        self.exprs.push(Expr::Immediate {
            dreg: REG_1,
            data: Data::Value(ipv4(addr)?.octets().to_vec()),
        });
        if let Some(p) = port {
            self.exprs.push(Expr::Immediate {
                dreg: super::ir::REG_2,
                data: Data::Value(p.to_be_bytes().to_vec()),
            });
        }
        self.exprs.push(Expr::Nat {
            kind: 1,
            family: 2,
            addr: Some(REG_1),
            proto: port.map(|_| super::ir::REG_2),
            // NF_NAT_RANGE_PROTO_SPECIFIED, as nft sets it with a port.
            flags: if port.is_some() { 0x2 } else { 0 },
        });
        Ok(())
    }

    /// `dnat to numgen random mod N [offset O] map @m`, `m` mapping the number to an address and
    /// a port: the number in register 1, looked up into register 1 (the address) and the next
    /// 32-bit register (the port), as nft writes it.
    fn dnat_by_map(&mut self) -> Parsed<()> {
        let sel = self.selector()?;
        if sel.kind != Kind::U32 {
            return Err("dnat through a map is supported with a numgen key only".into());
        }
        self.expect("map")?;
        let set = self.set_ref()?;
        let declared = (self.sets)(&set).ok_or_else(|| format!("set {set} was not declared"))?;
        if declared.fields != [Field::Integer]
            || declared.data != [Field::Ipv4Addr, Field::InetService]
        {
            return Err(format!(
                "{set} is not a map from a number to an address and a port"
            ));
        }
        if self.l4proto.is_none() {
            return Err("dnat to a port needs a transport protocol match first".into());
        }
        self.exprs.push(sel.into(REG_1));
        self.exprs.push(Expr::Lookup {
            set,
            sreg: REG_1,
            dreg: Some(REG_1),
            invert: false,
        });
        self.exprs.push(Expr::Nat {
            kind: 1,
            family: 2,
            addr: Some(REG_1),
            proto: Some(REG32_00 + 1),
            // nft sends no flags here; the kernel sets "proto specified" for the port register.
            flags: 0,
        });
        Ok(())
    }

    /// `meta mark set meta mark | C` (also `^`, `&`) or `meta mark set C`.
    fn meta_set(&mut self) -> Parsed<()> {
        self.expect("meta")?;
        self.expect("mark")?;
        self.expect("set")?;
        if self.peek(0) == Some("meta") {
            self.expect("meta")?;
            self.expect("mark")?;
            self.exprs.push(Expr::Meta {
                key: 3,
                dreg: REG_1,
            });
            let op = self.next()?;
            let c = number(self.next()?)?;
            let (mask, xor) = match op {
                "|" => (!c, c),
                "^" => (u32::MAX, c),
                "&" => (c, 0),
                _ => return Err(format!("mark operator {op:?} is not supported")),
            };
            self.exprs.push(Expr::Bitwise {
                sreg: REG_1,
                dreg: REG_1,
                mask: mask.to_ne_bytes().to_vec(),
                xor: xor.to_ne_bytes().to_vec(),
            });
        } else {
            let c = number(self.next()?)?;
            self.exprs.push(Expr::Immediate {
                dreg: REG_1,
                data: Data::Value(c.to_ne_bytes().to_vec()),
            });
        }
        self.exprs.push(Expr::MetaSet {
            key: 3,
            sreg: REG_1,
        });
        Ok(())
    }

    fn selector(&mut self) -> Parsed<Selector> {
        let w = self.next()?;
        if w == "ip" {
            self.need_ipv4();
        }
        let sel = match (w, self.peek(0)) {
            ("ip", Some(f @ ("saddr" | "daddr"))) => Selector {
                load: payload(1, if f == "saddr" { 12 } else { 16 }, 4),
                kind: Kind::Ipv4,
                len: 4,
            },
            ("ip", Some("protocol")) => Selector {
                load: payload(1, 9, 1),
                kind: Kind::Proto,
                len: 1,
            },
            (proto @ ("tcp" | "udp" | "sctp"), Some(f @ ("sport" | "dport"))) => {
                // As nft: the protocol is checked first, unless the rule already did.
                let number = self::protocol(proto)?;
                if self.l4proto.is_some_and(|p| p != number) {
                    return Err("conflicting protocols in one rule".into());
                }
                if self.l4proto != Some(number) {
                    self.exprs.push(Expr::Meta {
                        key: 16,
                        dreg: REG_1,
                    });
                    self.exprs.push(Expr::Cmp {
                        sreg: REG_1,
                        op: CmpOp::Eq,
                        data: vec![number],
                    });
                    self.l4proto = Some(number);
                }
                Selector {
                    load: payload(2, if f == "sport" { 0 } else { 2 }, 2),
                    kind: Kind::Port,
                    len: 2,
                }
            }
            ("meta", Some("nfproto")) => Selector {
                load: Expr::Meta {
                    key: 15,
                    dreg: REG_1,
                },
                kind: Kind::NfProto,
                len: 1,
            },
            ("meta", Some(k @ ("iifkind" | "oifkind"))) => Selector {
                load: Expr::Meta {
                    key: if k == "iifkind" { 26 } else { 27 },
                    dreg: REG_1,
                },
                kind: Kind::InterfaceType,
                len: 16,
            },
            ("th", Some(f @ ("sport" | "dport"))) => Selector {
                load: payload(2, if f == "sport" { 0 } else { 2 }, 2),
                kind: Kind::Port,
                len: 2,
            },
            ("meta", Some("l4proto")) => Selector {
                load: Expr::Meta {
                    key: 16,
                    dreg: REG_1,
                },
                kind: Kind::Proto,
                len: 1,
            },
            ("meta", Some("mark")) => Selector {
                load: Expr::Meta {
                    key: 3,
                    dreg: REG_1,
                },
                kind: Kind::U32,
                len: 4,
            },
            ("ct", Some("status")) => Selector {
                load: Expr::Ct {
                    key: 2,
                    dreg: REG_1,
                },
                kind: Kind::CtStatus,
                len: 4,
            },
            ("ct", Some("state")) => Selector {
                load: Expr::Ct {
                    key: 0,
                    dreg: REG_1,
                },
                kind: Kind::CtState,
                len: 4,
            },
            ("fib", Some(f @ ("saddr" | "daddr"))) => {
                self.i += 1;
                if self.peek(0) != Some("type") {
                    return Err("only `fib saddr|daddr type` is supported".into());
                }
                Selector {
                    load: Expr::Fib {
                        dreg: REG_1,
                        result: 3,
                        flags: if f == "saddr" { 1 } else { 2 },
                    },
                    kind: Kind::AddrType,
                    len: 4,
                }
            }
            ("numgen", Some("random")) => {
                self.i += 1;
                self.expect("mod")?;
                let modulus = number(self.peek(0).ok_or("a modulus is missing")?)?;
                if modulus == 0 {
                    return Err("numgen needs a modulus above 0".into());
                }
                let mut offset = 0;
                if self.peek(1) == Some("offset") {
                    self.i += 2;
                    offset = number(self.peek(0).ok_or("an offset is missing")?)?;
                }
                Selector {
                    load: Expr::Numgen {
                        dreg: REG_1,
                        modulus,
                        kind: 1,
                        offset,
                    },
                    kind: Kind::U32,
                    len: 4,
                }
            }
            (w, next) => {
                return Err(format!(
                    "selector {w:?} {:?} is not supported",
                    next.unwrap_or_default()
                ));
            }
        };
        self.i += 1;
        Ok(sel)
    }

    /// A match: a selector (or a concatenation) then a lookup, a comparison or a masked comparison.
    fn matching(&mut self) -> Parsed<()> {
        let mut sels = vec![self.selector()?];
        while self.peek(0) == Some(".") {
            self.i += 1;
            sels.push(self.selector()?);
        }
        if sels.len() > 1 || self.peek(0) == Some("vmap") || self.peek(0).is_some_and(is_set) {
            return self.lookup(sels);
        }
        let sel = sels.pop().expect("one selector");
        let (kind, len) = (sel.kind, sel.len);
        let load = sel.into(REG_1);
        let mut op = CmpOp::Eq;
        match self.peek(0) {
            Some("!=") => {
                op = CmpOp::Neq;
                self.i += 1;
            }
            Some("==") => self.i += 1,
            Some("&") => {
                self.i += 1;
                let mask = self.value_u32(kind)?;
                op = match self.next()? {
                    "==" => CmpOp::Eq,
                    "!=" => CmpOp::Neq,
                    o => return Err(format!("expected == or != after a mask, found {o:?}")),
                };
                let value = self.value_u32(kind)?;
                self.masked_cmp(load, mask.to_ne_bytes(), op, value.to_ne_bytes());
                return Ok(());
            }
            _ => {}
        }
        let w = self.next()?;
        match kind {
            Kind::Ipv4 => self.ipv4_match(load, op, w),
            Kind::CtState | Kind::CtStatus => {
                let (what, names): (&str, &[(&str, u32)]) = if kind == Kind::CtState {
                    ("ct state", CT_STATES)
                } else {
                    ("ct status", CT_STATUSES)
                };
                if op != CmpOp::Eq {
                    return Err(format!("a negated {what} is not supported"));
                }
                let mut mask = 0u32;
                for s in w.split(',') {
                    mask |= names
                        .iter()
                        .find(|(n, _)| *n == s)
                        .map(|(_, bit)| *bit)
                        .ok_or_else(|| format!("{what} {s:?} is not supported"))?;
                }
                // As nft does: the bits are tested, so `new` is "the new bit is set".
                self.masked_cmp(load, mask.to_ne_bytes(), CmpOp::Neq, [0; 4]);
                Ok(())
            }
            Kind::Port if w.contains('-') => {
                let (from, to) = w.split_once('-').expect("a dash");
                if op != CmpOp::Eq {
                    return Err("a negated port range is not supported".into());
                }
                if port(from)? > port(to)? {
                    return Err(format!("port range {w:?} is empty"));
                }
                self.exprs.push(load);
                for (op, p) in [(CmpOp::Gte, from), (CmpOp::Lte, to)] {
                    self.exprs.push(Expr::Cmp {
                        sreg: REG_1,
                        op,
                        data: port(p)?.to_be_bytes().to_vec(),
                    });
                }
                Ok(())
            }
            _ => {
                let data = scalar(kind, w)?;
                debug_assert_eq!(data.len(), len);
                if op == CmpOp::Eq {
                    match (kind, &load) {
                        (Kind::Proto, Expr::Meta { .. }) => {
                            if self.l4proto.is_some_and(|p| p != data[0]) {
                                return Err("conflicting protocols in one rule".into());
                            }
                            self.l4proto = Some(data[0]);
                        }
                        (Kind::NfProto, _) if data[0] == 2 => self.ipv4_known = true,
                        _ => {}
                    }
                }
                self.exprs.push(load);
                self.exprs.push(Expr::Cmp {
                    sreg: REG_1,
                    op,
                    data,
                });
                Ok(())
            }
        }
    }

    fn value_u32(&mut self, kind: Kind) -> Parsed<u32> {
        if kind != Kind::U32 {
            return Err("a mask on anything but a 32-bit integer is not supported".into());
        }
        number(self.next()?)
    }

    /// `load`, then `(reg & mask) OP data` on 32 bits.
    fn masked_cmp(&mut self, load: Expr, mask: [u8; 4], op: CmpOp, data: [u8; 4]) {
        self.exprs.push(load);
        self.exprs.push(Expr::Bitwise {
            sreg: REG_1,
            dreg: REG_1,
            mask: mask.to_vec(),
            xor: vec![0; 4],
        });
        self.exprs.push(Expr::Cmp {
            sreg: REG_1,
            op,
            data: data.to_vec(),
        });
    }

    /// An address or a prefix; whole-byte prefixes load only their bytes, as nft does.
    fn ipv4_match(&mut self, load: Expr, op: CmpOp, w: &str) -> Parsed<()> {
        let (addr, bits) = match w.split_once('/') {
            Some((a, b)) => (
                ipv4(a)?,
                b.parse::<u32>()
                    .ok()
                    .filter(|b| *b <= 32)
                    .ok_or_else(|| format!("bad prefix in {w:?}"))?,
            ),
            None => (ipv4(w)?, 32),
        };
        let Expr::Payload {
            dreg, base, offset, ..
        } = load
        else {
            unreachable!("addresses are payload")
        };
        let octets = addr.octets();
        // As nft: whole-byte prefixes load only their bytes; others (and /0) are masked.
        if bits % 8 == 0 && bits > 0 {
            let n = bits / 8;
            self.exprs.push(Expr::Payload {
                dreg,
                base,
                offset,
                len: n,
            });
            self.exprs.push(Expr::Cmp {
                sreg: REG_1,
                op,
                data: octets[..n as usize].to_vec(),
            });
        } else {
            let mask = u32::MAX.checked_shl(32 - bits).unwrap_or(0);
            let net = u32::from(addr) & mask;
            self.masked_cmp(load, mask.to_be_bytes(), op, net.to_be_bytes());
        }
        Ok(())
    }

    /// `SEL [. SEL]* vmap @map` or `SEL [. SEL]* @set`: each field in the next 4-byte registers.
    fn lookup(&mut self, sels: Vec<Selector>) -> Parsed<()> {
        let concat = sels.len() > 1;
        let kinds: Vec<Kind> = sels.iter().map(|s| s.kind).collect();
        let mut words = 0;
        for (n, sel) in sels.into_iter().enumerate() {
            let len = sel.len;
            let reg = if n == 0 { REG_1 } else { REG32_00 + words };
            words += len.div_ceil(4) as u32;
            if !concat && !matches!(sel.kind, Kind::Ipv4 | Kind::Proto | Kind::Port) {
                return Err("a lookup of this selector is not supported".into());
            }
            self.exprs.push(sel.into(reg));
        }
        let dreg = if self.peek(0) == Some("vmap") {
            self.i += 1;
            Some(REG_VERDICT)
        } else {
            None
        };
        let set = self.set_ref()?;
        self.check_set(&set, &kinds, dreg.is_some())?;
        self.exprs.push(Expr::Lookup {
            set,
            sreg: REG_1,
            dreg,
            invert: false,
        });
        Ok(())
    }

    /// A lookup or update must name a declared set whose fields are what the rule loads, in that
    /// order (nft refuses a datatype mismatch; the kernel would compare the wrong bytes).
    fn check_set(&self, set: &str, kinds: &[Kind], verdict_map: bool) -> Parsed<()> {
        let declared = (self.sets)(set).ok_or_else(|| format!("set {set} was not declared"))?;
        let field = |k: &Kind| match k {
            Kind::Ipv4 => Some(Field::Ipv4Addr),
            Kind::Proto => Some(Field::InetProto),
            Kind::Port => Some(Field::InetService),
            _ => None,
        };
        let fields: Option<Vec<Field>> = kinds.iter().map(field).collect();
        if fields.as_deref() != Some(declared.fields.as_slice()) {
            return Err(format!(
                "the rule's key does not match the type of set {set}"
            ));
        }
        if !declared.data.is_empty() {
            return Err(format!("{set} maps to values; only a dnat can look it up"));
        }
        if declared.verdict_map != verdict_map {
            return Err(format!(
                "{set} is {}",
                if declared.verdict_map {
                    "a verdict map (use vmap)"
                } else {
                    "not a verdict map"
                }
            ));
        }
        Ok(())
    }
}

/// `ct state` names and their bits.
const CT_STATES: &[(&str, u32)] = &[
    ("invalid", 1),
    ("established", 2),
    ("related", 4),
    ("new", 8),
    ("untracked", 64),
];

/// `ct status` names and their bits (IPS_*).
const CT_STATUSES: &[(&str, u32)] = &[
    ("expected", 0x1),
    ("seen-reply", 0x2),
    ("assured", 0x4),
    ("confirmed", 0x8),
    ("snat", 0x10),
    ("dnat", 0x20),
    ("dying", 0x200),
];

fn is_set(w: &str) -> bool {
    w.starts_with('@')
}

fn scalar(kind: Kind, w: &str) -> Parsed<Vec<u8>> {
    Ok(match kind {
        Kind::Proto => vec![protocol(w)?],
        Kind::Port => port(w)?.to_be_bytes().to_vec(),
        Kind::U32 => number(w)?.to_ne_bytes().to_vec(),
        Kind::AddrType => {
            let t: u32 = match w {
                "unicast" => 1,
                "local" => 2,
                "broadcast" => 3,
                "anycast" => 4,
                "multicast" => 5,
                other => return Err(format!("address type {other:?} is not supported")),
            };
            t.to_ne_bytes().to_vec()
        }
        Kind::NfProto => vec![match w {
            "ipv4" => 2,
            "ipv6" => 10,
            other => return Err(format!("nfproto {other:?} is not supported")),
        }],
        Kind::InterfaceType => {
            let k = unquote(w)?;
            if k.len() >= 16 {
                return Err(format!("interface kind {k:?} is too long"));
            }
            let mut v = k.as_bytes().to_vec();
            v.resize(16, 0);
            v
        }
        Kind::Ipv4 | Kind::CtState | Kind::CtStatus => unreachable!("handled by the caller"),
    })
}

#[cfg(test)]
mod tests;
