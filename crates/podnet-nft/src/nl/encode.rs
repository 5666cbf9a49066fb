//! [`Command`]s as one nf_tables netlink batch (pure): `BATCH_BEGIN`, one message per command (set
//! elements split so no attribute outgrows its 16-bit length), `BATCH_END`. Each message carries
//! its own sequence number, so an error from the kernel names the command that caused it.

use super::ir::{Command, Data, Element, Expr, Hook, Op, SetType, Verdict};

const NFNL_SUBSYS_NFTABLES: u16 = 10;
const BATCH_BEGIN: u16 = 0x10;
const BATCH_END: u16 = 0x11;

const NLM_F_REQUEST: u16 = 0x1;
const NLM_F_CREATE: u16 = 0x400;
const NLM_F_APPEND: u16 = 0x800;
const NLA_F_NESTED: u16 = 0x8000;

const MSG_NEWTABLE: u16 = 0;
const MSG_DELTABLE: u16 = 2;
const MSG_NEWCHAIN: u16 = 3;
const MSG_DELCHAIN: u16 = 5;
const MSG_NEWRULE: u16 = 6;
const MSG_DELRULE: u16 = 8;
const MSG_NEWSET: u16 = 9;
const MSG_DELSET: u16 = 11;
const MSG_NEWSETELEM: u16 = 12;
const MSG_DELSETELEM: u16 = 14;
const MSG_NEWOBJ: u16 = 18;
const MSG_DELOBJ: u16 = 20;
const NFT_OBJECT_COUNTER: u32 = 1;

/// Element bytes per NEWSETELEM message: attribute lengths are 16 bits.
const ELEMENT_BYTES: usize = 48 * 1024;

/// A netlink message under construction: attributes, nested ones by a stack of open offsets.
pub(crate) struct Msg {
    buf: Vec<u8>,
    open: Vec<usize>,
    /// An attribute outgrew its 16-bit length (the kernel would misread the message).
    overflow: bool,
}

/// A command that does not fit nf_tables' message format.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EncodeError {
    pub command: String,
    pub reason: String,
}

impl Msg {
    pub(crate) fn new(kind: u16, flags: u16, family: u8, seq: u32) -> Msg {
        let mut buf = Vec::with_capacity(256);
        buf.extend_from_slice(&0u32.to_ne_bytes()); // length, set by `finish`
        buf.extend_from_slice(&((NFNL_SUBSYS_NFTABLES << 8) | kind).to_ne_bytes());
        buf.extend_from_slice(&(NLM_F_REQUEST | flags).to_ne_bytes());
        buf.extend_from_slice(&seq.to_ne_bytes());
        buf.extend_from_slice(&0u32.to_ne_bytes()); // port id: the kernel's
        buf.extend_from_slice(&[family, 0, 0, 0]); // nfgenmsg: family, version 0, res_id 0
        Msg {
            buf,
            open: Vec::new(),
            overflow: false,
        }
    }

    fn batch(kind: u16, seq: u32) -> Vec<u8> {
        let mut m = Msg::new(0, 0, 0, seq);
        m.buf[4..6].copy_from_slice(&kind.to_ne_bytes());
        // The batch messages name the subsystem in res_id (big endian).
        m.buf[18..20].copy_from_slice(&NFNL_SUBSYS_NFTABLES.to_be_bytes());
        m.finish()
    }

    fn attr(&mut self, kind: u16, value: &[u8]) -> &mut Msg {
        let len = 4 + value.len();
        self.overflow |= len > usize::from(u16::MAX);
        self.buf.extend_from_slice(&(len as u16).to_ne_bytes());
        self.buf.extend_from_slice(&kind.to_ne_bytes());
        self.buf.extend_from_slice(value);
        self.pad();
        self
    }

    fn pad(&mut self) {
        while !self.buf.len().is_multiple_of(4) {
            self.buf.push(0);
        }
    }

    pub(crate) fn str(&mut self, kind: u16, s: &str) -> &mut Msg {
        let mut v = Vec::with_capacity(s.len() + 1);
        v.extend_from_slice(s.as_bytes());
        v.push(0);
        self.attr(kind, &v)
    }

    fn be32(&mut self, kind: u16, v: u32) -> &mut Msg {
        self.attr(kind, &v.to_be_bytes())
    }

    fn be64(&mut self, kind: u16, v: u64) -> &mut Msg {
        self.attr(kind, &v.to_be_bytes())
    }

    fn begin(&mut self, kind: u16) -> &mut Msg {
        self.open.push(self.buf.len());
        self.buf.extend_from_slice(&0u16.to_ne_bytes());
        self.buf
            .extend_from_slice(&(kind | NLA_F_NESTED).to_ne_bytes());
        self
    }

    fn end(&mut self) -> &mut Msg {
        let start = self.open.pop().expect("a nest is open");
        let len = self.buf.len() - start;
        self.overflow |= len > usize::from(u16::MAX);
        self.buf[start..start + 2].copy_from_slice(&(len as u16).to_ne_bytes());
        self
    }

    pub(crate) fn finish(mut self) -> Vec<u8> {
        assert!(self.open.is_empty(), "every nest is closed");
        let len = self.buf.len() as u32;
        self.buf[0..4].copy_from_slice(&len.to_ne_bytes());
        if self.overflow {
            // An empty buffer marks the message as unsendable (see `batch`).
            self.buf.clear();
        }
        self.buf
    }

    /// `NFTA_DATA_VALUE` or `NFTA_DATA_VERDICT` inside an already opened data attribute.
    fn data(&mut self, d: &Data) -> &mut Msg {
        match d {
            Data::Value(v) => self.attr(1, v),
            Data::Verdict(v) => self.verdict(v),
        }
    }

    fn verdict(&mut self, v: &Verdict) -> &mut Msg {
        self.begin(2).be32(1, v.code() as u32);
        if let Some(c) = v.chain() {
            self.str(2, c);
        }
        self.end()
    }
}

/// A batch: the bytes to send and, per sequence number, the command it carries.
pub struct Batch {
    pub bytes: Vec<u8>,
    /// `(first sequence number, command index)`, ascending.
    pub seqs: Vec<(u32, usize)>,
    /// The first sequence number after the batch.
    pub next_seq: u32,
}

impl Batch {
    /// The index of the command that message `seq` belongs to.
    pub fn command_of(&self, seq: u32) -> Option<usize> {
        let at = self.seqs.partition_point(|(s, _)| *s <= seq);
        at.checked_sub(1).map(|i| self.seqs[i].1)
    }
}

/// Encodes `cmds` as one batch whose sequence numbers start at `seq`.
pub fn batch(cmds: &[Command], mut seq: u32) -> Result<Batch, EncodeError> {
    let mut bytes = Msg::batch(BATCH_BEGIN, seq);
    seq += 1;
    let mut seqs = Vec::with_capacity(cmds.len());
    for (i, c) in cmds.iter().enumerate() {
        seqs.push((seq, i));
        for m in messages(c, &mut seq) {
            if m.is_empty() {
                return Err(EncodeError {
                    command: c.source.clone(),
                    reason: "a netlink attribute longer than 64 KiB".into(),
                });
            }
            bytes.extend_from_slice(&m);
        }
    }
    bytes.extend_from_slice(&Msg::batch(BATCH_END, seq));
    Ok(Batch {
        bytes,
        seqs,
        next_seq: seq + 1,
    })
}

fn messages(c: &Command, seq: &mut u32) -> Vec<Vec<u8>> {
    let family = c.family as u8;
    let mut next = || {
        let s = *seq;
        *seq += 1;
        s
    };
    let one = |m: Msg| vec![m.finish()];
    match &c.op {
        Op::AddTable => {
            let mut m = Msg::new(MSG_NEWTABLE, NLM_F_CREATE, family, next());
            m.str(1, &c.table).be32(2, 0);
            one(m)
        }
        Op::DeleteTable => {
            let mut m = Msg::new(MSG_DELTABLE, 0, family, next());
            m.str(1, &c.table);
            one(m)
        }
        Op::FlushTable => {
            let mut m = Msg::new(MSG_DELRULE, 0, family, next());
            m.str(1, &c.table);
            one(m)
        }
        Op::FlushSet { name } => {
            let mut m = Msg::new(MSG_DELSETELEM, 0, family, next());
            m.str(1, &c.table).str(2, name);
            one(m)
        }
        Op::AddCounter { name } => {
            let mut m = Msg::new(MSG_NEWOBJ, NLM_F_CREATE, family, next());
            m.str(1, &c.table)
                .str(2, name)
                .be32(3, NFT_OBJECT_COUNTER)
                .begin(4)
                .be64(1, 0)
                .be64(2, 0)
                .end();
            one(m)
        }
        Op::DeleteCounter { name } => {
            let mut m = Msg::new(MSG_DELOBJ, 0, family, next());
            m.str(1, &c.table).str(2, name).be32(3, NFT_OBJECT_COUNTER);
            one(m)
        }
        Op::AddChain { name, hook } => {
            let mut m = Msg::new(MSG_NEWCHAIN, NLM_F_CREATE, family, next());
            m.str(1, &c.table).str(3, name);
            if let Some(h) = hook {
                chain_hook(&mut m, h);
            }
            one(m)
        }
        Op::FlushChain { name } => {
            let mut m = Msg::new(MSG_DELRULE, 0, family, next());
            m.str(1, &c.table).str(2, name);
            one(m)
        }
        Op::DeleteChain { name } => {
            let mut m = Msg::new(MSG_DELCHAIN, 0, family, next());
            m.str(1, &c.table).str(3, name);
            one(m)
        }
        Op::AddRule { chain, exprs } => {
            let mut m = Msg::new(MSG_NEWRULE, NLM_F_CREATE | NLM_F_APPEND, family, next());
            m.str(1, &c.table).str(2, chain).begin(4);
            for e in exprs {
                expr(&mut m, e);
            }
            m.end();
            one(m)
        }
        Op::AddSet { name, set } => {
            // The kernel wants an ID per new set (anonymous sets are named by it); the message's
            // sequence number is unique in the batch.
            let id = next();
            let mut m = Msg::new(MSG_NEWSET, NLM_F_CREATE, family, id);
            new_set(&mut m, &c.table, name, set, id);
            one(m)
        }
        Op::DeleteSet { name } => {
            let mut m = Msg::new(MSG_DELSET, 0, family, next());
            m.str(1, &c.table).str(2, name);
            one(m)
        }
        Op::AddElements { set, elements } | Op::DeleteElements { set, elements } => {
            let (kind, flags) = match c.op {
                Op::AddElements { .. } => (MSG_NEWSETELEM, NLM_F_CREATE),
                _ => (MSG_DELSETELEM, 0),
            };
            let mut out = Vec::new();
            for chunk in chunks(elements) {
                let mut m = Msg::new(kind, flags, family, next());
                m.str(1, &c.table).str(2, set).begin(3);
                for e in chunk {
                    element(&mut m, e);
                }
                m.end();
                out.push(m.finish());
            }
            out
        }
    }
}

/// Splits elements so each message's element list stays under [`ELEMENT_BYTES`].
fn chunks(elements: &[Element]) -> Vec<&[Element]> {
    let mut out = Vec::new();
    let (mut start, mut size) = (0, 0);
    for (i, e) in elements.iter().enumerate() {
        let cost = 32
            + e.key.len()
            + e.value.as_ref().map_or(0, |v| 8 + v.len())
            + e.verdict
                .as_ref()
                .and_then(Verdict::chain)
                .map_or(0, str::len);
        if size + cost > ELEMENT_BYTES && i > start {
            out.push(&elements[start..i]);
            (start, size) = (i, 0);
        }
        size += cost;
    }
    if start < elements.len() || elements.is_empty() {
        out.push(&elements[start..]);
    }
    out
}

fn element(m: &mut Msg, e: &Element) {
    m.begin(1); // NFTA_LIST_ELEM
    m.begin(1).attr(1, &e.key).end(); // NFTA_SET_ELEM_KEY { NFTA_DATA_VALUE }
    if let Some(v) = &e.verdict {
        m.begin(2).verdict(v).end(); // NFTA_SET_ELEM_DATA { NFTA_DATA_VERDICT }
    }
    if let Some(v) = &e.value {
        m.begin(2).attr(1, v).end(); // NFTA_SET_ELEM_DATA { NFTA_DATA_VALUE }
    }
    m.end();
}

fn chain_hook(m: &mut Msg, h: &Hook) {
    m.begin(4) // NFTA_CHAIN_HOOK
        .be32(1, h.hook)
        .be32(2, h.priority as u32)
        .end();
    m.be32(5, h.policy).str(7, &h.kind);
}

fn new_set(m: &mut Msg, table: &str, name: &str, set: &SetType, id: u32) {
    const NFT_SET_MAP: u32 = 0x8;
    const NFT_DATA_VERDICT: u32 = 0xffff_ff00;
    let is_map = set.verdict_map || !set.data.is_empty();
    let flags = set.flags | if is_map { NFT_SET_MAP } else { 0 };
    m.str(1, table)
        .str(2, name)
        .be32(3, flags)
        .be32(4, set.key_type())
        .be32(5, set.key_len() as u32);
    if set.verdict_map {
        m.be32(6, NFT_DATA_VERDICT);
    } else if !set.data.is_empty() {
        m.be32(6, set.data_type()).be32(7, set.data_len() as u32);
    }
    m.be32(10, id);
    if let Some(t) = set.timeout_ms {
        m.be64(11, t);
    }
    // NFTA_SET_USERDATA: the key's byte order as nft records it (big endian for addresses and
    // ports, host order for a lone protocol), so `nft list` prints elements as it would its own.
    let mut udata = match &set.typeof_udata {
        Some(u) => u.clone(),
        None => {
            let byteorder: u32 = match set.fields.as_slice() {
                [super::ir::Field::InetProto | super::ir::Field::Integer] => 1,
                _ => 2,
            };
            let mut u = vec![0u8, 4];
            u.extend_from_slice(&byteorder.to_ne_bytes());
            u
        }
    };
    if let Some(c) = &set.comment {
        // NFTNL_UDATA_SET_COMMENT, NUL-terminated (the parser bounds its length).
        udata.extend_from_slice(&[7, c.len() as u8 + 1]);
        udata.extend_from_slice(c.as_bytes());
        udata.push(0);
    }
    m.attr(13, &udata);
}

fn expr(m: &mut Msg, e: &Expr) {
    m.begin(1); // NFTA_LIST_ELEM
    let name = match e {
        Expr::Payload { .. } => "payload",
        Expr::Meta { .. } | Expr::MetaSet { .. } => "meta",
        Expr::Cmp { .. } => "cmp",
        Expr::Bitwise { .. } => "bitwise",
        Expr::Lookup { .. } => "lookup",
        Expr::Immediate { .. } => "immediate",
        Expr::Fib { .. } => "fib",
        Expr::Ct { .. } => "ct",
        Expr::Numgen { .. } => "numgen",
        Expr::Nat { .. } => "nat",
        Expr::Masq { .. } => "masq",
        Expr::Reject { .. } => "reject",
        Expr::Dynset { .. } => "dynset",
        Expr::Counter => "counter",
        Expr::Limit { .. } => "limit",
        Expr::Log { .. } => "log",
        Expr::CounterRef { .. } => "objref",
    };
    m.str(1, name).begin(2); // NFTA_EXPR_NAME, NFTA_EXPR_DATA
    match e {
        Expr::Payload {
            dreg,
            base,
            offset,
            len,
        } => {
            m.be32(1, *dreg)
                .be32(2, *base)
                .be32(3, *offset)
                .be32(4, *len);
        }
        Expr::Meta { key, dreg } => {
            m.be32(2, *key).be32(1, *dreg);
        }
        Expr::MetaSet { key, sreg } => {
            m.be32(2, *key).be32(3, *sreg);
        }
        Expr::Cmp { sreg, op, data } => {
            m.be32(1, *sreg).be32(2, *op as u32);
            m.begin(3).attr(1, data).end();
        }
        Expr::Bitwise {
            sreg,
            dreg,
            mask,
            xor,
        } => {
            m.be32(1, *sreg).be32(2, *dreg).be32(3, mask.len() as u32);
            m.begin(4).attr(1, mask).end();
            m.begin(5).attr(1, xor).end();
        }
        Expr::Lookup {
            set,
            sreg,
            dreg,
            invert,
        } => {
            m.str(1, set).be32(2, *sreg);
            if let Some(d) = dreg {
                m.be32(3, *d);
            }
            if *invert {
                m.be32(5, 1);
            }
        }
        Expr::Immediate { dreg, data } => {
            m.be32(1, *dreg);
            m.begin(2).data(data).end();
        }
        Expr::Fib {
            dreg,
            result,
            flags,
        } => {
            m.be32(1, *dreg).be32(2, *result).be32(3, *flags);
        }
        Expr::Ct { key, dreg } => {
            m.be32(1, *dreg).be32(2, *key);
        }
        Expr::Numgen {
            dreg,
            modulus,
            kind,
            offset,
        } => {
            m.be32(1, *dreg)
                .be32(2, *modulus)
                .be32(3, *kind)
                .be32(4, *offset);
        }
        Expr::Nat {
            kind,
            family,
            addr,
            proto,
            flags,
        } => {
            m.be32(1, *kind).be32(2, *family);
            if let Some(r) = addr {
                m.be32(3, *r);
            }
            if let Some(r) = proto {
                m.be32(5, *r);
            }
            if *flags != 0 {
                m.be32(7, *flags);
            }
        }
        Expr::Masq { flags } => {
            if *flags != 0 {
                m.be32(1, *flags);
            }
        }
        Expr::Reject { kind, code } => {
            m.be32(1, *kind).attr(2, &[*code]);
        }
        Expr::Dynset { set, op, sreg_key } => {
            m.str(1, set).be32(3, *op).be32(4, *sreg_key);
        }
        Expr::Counter => {
            m.be64(1, 0).be64(2, 0);
        }
        Expr::Limit { rate, unit, burst } => {
            m.be64(1, *rate)
                .be64(2, *unit)
                .be32(3, *burst)
                .be32(4, 0)
                .be32(5, 0);
        }
        Expr::Log {
            group,
            prefix,
            snaplen,
        } => {
            // Absent attributes are absent: a snaplen of 0 would copy nothing of the packet.
            m.attr(1, &group.to_be_bytes());
            if let Some(p) = prefix {
                m.str(2, p);
            }
            if let Some(n) = snaplen {
                m.be32(3, *n);
            }
        }
        Expr::CounterRef { name } => {
            m.be32(1, NFT_OBJECT_COUNTER).str(2, name);
        }
    }
    m.end().end();
}
