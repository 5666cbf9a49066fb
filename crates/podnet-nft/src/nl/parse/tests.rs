use super::*;
use crate::nl::encode;

const DECLS: &str = "add map ip t m { type ipv4_addr . inet_proto . inet_service : verdict ; }\n\
                     add set ip t s { type ipv4_addr ; }\n";

fn compile(script: &str) -> Result<Vec<Command>, ParseError> {
    Sets::default().compile(script)
}

/// Declares `m` (a verdict map of address . protocol . port) and `s` (addresses), then compiles the
/// rule.
fn rule_of(text: &str) -> Vec<Expr> {
    let cmds = compile(&format!("{DECLS}add rule ip t c {text}\n")).unwrap();
    match &cmds[2].op {
        Op::AddRule { exprs, .. } => exprs.clone(),
        other => panic!("{other:?}"),
    }
}

#[test]
fn tokens_split_braces_commas_and_semicolons() {
    assert_eq!(
        tokens("add set ip t s { type ipv4_addr ; flags dynamic,timeout ;}"),
        vec![
            "add",
            "set",
            "ip",
            "t",
            "s",
            "{",
            "type",
            "ipv4_addr",
            ";",
            "flags",
            "dynamic,timeout",
            ";",
            "}"
        ]
    );
    assert_eq!(tokens("{a, b}"), vec!["{", "a", ",", "b", "}"]);
}

#[test]
fn concatenations_fill_consecutive_registers() {
    let e = rule_of("ip daddr . meta l4proto . th dport vmap @m");
    assert_eq!(
        e,
        vec![
            payload(1, 16, 4),
            Expr::Meta { key: 16, dreg: 9 },
            Expr::Payload {
                dreg: 10,
                base: 2,
                offset: 2,
                len: 2
            },
            Expr::Lookup {
                set: "m".into(),
                sreg: 1,
                dreg: Some(0),
                invert: false
            },
        ]
    );
}

#[test]
fn prefixes_load_whole_bytes_or_mask() {
    let e = rule_of("ip saddr != 10.244.0.0/16 drop");
    assert_eq!(e[0], payload(1, 12, 2));
    assert_eq!(
        e[1],
        Expr::Cmp {
            sreg: 1,
            op: CmpOp::Neq,
            data: vec![10, 244]
        }
    );
    let e = rule_of("ip saddr 10.244.0.0/14 accept");
    assert_eq!(
        e[1],
        Expr::Bitwise {
            sreg: 1,
            dreg: 1,
            mask: vec![255, 252, 0, 0],
            xor: vec![0; 4]
        }
    );
    assert!(compile("add rule ip t c ip saddr 10.0.0.0/33 accept\n").is_err());
    // Everything: masked with zero, as nft writes it.
    let e = rule_of("ip saddr 0.0.0.0/0 accept");
    assert_eq!(
        e[1],
        Expr::Bitwise {
            sreg: 1,
            dreg: 1,
            mask: vec![0; 4],
            xor: vec![0; 4]
        }
    );
}

#[test]
fn statements_become_their_expressions() {
    let e = rule_of("meta l4proto tcp dnat to 10.244.1.5:8080");
    assert_eq!(
        e[4],
        Expr::Nat {
            kind: 1,
            family: 2,
            addr: Some(1),
            proto: Some(2),
            flags: 2
        }
    );
    assert_eq!(
        rule_of("meta mark set meta mark | 0x4000")[1],
        Expr::Bitwise {
            sreg: 1,
            dreg: 1,
            mask: (!0x4000u32).to_ne_bytes().to_vec(),
            xor: 0x4000u32.to_ne_bytes().to_vec()
        }
    );
    assert_eq!(
        rule_of("masquerade fully-random"),
        vec![Expr::Masq { flags: 0x10 }]
    );
    assert_eq!(
        rule_of("goto x"),
        vec![Expr::Immediate {
            dreg: 0,
            data: Data::Verdict(Verdict::Goto("x".into()))
        }]
    );
}

#[test]
fn what_is_not_understood_is_refused_with_the_line() {
    for bad in [
        "add rule ip t c ether type ip accept",
        "add rule ip t c reject with tcp reset",
        "add rule ip t c dnat to 10.0.0.1:80",
        "add rule ip t c ct state != new accept",
        "add rule ip t c th dport @m accept",
        "add rule ip t c ip saddr vmap @s",
        "add rule ip t c tcp dport 22 udp dport 53 accept",
        "add rule ip t c meta l4proto tcp meta l4proto udp accept",
        "add rule ip t c meta l4proto tcp th dport 100-90 accept",
        "add rule ip t c ip saddr { 1.2.3.4, 5.6.7.8 } accept",
        "add rule ip t c",
        "add set ip t s { type ipv4_addr ; flags interval ; }",
        "add map ip t m { type ipv4_addr : ipv4_addr ; }",
        "list table ip t",
        "add rule inet t c reject",
        "add element ip t unknown { 1.2.3.4 }",
    ] {
        let err = compile(&format!("{DECLS}{bad}\n")).unwrap_err();
        assert_eq!(err.line, bad, "{err}");
    }
}

#[test]
fn elements_follow_the_declared_types() {
    let mut sets = Sets::default();
    let cmds = sets
        .compile(
            "add map ip t m { type ipv4_addr . inet_proto . inet_service : verdict ; }\n\
             add element ip t m { 10.96.0.20 . tcp . 80 : goto svc, 10.96.0.21 . udp . 53 : drop }\n",
        )
        .unwrap();
    let Op::AddSet { set, .. } = &cmds[0].op else {
        panic!()
    };
    assert_eq!((set.key_type(), set.key_len()), (29453, 12));
    let Op::AddElements { elements, .. } = &cmds[1].op else {
        panic!()
    };
    assert_eq!(
        elements[0].key,
        vec![10, 96, 0, 20, 6, 0, 0, 0, 0, 80, 0, 0]
    );
    assert_eq!(elements[1].verdict, Some(Verdict::Drop));
    // The wrong number of fields, a map element without a verdict: refused.
    assert!(
        sets.compile("add element ip t m { 10.96.0.1 . tcp }\n")
            .is_err()
    );
    assert!(
        sets.compile("add element ip t m { 10.96.0.1 . tcp . 1 }\n")
            .is_err()
    );
    // Deleting the table forgets its sets.
    sets.compile("delete table ip t\n").unwrap();
    assert!(
        sets.compile("delete element ip t m { 10.96.0.1 . tcp . 1 }\n")
            .is_err()
    );
}

#[test]
fn batches_map_sequence_numbers_back_to_commands() {
    let mut sets = Sets::default();
    let mut script = String::from("add table ip t\nadd set ip t s { type ipv4_addr ; }\n");
    let many: Vec<String> = (0..30_000u32)
        .map(|i| std::net::Ipv4Addr::from(0x0a00_0000 + i).to_string())
        .collect();
    script.push_str(&format!(
        "add element ip t s {{ {} }}\nadd chain ip t c\n",
        many.join(", ")
    ));
    let cmds = sets.compile(&script).unwrap();
    let b = encode::batch(&cmds, 1).unwrap();
    // begin = 1, table = 2, set = 3, elements from 4 on in several messages, then the chain.
    assert_eq!(b.command_of(2), Some(0));
    assert_eq!(b.command_of(4), Some(2));
    let chain_seq = b.seqs[3].0;
    assert!(chain_seq > 5, "the elements took several messages");
    assert_eq!(b.command_of(chain_seq - 1), Some(2));
    assert_eq!(b.command_of(chain_seq), Some(3));
    assert_eq!(b.next_seq, chain_seq + 2, "the chain, then the batch end");
}

#[test]
fn a_rule_too_long_for_one_attribute_is_refused_before_sending() {
    let long: Vec<String> = (0..4000).map(|_| "counter".to_string()).collect();
    let cmds = compile(&format!("add rule ip t c {} accept\n", long.join(" "))).unwrap();
    let err = encode::batch(&cmds, 1).err().expect("refused");
    assert!(err.reason.contains("64 KiB"), "{err:?}");
}

#[test]
fn log_attributes_are_sent_only_when_written() {
    let e = rule_of("log group 7");
    assert_eq!(
        e,
        vec![Expr::Log {
            group: 7,
            prefix: None,
            snaplen: None
        }]
    );
}

/// The user data nft 1.0.6 sends for `typeof numgen random mod 1 : ip daddr . th dport`
/// (captured with `nft --debug=mnl`), so `nft list` prints the declaration back.
const ENDPOINTS_TYPEOF_UDATA: &str = "00040100 00000104 00000000 031a0004 17000000 \
     01120004 01000000 01040100 00000204 00000000 \
     04340004 0d000000 012c0014 00040700 0000010c \
     00040c00 00000104 0c000000 01140004 07000000 \
     010c0004 0b000000 01040200 00000604 00000000";

fn hex(s: &str) -> Vec<u8> {
    let s: String = s.split_whitespace().collect();
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

#[test]
fn a_numgen_map_dnats_to_an_address_and_a_port() {
    let cmds = compile(
        "add map ip t e { typeof numgen random mod 1 : ip daddr . th dport ; }\n\
         add rule ip t c meta l4proto tcp dnat to numgen random mod 3 offset 4096 map @e\n\
         add element ip t e { 4096 : 10.244.1.5 . 8080 }\n\
         delete element ip t e { 4096 }\n",
    )
    .unwrap();
    let Op::AddSet { set, .. } = &cmds[0].op else {
        panic!("{:?}", cmds[0].op)
    };
    assert_eq!(set.fields, [Field::Integer]);
    assert_eq!(set.data, [Field::Ipv4Addr, Field::InetService]);
    assert_eq!((set.key_len(), set.key_type()), (4, 4));
    assert_eq!((set.data_len(), set.data_type()), (8, (7 << 6) | 13));
    assert_eq!(
        set.typeof_udata.as_deref(),
        Some(&hex(ENDPOINTS_TYPEOF_UDATA)[..])
    );
    let Op::AddRule { exprs, .. } = &cmds[1].op else {
        panic!()
    };
    assert_eq!(
        exprs[2..],
        [
            Expr::Numgen {
                dreg: 1,
                modulus: 3,
                kind: 1,
                offset: 4096
            },
            Expr::Lookup {
                set: "e".into(),
                sreg: 1,
                dreg: Some(1),
                invert: false
            },
            Expr::Nat {
                kind: 1,
                family: 2,
                addr: Some(1),
                proto: Some(9),
                flags: 0
            },
        ]
    );
    let Op::AddElements { elements, .. } = &cmds[2].op else {
        panic!()
    };
    assert_eq!(elements[0].key, 4096u32.to_ne_bytes());
    assert_eq!(
        elements[0].value.as_deref(),
        Some(&[10, 244, 1, 5, 0x1f, 0x90, 0, 0][..])
    );
    let Op::DeleteElements { elements, .. } = &cmds[3].op else {
        panic!()
    };
    assert_eq!(elements[0].value, None);
    // A value map is not a set to match against, a dnat needs a protocol, and values are checked.
    for bad in [
        "add rule ip t c ip daddr @e accept",
        "add rule ip t c dnat to numgen random mod 3 map @e",
        "add rule ip t c meta l4proto tcp dnat to numgen random mod 0 map @e",
        "add element ip t e { 1 : 10.0.0.1 }",
        "add element ip t e { 1 }",
    ] {
        let script = format!(
            "add map ip t e {{ typeof numgen random mod 1 : ip daddr . th dport ; }}\n{bad}\n"
        );
        assert!(compile(&script).is_err(), "{bad}");
    }
}

#[test]
fn ct_status_tests_its_bit() {
    let cmds = compile(
        "add set ip t pairs { type ipv4_addr . ipv4_addr ; }\n\
         add rule ip t c ct status dnat ip saddr . ip daddr @pairs accept\n",
    )
    .unwrap();
    let Op::AddRule { exprs, .. } = &cmds[1].op else {
        panic!()
    };
    let e = exprs[..3].to_vec();
    assert_eq!(
        e,
        vec![
            Expr::Ct { key: 2, dreg: 1 },
            Expr::Bitwise {
                sreg: 1,
                dreg: 1,
                mask: 0x20u32.to_ne_bytes().to_vec(),
                xor: vec![0; 4]
            },
            Expr::Cmp {
                sreg: 1,
                op: CmpOp::Neq,
                data: vec![0; 4]
            },
        ]
    );
}
