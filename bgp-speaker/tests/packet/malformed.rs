//! The malformed-input table: one row per RFC 4271 §6 / RFC 7313 §5 /
//! RFC 7606 case, with the NOTIFICATION (code, subcode, data where the RFC
//! says) or the RFC 7606 approach short of a reset and its effect on the
//! routes. Every row goes through `frame` and then `decode`, as the session
//! does.

use bgp_speaker::packet::*;
use bgp_speaker::Prefix;

use crate::common::*;

enum Expect {
    /// Session reset with this NOTIFICATION; `data` None = not checked.
    Reset(u8, u8, Option<Vec<u8>>),
    /// An issue of `type_code` with `action`; the UPDATE then withdraws
    /// exactly `withdrawn` and announces `announced` prefixes.
    Action {
        type_code: u8,
        action: AttrAction,
        withdrawn: Vec<&'static str>,
        announced: usize,
    },
}

use Expect::*;

fn taw(type_code: u8, withdrawn: &[&'static str]) -> Expect {
    Action {
        type_code,
        action: AttrAction::TreatAsWithdraw,
        withdrawn: withdrawn.to_vec(),
        announced: 0,
    }
}

fn discard(type_code: u8) -> Expect {
    Action {
        type_code,
        action: AttrAction::Discard,
        withdrawn: vec![],
        announced: 1,
    }
}

struct Row {
    rfc: &'static str,
    what: &'static str,
    bytes: Vec<u8>,
    ctx: DecodeCtx,
    expect: Expect,
}

const ORIGIN: &str = "40 01 01 00";
const AS_PATH: &str = "40 02 06 02 01 0000fde8";
const NEXT_HOP: &str = "40 03 04 c0000201";
const NLRI: &str = "18 0a0001";
const NET: &str = "10.0.1.0/24";

/// An eBGP UPDATE announcing 10.0.1.0/24 with the three mandatory
/// attributes, `extra` appended to them.
fn with(extra: &str) -> Vec<u8> {
    update("", &format!("{ORIGIN} {AS_PATH} {NEXT_HOP} {extra}"), NLRI)
}

fn row(rfc: &'static str, what: &'static str, bytes: Vec<u8>, expect: Expect) -> Row {
    Row {
        rfc,
        what,
        bytes,
        ctx: dctx(true, false),
        expect,
    }
}

fn open(body: &str) -> Vec<u8> {
    msg(1, body)
}

fn rows() -> Vec<Row> {
    let ibgp = |mut r: Row| {
        r.ctx.ibgp = true;
        r
    };
    let asn2 = |mut r: Row| {
        r.ctx.asn4 = false;
        r
    };
    let ext = |mut r: Row| {
        r.ctx.max_len = 65535;
        r
    };
    let h = |s: &str| hex(&format!("{MARKER} {s}"));
    let d = |s: &str| Some(hex(s));
    vec![
        // ----- header, RFC 4271 §6.1 -----
        row("4271 §6.1", "marker not all ones", hex(&format!("fe{} 0013 04", &MARKER[2..])), Reset(1, 1, d(""))),
        row("4271 §6.1", "length < 19", h("0012 04"), Reset(1, 2, d("0012"))),
        row("4271 §6.1", "length > max_len", h("1001 02"), Reset(1, 2, d("1001"))),
        row("4271 §6.1", "KEEPALIVE length != 19", h("0014 04 00"), Reset(1, 2, d("0014"))),
        row("4271 §6.1", "OPEN length < 29", h(&format!("001c 01 {}", "00".repeat(9))), Reset(1, 2, d("001c"))),
        row("4271 §6.1", "UPDATE length < 23", h("0016 02 000000"), Reset(1, 2, d("0016"))),
        row("4271 §6.1", "NOTIFICATION length < 21", h("0014 03 06"), Reset(1, 2, d("0014"))),
        ext(row("8654 §4", "OPEN over 4096 even with extended messages", h("1001 01"), Reset(1, 2, d("1001")))),
        row("4271 §6.1", "unknown message type", h("0013 09"), Reset(1, 3, d("09"))),
        row("2918 §3", "ROUTE-REFRESH shorter than 23", h("0016 05 000101"), Reset(1, 2, d("0016"))),
        row("7313 §5", "ROUTE-REFRESH longer than 23: 7/1, data = message", h("0018 05 0001020100"), Reset(7, 1, Some(h("0018 05 0001020100")))),
        // ----- OPEN, RFC 4271 §6.2 -----
        row("4271 §6.2", "version 3", open("03 fde8 00b4 0a000001 00"), Reset(2, 1, d("0004"))),
        row("4271 §6.2", "hold time 2", open("04 fde8 0002 0a000001 00"), Reset(2, 6, d(""))),
        row("6286 §2.1", "BGP identifier 0.0.0.0", open("04 fde8 00b4 00000000 00"), Reset(2, 3, d(""))),
        row("7607 §4", "peer AS 0", open("04 0000 00b4 0a000001 00"), Reset(2, 2, d("0000"))),
        row("4271 §6.2", "unsupported optional parameter (1, authentication)", open("04 fde8 00b4 0a000001 03 01 01 00"), Reset(2, 4, d(""))),
        row("4271 §6.2", "optional parameters length != what follows", open("04 fde8 00b4 0a000001 05 02 02 02 00"), Reset(2, 0, None)),
        row("5492 §4", "capability length overruns its parameter", open("04 fde8 00b4 0a000001 04 02 02 41 04"), Reset(2, 0, None)),
        row("6793 §9", "4-octet AS capability of length 2", open("04 fde8 00b4 0a000001 06 02 04 41 02 fde8"), Reset(2, 0, None)),
        // ----- UPDATE framing, RFC 4271 §6.3 / RFC 7606 §4 -----
        row("4271 §6.3", "withdrawn routes length overruns the message", h("0017 02 0005 0000"), Reset(3, 1, d(""))),
        row("4271 §6.3", "total attribute length overruns the message", h("001a 02 0000 0009 400101"), Reset(3, 1, d(""))),
        row("7606 §4", "last attribute's length overruns the attribute list", update("", &format!("{ORIGIN} 40 02 20 02 01 0000fde8"), NLRI), taw(2, &[NET])),
        row("7606 §4", "overrun after an MP_REACH_NLRI: its prefixes go too", update("", &format!("{ORIGIN} {AS_PATH} 80 0e 0d 0001 01 04 c0a80001 00 18 0a0002 c0 08 08 0000"), NLRI), taw(8, &[NET, "10.0.2.0/24"])),
        row("7606 §4/§3 j", "MP_REACH_NLRI's length overruns the attribute list", update("", &format!("{ORIGIN} {AS_PATH} 80 0e 30 0001 01 04 c0a80001 00 18 0a0002"), NLRI), Reset(3, 1, d(""))),
        row("7606 §4", "2 octets left after the last attribute", update("", &format!("{ORIGIN} {AS_PATH} {NEXT_HOP} 40 05"), NLRI), taw(0, &[NET])),
        row("4271 §6.3", "unrecognized well-known attribute", with("40 63 01 00"), Reset(3, 2, d("40630100"))),
        // ----- missing well-known mandatory, RFC 7606 §3 d -----
        row("7606 §3 d", "ORIGIN missing", update("", &format!("{AS_PATH} {NEXT_HOP}"), NLRI), taw(1, &[NET])),
        row("7606 §3 d", "AS_PATH missing", update("", &format!("{ORIGIN} {NEXT_HOP}"), NLRI), taw(2, &[NET])),
        row("7606 §3 d", "NEXT_HOP missing with IPv4 NLRI", update("", &format!("{ORIGIN} {AS_PATH}"), NLRI), taw(3, &[NET])),
        ibgp(row("7606 §3 d", "LOCAL_PREF missing on iBGP", with(""), taw(5, &[NET]))),
        // ----- flags, RFC 7606 §3 c -----
        row("7606 §3 c", "ORIGIN flagged optional", update("", &format!("c0 01 01 00 {AS_PATH} {NEXT_HOP}"), NLRI), taw(1, &[NET])),
        row("7606 §3 c", "MED flagged well-known", with("40 04 04 00000001"), taw(4, &[NET])),
        row("7606 §3 c, §7.7", "AGGREGATOR flagged well-known: discard", with("40 07 08 0000fde8 0a000001"), discard(7)),
        // ----- duplicates, RFC 7606 §3 g -----
        row("7606 §3 g", "MED twice: later copy discarded", with("80 04 04 00000001 80 04 04 00000002"), discard(4)),
        row("7606 §3 g", "MP_REACH_NLRI twice", with("80 0e 15 0002 01 10 20010db8000000000000000000000001 00 80 0e 15 0002 01 10 20010db8000000000000000000000001 00"), Reset(3, 1, d(""))),
        row("7606 §3 g", "MP_UNREACH_NLRI twice", with("80 0f 03 0002 01 80 0f 03 0002 01"), Reset(3, 1, d(""))),
        // ----- per attribute, RFC 7606 §7 -----
        row("7606 §7.1", "ORIGIN length 2", update("", &format!("40 01 02 0000 {AS_PATH} {NEXT_HOP}"), NLRI), taw(1, &[NET])),
        row("7606 §7.1", "ORIGIN value 3", update("", &format!("40 01 01 03 {AS_PATH} {NEXT_HOP}"), NLRI), taw(1, &[NET])),
        row("7606 §7.2", "AS_PATH segment type 5", update("", &format!("{ORIGIN} 40 02 06 05 01 0000fde8 {NEXT_HOP}"), NLRI), taw(2, &[NET])),
        row("7606 §7.2", "AS_PATH segment length 0", update("", &format!("{ORIGIN} 40 02 02 02 00 {NEXT_HOP}"), NLRI), taw(2, &[NET])),
        row("7606 §7.2", "AS_PATH segment overrun", update("", &format!("{ORIGIN} 40 02 06 02 02 0000fde8 {NEXT_HOP}"), NLRI), taw(2, &[NET])),
        row("7606 §7.2", "AS_PATH lone trailing octet", update("", &format!("{ORIGIN} 40 02 07 02 01 0000fde8 02 {NEXT_HOP}"), NLRI), taw(2, &[NET])),
        asn2(row("7606 §7.2", "2-octet AS_PATH read on a 2-octet session: odd length", update("", &format!("{ORIGIN} 40 02 05 02 01 fde8 00 {NEXT_HOP}"), NLRI), taw(2, &[NET]))),
        row("7607 §2", "AS_PATH holds AS 0", update("", &format!("{ORIGIN} 40 02 06 02 01 00000000 {NEXT_HOP}"), NLRI), taw(2, &[NET])),
        row("5065 §5", "AS_PATH confederation segment from eBGP", update("", &format!("{ORIGIN} 40 02 06 03 01 0000fde8 {NEXT_HOP}"), NLRI), taw(2, &[NET])),
        row("7606 §7.3", "NEXT_HOP length 5", update("", &format!("{ORIGIN} {AS_PATH} 40 03 05 c000020100"), NLRI), taw(3, &[NET])),
        row("4271 §6.3", "NEXT_HOP 0.0.0.0", update("", &format!("{ORIGIN} {AS_PATH} 40 03 04 00000000"), NLRI), taw(3, &[NET])),
        row("4271 §6.3", "NEXT_HOP multicast", update("", &format!("{ORIGIN} {AS_PATH} 40 03 04 e0000001"), NLRI), taw(3, &[NET])),
        row("4271 §6.3", "NEXT_HOP class E", update("", &format!("{ORIGIN} {AS_PATH} 40 03 04 f0000001"), NLRI), taw(3, &[NET])),
        row("7606 §7.4", "MED length 3", with("80 04 03 000001"), taw(4, &[NET])),
        ibgp(row("7606 §7.5", "LOCAL_PREF length 3 on iBGP", with("40 05 03 000064"), taw(5, &[NET]))),
        row("7606 §7.5", "LOCAL_PREF from eBGP: discard", with("40 05 04 00000064"), discard(5)),
        row("7606 §7.6", "ATOMIC_AGGREGATE length 1", with("40 06 01 00"), discard(6)),
        row("7606 §7.7", "AGGREGATOR length 7 on a 4-octet session", with("c0 07 07 0000fde8 0a0000"), discard(7)),
        asn2(row("7606 §7.7", "AGGREGATOR length 8 on a 2-octet session", update("", &format!("{ORIGIN} 40 02 04 02 01 fde8 {NEXT_HOP} c0 07 08 0000fde8 0a000001"), NLRI), discard(7))),
        row("7606 §7.8", "COMMUNITIES length 5", with("c0 08 05 0000000100"), taw(8, &[NET])),
        row("7606 §7.8", "COMMUNITIES length 0", with("c0 08 00"), taw(8, &[NET])),
        row("7606 §7.9", "ORIGINATOR_ID length 3", with("80 09 03 0a0000"), taw(9, &[NET])),
        row("7606 §7.10", "CLUSTER_LIST length 6", with("80 0a 06 0a0000010a00"), taw(10, &[NET])),
        row("7606 §7.14", "EXTENDED_COMMUNITIES length 12", with("c0 10 0c 000000000000000000000000"), taw(16, &[NET])),
        row("8092 §5", "LARGE_COMMUNITY length 8", with("c0 20 08 0000000000000000"), taw(32, &[NET])),
        asn2(row("6793 §6", "AS4_PATH malformed: discard", update("", &format!("{ORIGIN} 40 02 04 02 01 fde8 {NEXT_HOP} c0 11 03 02 01 00"), NLRI), discard(17))),
        asn2(row("6793 §6", "AS4_AGGREGATOR length 6: discard", update("", &format!("{ORIGIN} 40 02 04 02 01 fde8 {NEXT_HOP} c0 12 06 fde8 0a000001"), NLRI), discard(18))),
        row("6793 §4.1", "AS4_PATH on a 4-octet session: discard", with("c0 11 06 02 01 0000fde8"), discard(17)),
        // ----- MP attributes, RFC 7606 §7.11, §5.3 (RFC 4760 §7 subcode) -----
        row("7606 §7.11", "MP_REACH_NLRI next hop length 5", with("80 0e 0b 0002 01 05 2001db8000 00 00"), Reset(3, 9, d("800e0b00020105 2001db8000 00 00"))),
        row("7606 §5.3", "MP_REACH_NLRI prefix length 129", with("80 0e 16 0002 01 10 20010db8000000000000000000000001 00 81 00"), Reset(3, 9, None)),
        row("7606 §7.12", "MP_UNREACH_NLRI of 2 octets", with("80 0f 02 0002"), Reset(3, 9, d("800f020002"))),
        row("7606 §3 j", "treat-as-withdraw covers MP_REACH_NLRI too", update("", &format!("80 0e 1e 0002 01 10 20010db8000000000000000000000001 00 40 20010db800010000 {AS_PATH} {NEXT_HOP} 40 01 01 09"), NLRI), taw(1, &[NET, "2001:db8:1::/64"])),
        row(
            "4760 §3",
            "bad NEXT_HOP in an MP-only UPDATE: discarded, IPv6 route kept",
            update(
                "",
                &format!("80 0e 1e 0002 01 10 20010db8000000000000000000000001 00 40 20010db800010000 {ORIGIN} {AS_PATH} 40 03 04 00000000"),
                "",
            ),
            discard(3),
        ),
        row("4760 §7", "MP_REACH_NLRI of an unsupported family: ignored", with("80 0e 09 0001 80 04 c0000201 00"), discard(14)),
        // ----- NLRI fields, RFC 7606 §5.3 / RFC 4271 §6.3 -----
        row("7606 §5.3", "NLRI prefix length 33", update("", &format!("{ORIGIN} {AS_PATH} {NEXT_HOP}"), "21 0a000001 00"), Reset(3, 10, d(""))),
        row("7606 §5.3", "NLRI prefix overruns the message", update("", &format!("{ORIGIN} {AS_PATH} {NEXT_HOP}"), "20 0a0000"), Reset(3, 10, d(""))),
        row("7606 §3 i", "withdrawn prefix length 40", update("28 0a00000100", "", ""), Reset(3, 10, d(""))),
    ]
}

fn run(r: &Row) -> Result<Message, DecodeError> {
    let n = frame(&r.bytes, r.ctx.max_len)?
        .unwrap_or_else(|| panic!("{} ({}): frame wants more bytes", r.what, r.rfc));
    decode(&r.bytes[..n], &r.ctx)
}

#[test]
fn malformed_input_gets_the_rfc_action() {
    let mut failures = Vec::new();
    for r in rows() {
        let got = run(&r);
        let ok = match (&r.expect, &got) {
            (Reset(c, s, data), Err(e)) => {
                e.notification.code == *c
                    && e.notification.subcode == *s
                    && data.as_ref().is_none_or(|d| *d == e.notification.data)
            }
            (
                Action {
                    type_code,
                    action,
                    withdrawn,
                    announced,
                },
                Ok(Message::Update(u)),
            ) => {
                let want: Vec<Prefix> = withdrawn.iter().map(|s| s.parse().unwrap()).collect();
                let n: usize = u.announced.iter().map(|a| a.nlri.len()).sum();
                u.issues
                    .iter()
                    .any(|i| i.type_code == *type_code && i.action == *action)
                    && u.withdrawn == want
                    && n == *announced
            }
            _ => false,
        };
        if !ok {
            failures.push(format!("RFC {} {}: got {got:?}", r.rfc, r.what));
        }
    }
    assert!(
        failures.is_empty(),
        "{} rows failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn every_error_names_what_is_wrong() {
    for r in rows() {
        if let Err(e) = run(&r) {
            assert!(
                e.reason.len() > 10,
                "{}: reason {:?} says too little",
                r.what,
                e.reason
            );
        }
    }
}

#[test]
fn duplicate_attribute_keeps_the_first_value() {
    let m = decode(
        &with("80 04 04 00000001 80 04 04 00000002"),
        &dctx(true, false),
    )
    .unwrap();
    let Message::Update(u) = m else {
        panic!("not an UPDATE")
    };
    assert_eq!(u.announced[0].attrs.med, Some(1));
}

#[test]
fn local_pref_from_ebgp_is_dropped_but_the_route_kept() {
    let m = decode(&with("40 05 04 00000064"), &dctx(true, false)).unwrap();
    let Message::Update(u) = m else {
        panic!("not an UPDATE")
    };
    assert_eq!(u.announced[0].attrs.local_pref, None);
    assert_eq!(u.announced[0].nlri, vec![NET.parse::<Prefix>().unwrap()]);
}

#[test]
fn attributes_without_nlri_need_no_mandatory_ones() {
    // RFC 7606 §5.2: nothing announced, nothing missing; a pure withdraw
    // with stray attributes is fine.
    let m = decode(
        &update("18 0a0001", "80 04 04 00000001", ""),
        &dctx(true, true),
    )
    .unwrap();
    let Message::Update(u) = m else {
        panic!("not an UPDATE")
    };
    assert!(u.issues.is_empty(), "{:?}", u.issues);
    assert_eq!(u.withdrawn, vec![NET.parse::<Prefix>().unwrap()]);
}

#[test]
fn nlri_of_a_family_not_negotiated_is_ignored_with_an_issue() {
    let mut ctx = dctx(true, false);
    ctx.families = vec![bgp_speaker::Afi::Ipv6];
    let m = decode(&with(""), &ctx).unwrap();
    let Message::Update(u) = m else {
        panic!("not an UPDATE")
    };
    assert!(u.announced.is_empty() && u.withdrawn.is_empty());
    assert_eq!(u.issues.len(), 1, "{:?}", u.issues);
}

#[test]
fn route_refresh_of_an_unknown_family_is_ignored() {
    // RFC 2918 §4: ignore it (no reset); we hand back an empty UPDATE.
    let m = decode(&msg(5, "0001 00 80"), &dctx(true, false)).unwrap();
    let Message::Update(u) = m else {
        panic!("not an UPDATE: {m:?}")
    };
    assert!(u.announced.is_empty() && u.withdrawn.is_empty() && u.end_of_rib.is_none());
    assert_eq!(u.issues.len(), 1);
}

#[test]
fn decode_rejects_a_buffer_that_is_not_one_message() {
    let mut b = msg(4, "");
    b.push(0);
    let e = decode(&b, &dctx(true, false)).unwrap_err();
    assert_eq!((e.notification.code, e.notification.subcode), (1, 2));
}
