//! Target `bgp_message`: framing and decoding of a byte stream as a
//! session reads it, with the decode context taken from the input, and
//! what must hold of every result.
//!
//! Input: one octet of context, then the stream.
//!
//! | bit  | meaning                                                    |
//! |------|------------------------------------------------------------|
//! | 0    | `asn4`: 4-octet AS numbers negotiated (RFC 6793)           |
//! | 1    | `ibgp`: the session is internal (LOCAL_PREF mandatory)     |
//! | 2    | `max_len` 65535 (RFC 8654 extended messages), else 4096    |
//! | 3, 4 | families: 0 both, 1 IPv4 only, 2 IPv6 only, 3 none         |
//!
//! Checked, besides "no panic":
//! - framing: a whole message is at least 19 octets, at most `max_len`
//!   and within the buffer; every shorter prefix of it is "incomplete";
//!   a header error is already reported on the header's 19 octets alone;
//! - a decode error carries an RFC 4271 §4.5 / RFC 7313 code (1, 2, 3
//!   or 7) and data no longer than the message, and its NOTIFICATION
//!   encodes to bytes that decode to it again;
//! - KEEPALIVE, ROUTE-REFRESH and NOTIFICATION (up to 4096 octets)
//!   re-encode to the very bytes read;
//! - an OPEN re-encodes to bytes that decode to the same [`Open`];
//! - an UPDATE's announcements and withdrawals, re-encoded
//!   (`encode_announce`, `encode_withdraw`, `encode_end_of_rib`), decode
//!   to the same routes and attributes with no RFC 7606 issue: on a
//!   4-octet session always, on a 2-octet one too when RFC 6793 can carry
//!   the path (see [`two_octet_lossless`]).

use bgp_speaker::packet::{
    decode, encode_announce, encode_end_of_rib, encode_keepalive, encode_notification, encode_open,
    encode_route_refresh, encode_withdraw, frame, DecodeCtx, EncodeCtx, Message, Notification,
    Update, HEADER_LEN, MAX_EXTENDED_LEN, MAX_LEN,
};
use bgp_speaker::route::{afi_of, AsSegment};
use bgp_speaker::{Afi, NextHop, PathAttrs, Prefix};

use crate::input::Input;

/// AS_TRANS (RFC 6793 §9).
const AS_TRANS: u32 = 23456;

/// The target's body.
pub fn run(data: &[u8]) {
    let mut input = Input::new(data);
    let ctx = context(input.u8());
    let stream = input.rest();
    let mut rest = stream;
    loop {
        match frame(rest, ctx.max_len) {
            Ok(Some(n)) => {
                assert!(n >= HEADER_LEN && n <= rest.len() && n <= ctx.max_len);
                // Every shorter prefix is incomplete, never an error.
                for k in [0, HEADER_LEN - 1, HEADER_LEN, n - 1] {
                    if k < n {
                        assert_eq!(frame(&rest[..k], ctx.max_len), Ok(None), "prefix {k} of {n}");
                    }
                }
                check_message(&rest[..n], &ctx);
                rest = &rest[n..];
            }
            Ok(None) => break,
            Err(e) => {
                // RFC 4271 §6.1 errors are the header's: seen on 19 octets.
                assert_eq!(e.notification.code, 1, "{e}");
                assert_eq!(frame(&rest[..HEADER_LEN], ctx.max_len), Err(e));
                break;
            }
        }
    }
    // The whole stream as one message: an error (or the one message it
    // is), never a panic.
    let _ = decode(stream, &ctx);
}

/// The decode context of the first input octet.
pub fn context(bits: u8) -> DecodeCtx {
    DecodeCtx {
        asn4: bits & 1 != 0,
        ibgp: bits & 2 != 0,
        max_len: if bits & 4 != 0 { MAX_EXTENDED_LEN } else { MAX_LEN },
        families: match (bits >> 3) & 3 {
            0 => vec![Afi::Ipv4, Afi::Ipv6],
            1 => vec![Afi::Ipv4],
            2 => vec![Afi::Ipv6],
            _ => vec![],
        },
    }
}

/// Decodes one framed message and checks the result.
fn check_message(msg: &[u8], ctx: &DecodeCtx) {
    match decode(msg, ctx) {
        Err(e) => {
            let n = &e.notification;
            assert!(matches!(n.code, 1 | 2 | 3 | 7), "{e}");
            assert!(n.data.len() <= msg.len(), "{e}: data longer than the message");
            let bytes = encode_notification(n);
            assert_eq!(frame(&bytes, MAX_LEN), Ok(Some(bytes.len())));
            match decode(&bytes, ctx) {
                Ok(Message::Notification(got)) => assert_eq!(&got, n),
                other => panic!("NOTIFICATION of {e} decodes to {other:?}"),
            }
        }
        Ok(Message::Keepalive) => assert_eq!(encode_keepalive(), msg),
        Ok(Message::RouteRefresh { afi, subtype }) => {
            assert_eq!(encode_route_refresh(afi, subtype), msg)
        }
        Ok(Message::Notification(n)) => {
            let bytes = encode_notification(&n);
            if msg.len() <= MAX_LEN {
                assert_eq!(bytes, msg);
            } else {
                // Cut at 4096 octets: the extended length may be gone.
                assert_eq!(bytes.len(), MAX_LEN);
                assert_eq!(bytes[HEADER_LEN..], msg[HEADER_LEN..MAX_LEN]);
            }
        }
        Ok(Message::Open(open)) => {
            let bytes = encode_open(&open);
            assert!(bytes.len() <= MAX_LEN);
            assert_eq!(decode(&bytes, ctx), Ok(Message::Open(open)));
        }
        Ok(Message::Update(u)) => check_update(&u, ctx),
    }
}

/// Re-encodes an UPDATE's routes and checks they decode the same.
fn check_update(u: &Update, ctx: &DecodeCtx) {
    if let Some(afi) = u.end_of_rib {
        assert!(u.announced.is_empty() && u.withdrawn.is_empty(), "{u:?}");
        let got = decode(&encode_end_of_rib(afi), &full(true, ctx.ibgp));
        match got {
            Ok(Message::Update(e)) => assert_eq!(e.end_of_rib, Some(afi)),
            other => panic!("End-of-RIB {afi:?} decodes to {other:?}"),
        }
    }
    for a in &u.announced {
        assert!(!a.nlri.is_empty(), "an announcement without prefixes: {u:?}");
        let afi = afi_of(&a.nlri[0]);
        assert!(a.nlri.iter().all(|p| afi_of(p) == afi), "mixed families: {u:?}");
        announce_round_trip(&a.attrs, &a.nlri, true, ctx);
        if !ctx.asn4 && two_octet_lossless(&a.attrs) {
            announce_round_trip(&a.attrs, &a.nlri, false, ctx);
        }
    }
    if !u.withdrawn.is_empty() {
        let mut out = Vec::new();
        encode_withdraw(&ectx(true), &u.withdrawn, &mut out);
        let mut got = Vec::new();
        for m in &out {
            match decode(m, &full(true, ctx.ibgp)) {
                Ok(Message::Update(w)) if w.announced.is_empty() && w.issues.is_empty() => {
                    got.extend(w.withdrawn)
                }
                other => panic!("withdrawal of {:?} decodes to {other:?}", u.withdrawn),
            }
        }
        // IPv4 first, then IPv6 (encode_withdraw's order).
        let want: Vec<Prefix> = [Afi::Ipv4, Afi::Ipv6]
            .iter()
            .flat_map(|f| u.withdrawn.iter().filter(move |p| afi_of(p) == *f))
            .copied()
            .collect();
        assert_eq!(got, want);
    }
}

/// Encodes `nlri` with `attrs` on a session with or without 4-octet AS
/// numbers and decodes the messages: the same routes must come back.
fn announce_round_trip(attrs: &PathAttrs, nlri: &[Prefix], asn4: bool, ctx: &DecodeCtx) {
    let mut out = Vec::new();
    let unsent = encode_announce(&ectx(asn4), attrs, nlri, &mut out);
    let v4_over_v6 = afi_of(&nlri[0]) == Afi::Ipv4 && matches!(attrs.next_hop, NextHop::V6 { .. });
    if v4_over_v6 {
        // No RFC 8950: such routes are returned, never sent.
        assert_eq!(unsent, nlri);
        assert!(out.is_empty());
        return;
    }
    if !unsent.is_empty() {
        // Only a 2-octet session's path (AS_TRANS plus AS4_PATH, or its
        // ASNs at twice the width here) can outgrow the largest message.
        assert!(!ctx.asn4, "unsent {unsent:?} of {attrs:?}");
        return;
    }
    // The decoder's view of an IPv4 next hop for IPv6 routes: sent
    // IPv4-mapped (see encode_announce).
    let mut want = normal(attrs);
    if let (Afi::Ipv6, NextHop::V4(a)) = (afi_of(&nlri[0]), attrs.next_hop) {
        want.next_hop = NextHop::V6 {
            global: a.to_ipv6_mapped(),
            link_local: None,
        };
    }
    let mut got = Vec::new();
    for m in &out {
        assert!(m.len() <= MAX_EXTENDED_LEN);
        match decode(m, &full(asn4, ctx.ibgp)) {
            Ok(Message::Update(back))
                if back.issues.is_empty()
                    && back.withdrawn.is_empty()
                    && back.announced.len() == 1 =>
            {
                let a = &back.announced[0];
                assert_eq!(normal(&a.attrs), want, "asn4 {asn4}");
                got.extend_from_slice(&a.nlri);
            }
            other => panic!("{attrs:?} asn4 {asn4} re-encoded decodes to {other:?}"),
        }
    }
    assert_eq!(got, nlri);
}

/// Attributes with adjacent AS_SEQUENCEs (and AS_CONFED_SEQUENCEs) joined:
/// the same path (RFC 4271 §4.3); the encoder splits a segment at 255
/// ASNs and the RFC 6793 merge may join two.
fn normal(attrs: &PathAttrs) -> PathAttrs {
    let mut a = attrs.clone();
    let mut path: Vec<AsSegment> = Vec::new();
    for seg in a.as_path.drain(..) {
        match (path.last_mut(), seg) {
            (Some(AsSegment::Sequence(x)), AsSegment::Sequence(y)) => x.extend(y),
            (Some(AsSegment::ConfedSequence(x)), AsSegment::ConfedSequence(y)) => x.extend(y),
            (_, seg) => path.push(seg),
        }
    }
    a.as_path = path;
    a
}

/// Whether a 2-octet session (AS_TRANS, AS4_PATH, AS4_AGGREGATOR) can
/// carry the path unchanged:
/// - confederation segments lead and hold 2-octet ASNs (AS4_PATH carries
///   none, RFC 6793 §3; RFC 5065 §3 puts them first);
/// - a path with a 4-octet ASN has no AGGREGATOR of a real 2-octet AS:
///   the receiver then ignores AS4_PATH (RFC 6793 §4.2.3).
pub fn two_octet_lossless(a: &PathAttrs) -> bool {
    let confed = |s: &AsSegment| {
        matches!(
            s,
            AsSegment::ConfedSequence(_) | AsSegment::ConfedSet(_)
        )
    };
    let asns = |s: &AsSegment| match s {
        AsSegment::Sequence(v)
        | AsSegment::Set(v)
        | AsSegment::ConfedSequence(v)
        | AsSegment::ConfedSet(v) => v.clone(),
    };
    let leading = a.as_path.iter().take_while(|s| confed(s)).count();
    if a.as_path[leading..].iter().any(confed) {
        return false;
    }
    if a.as_path[..leading].iter().any(|s| asns(s).iter().any(|x| *x > 0xffff)) {
        return false;
    }
    let four = a.as_path.iter().any(|s| asns(s).iter().any(|x| *x > 0xffff));
    !four
        || a.aggregator
            .is_none_or(|(asn, _)| asn > 0xffff || asn == AS_TRANS)
}

fn ectx(asn4: bool) -> EncodeCtx {
    EncodeCtx {
        asn4,
        max_len: MAX_EXTENDED_LEN,
    }
}

/// Both families, the largest messages.
fn full(asn4: bool, ibgp: bool) -> DecodeCtx {
    DecodeCtx {
        asn4,
        ibgp,
        max_len: MAX_EXTENDED_LEN,
        families: vec![Afi::Ipv4, Afi::Ipv6],
    }
}

/// A NOTIFICATION value, for the seed generator.
pub fn notification(code: u8, subcode: u8, data: &[u8]) -> Vec<u8> {
    encode_notification(&Notification {
        code,
        subcode,
        data: data.to_vec(),
    })
}
