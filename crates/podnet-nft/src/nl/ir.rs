//! What one nf_tables batch says, as the kernel sees it (pure data): the commands and, for rules,
//! the expressions with their registers, exactly as `nft` 1.0 would have made them from the same
//! text (checked against `nft --debug=netlink` by the tests).

use crate::probe::NftFamily;

/// Registers: 0 holds the verdict; 1..4 are 16 bytes wide and overlap the 4-byte registers 8..23
/// (register 1 is 8..11). Concatenations fill consecutive 4-byte registers.
pub const REG_VERDICT: u32 = 0;
pub const REG_1: u32 = 1;
pub const REG_2: u32 = 2;
pub const REG32_00: u32 = 8;

/// Verdict codes (`NF_DROP`, `NF_ACCEPT`, `NFT_JUMP`, ...).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Drop,
    Accept,
    Return,
    Jump(String),
    Goto(String),
}

impl Verdict {
    pub fn code(&self) -> i32 {
        match self {
            Verdict::Drop => 0,
            Verdict::Accept => 1,
            Verdict::Return => -5,
            Verdict::Jump(_) => -3,
            Verdict::Goto(_) => -4,
        }
    }

    pub fn chain(&self) -> Option<&str> {
        match self {
            Verdict::Jump(c) | Verdict::Goto(c) => Some(c),
            _ => None,
        }
    }
}

/// Comparison operators (`NFT_CMP_*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CmpOp {
    Eq = 0,
    Neq = 1,
    Lte = 3,
    Gte = 5,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Data {
    Value(Vec<u8>),
    Verdict(Verdict),
}

/// The expressions podnet's tables use; field names follow the kernel's attributes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Expr {
    /// `base`: 0 link layer, 1 network header, 2 transport header.
    Payload {
        dreg: u32,
        base: u32,
        offset: u32,
        len: u32,
    },
    Meta {
        key: u32,
        dreg: u32,
    },
    MetaSet {
        key: u32,
        sreg: u32,
    },
    Cmp {
        sreg: u32,
        op: CmpOp,
        data: Vec<u8>,
    },
    /// `dreg = (sreg & mask) ^ xor`.
    Bitwise {
        sreg: u32,
        dreg: u32,
        mask: Vec<u8>,
        xor: Vec<u8>,
    },
    /// A set lookup (`dreg` for maps: 0 for verdict maps).
    Lookup {
        set: String,
        sreg: u32,
        dreg: Option<u32>,
        invert: bool,
    },
    Immediate {
        dreg: u32,
        data: Data,
    },
    /// `flags`: `NFTA_FIB_F_*`; `result`: `NFT_FIB_RESULT_*`.
    Fib {
        dreg: u32,
        result: u32,
        flags: u32,
    },
    Ct {
        key: u32,
        dreg: u32,
    },
    /// `kind`: 0 incremental, 1 random.
    Numgen {
        dreg: u32,
        modulus: u32,
        kind: u32,
        offset: u32,
    },
    /// `kind`: 0 snat, 1 dnat.
    Nat {
        kind: u32,
        family: u32,
        addr: Option<u32>,
        proto: Option<u32>,
        flags: u32,
    },
    Masq {
        flags: u32,
    },
    /// `kind`: 0 ICMP unreachable, 1 TCP reset, 2 ICMPx unreachable.
    Reject {
        kind: u32,
        code: u8,
    },
    /// `op`: 0 add, 1 update, 2 delete.
    Dynset {
        set: String,
        op: u32,
        sreg_key: u32,
    },
    Counter,
    /// `limit rate RATE/UNIT burst BURST packets`: `unit` in seconds.
    Limit {
        rate: u64,
        unit: u64,
        burst: u32,
    },
    /// To NFLOG group `group`.
    Log {
        group: u16,
        prefix: Option<String>,
        snaplen: Option<u32>,
    },
    /// A reference to a named counter.
    CounterRef {
        name: String,
    },
}

/// A hooked chain's properties.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hook {
    /// `filter`, `nat` or `route`.
    pub kind: String,
    pub hook: u32,
    pub priority: i32,
    /// `NF_ACCEPT` (1) or `NF_DROP` (0).
    pub policy: u32,
}

/// Key and data types of a set, in the kernel's terms plus the datatypes `nft` shows them by.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SetType {
    /// One entry per concatenated field.
    pub fields: Vec<Field>,
    pub verdict_map: bool,
    /// A map to values (not verdicts): the data's fields; empty otherwise.
    pub data: Vec<Field>,
    /// A set declared by `typeof`: the user data nft records to print it back that way.
    pub typeof_udata: Option<Vec<u8>>,
    /// `NFT_SET_*` flags besides `NFT_SET_MAP`.
    pub flags: u32,
    pub timeout_ms: Option<u64>,
    pub comment: Option<String>,
}

/// The field types podnet's sets use: nft's datatype number, the length on the wire, byte order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Field {
    Ipv4Addr,
    InetProto,
    InetService,
    /// A 32-bit integer in host byte order (what `numgen` makes).
    Integer,
}

impl Field {
    pub fn datatype(self) -> u32 {
        match self {
            Field::Ipv4Addr => 7,
            Field::InetProto => 12,
            Field::InetService => 13,
            Field::Integer => 4,
        }
    }

    pub fn wire_len(self) -> usize {
        match self {
            Field::Ipv4Addr => 4,
            Field::InetProto => 1,
            Field::InetService => 2,
            Field::Integer => 4,
        }
    }

    /// Concatenated fields each take whole 4-byte registers.
    fn len_of(fields: &[Field]) -> usize {
        match fields {
            [one] => one.wire_len(),
            many => many.iter().map(|f| f.wire_len().div_ceil(4) * 4).sum(),
        }
    }

    /// nft's number for a type: concatenations shift each field's type in by 6 bits.
    fn type_of(fields: &[Field]) -> u32 {
        fields.iter().fold(0, |acc, f| (acc << 6) | f.datatype())
    }
}

impl SetType {
    /// Concatenated fields each take whole 4-byte registers.
    pub fn key_len(&self) -> usize {
        Field::len_of(&self.fields)
    }

    pub fn key_type(&self) -> u32 {
        Field::type_of(&self.fields)
    }

    pub fn data_len(&self) -> usize {
        Field::len_of(&self.data)
    }

    pub fn data_type(&self) -> u32 {
        Field::type_of(&self.data)
    }
}

/// One element: its key bytes (fields padded as in [`SetType::key_len`]) and, in a map, its verdict.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Element {
    pub key: Vec<u8>,
    pub verdict: Option<Verdict>,
    /// In a map to values: the value's bytes (fields padded as keys are).
    pub value: Option<Vec<u8>>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    AddTable,
    DeleteTable,
    /// Removes every rule of every chain (sets keep their elements, as with nft).
    FlushTable,
    AddChain {
        name: String,
        hook: Option<Hook>,
    },
    /// Removes every rule of the chain.
    FlushChain {
        name: String,
    },
    DeleteChain {
        name: String,
    },
    AddRule {
        chain: String,
        exprs: Vec<Expr>,
    },
    AddSet {
        name: String,
        set: SetType,
    },
    DeleteSet {
        name: String,
    },
    /// Removes every element.
    FlushSet {
        name: String,
    },
    AddCounter {
        name: String,
    },
    DeleteCounter {
        name: String,
    },
    AddElements {
        set: String,
        elements: Vec<Element>,
    },
    DeleteElements {
        set: String,
        elements: Vec<Element>,
    },
}

/// One command of a batch, with the text it came from (errors quote it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Command {
    pub family: NftFamily,
    pub table: String,
    pub op: Op,
    pub source: String,
}
