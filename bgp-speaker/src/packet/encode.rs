//! UPDATE packing, the hot path: attributes are encoded once per call, then
//! as many prefixes as fit go into each message, never over the
//! negotiated maximum length (netgauze does not check it, CRATE-FACTS §1 b).
//!
//! Attribute order: MP_REACH_NLRI first (RFC 7606 §5.1), then by type
//! code, then the unknown optional transitive ones.

use super::attribute::*;
use super::frame::{finish_header, start_message, UPDATE};
use super::nlri::{prefix_len, write_prefix};
use super::open::{afi_number, AS_TRANS};
use super::{EncodeCtx, HEADER_LEN, MAX_EXTENDED_LEN};
use crate::route::{afi_of, Afi, AsSegment, NextHop, PathAttrs, Prefix};

/// Header plus the two 2-octet length fields of an UPDATE.
const UPDATE_FIXED: usize = HEADER_LEN + 4;

/// Appends the UPDATE messages announcing `nlri` with `attrs` to `out`.
///
/// IPv4 prefixes go in the NLRI field with a NEXT_HOP attribute; IPv6 ones
/// in MP_REACH_NLRI with the global (and link-local) next hop. `nlri`
/// should share one family; mixed input is split by family. Each message
/// is as full as `ctx.max_len` allows. Without `ctx.asn4` the AS_PATH is
/// written with 2-octet ASNs (AS_TRANS for larger ones) plus an AS4_PATH,
/// and AGGREGATOR likewise with AS4_AGGREGATOR (RFC 6793 §4.2.2).
///
/// Routes that cannot be encoded are skipped with a warning, never sent
/// malformed: IPv4 prefixes whose next hop is IPv6 (RFC 8950 is not
/// negotiated), or attributes too large for `ctx.max_len`. An IPv4 next
/// hop for IPv6 prefixes is sent IPv4-mapped (`::ffff:a.b.c.d`).
pub fn encode_announce(
    ctx: &EncodeCtx,
    attrs: &PathAttrs,
    nlri: &[Prefix],
    out: &mut Vec<Vec<u8>>,
) {
    let Some(first) = nlri.first() else {
        return;
    };
    let afi = afi_of(first);
    if nlri.iter().all(|p| afi_of(p) == afi) {
        announce_family(ctx, attrs, afi, nlri, out);
    } else {
        for afi in [Afi::Ipv4, Afi::Ipv6] {
            let part: Vec<Prefix> = nlri.iter().filter(|p| afi_of(p) == afi).copied().collect();
            if !part.is_empty() {
                announce_family(ctx, attrs, afi, &part, out);
            }
        }
    }
}

/// Appends the UPDATE messages withdrawing `prefixes` to `out`: IPv4 ones
/// in WITHDRAWN ROUTES, IPv6 ones in MP_UNREACH_NLRI, in separate messages,
/// each as full as `ctx.max_len` allows.
pub fn encode_withdraw(ctx: &EncodeCtx, prefixes: &[Prefix], out: &mut Vec<Vec<u8>>) {
    let max_len = ctx.max_len.min(MAX_EXTENDED_LEN);
    for afi in [Afi::Ipv4, Afi::Ipv6] {
        let mut iter = prefixes.iter().filter(|p| afi_of(p) == afi).peekable();
        while iter.peek().is_some() {
            let mut msg = Vec::with_capacity(max_len.min(4096));
            start_message(&mut msg, UPDATE);
            let start;
            if afi == Afi::Ipv4 {
                msg.extend_from_slice(&[0, 0]);
                start = msg.len();
            } else {
                // Withdrawn length 0, attribute length, MP_UNREACH_NLRI
                // (optional, extended length), AFI 2, SAFI 1.
                msg.extend_from_slice(&[
                    0,
                    0,
                    0,
                    0,
                    FLAG_OPTIONAL | FLAG_EXT_LEN,
                    MP_UNREACH_NLRI,
                    0,
                    0,
                ]);
                msg.extend_from_slice(&afi_number(afi).to_be_bytes());
                msg.push(1);
                start = msg.len();
            }
            let room = max_len.saturating_sub(msg.len() + if afi == Afi::Ipv4 { 2 } else { 0 });
            let used = put_prefixes(&mut msg, &mut iter, room);
            if used == 0 {
                tracing::warn!(
                    max_len,
                    "cannot fit one withdrawn prefix in an UPDATE; skipped"
                );
                return;
            }
            if afi == Afi::Ipv4 {
                msg[HEADER_LEN..HEADER_LEN + 2].copy_from_slice(&(used as u16).to_be_bytes());
                msg.extend_from_slice(&[0, 0]);
            } else {
                let attr_len = (used + 3) as u16;
                msg[start - 5..start - 3].copy_from_slice(&attr_len.to_be_bytes());
                let total = (used + 3 + 4) as u16;
                msg[HEADER_LEN + 2..HEADER_LEN + 4].copy_from_slice(&total.to_be_bytes());
            }
            finish_header(&mut msg);
            out.push(msg);
        }
    }
}

/// Writes prefixes from `iter` into `msg` while they fit in `room` octets;
/// returns the octets written.
fn put_prefixes<'a>(
    msg: &mut Vec<u8>,
    iter: &mut std::iter::Peekable<impl Iterator<Item = &'a Prefix>>,
    room: usize,
) -> usize {
    let mut used = 0;
    while let Some(p) = iter.peek() {
        let n = prefix_len(p);
        if used + n > room {
            break;
        }
        write_prefix(msg, p);
        used += n;
        iter.next();
    }
    used
}

/// Announces prefixes of one family.
fn announce_family(
    ctx: &EncodeCtx,
    attrs: &PathAttrs,
    afi: Afi,
    nlri: &[Prefix],
    out: &mut Vec<Vec<u8>>,
) {
    let max_len = ctx.max_len.min(MAX_EXTENDED_LEN);
    let v4_nh = match (afi, attrs.next_hop) {
        (Afi::Ipv4, NextHop::V4(a)) => Some(a),
        (Afi::Ipv4, NextHop::V6 { .. }) => {
            tracing::warn!(
                prefixes = nlri.len(),
                "IPv4 routes with an IPv6 next hop cannot be sent; skipped"
            );
            return;
        }
        _ => None,
    };
    let mut common = Vec::with_capacity(128);
    write_attrs(ctx, attrs, v4_nh, &mut common);
    // MP_REACH_NLRI head: flags, type, length (2), AFI, SAFI, next hop
    // length, next hop, reserved.
    let mut mp_head = Vec::new();
    if afi == Afi::Ipv6 {
        let (global, ll) = match attrs.next_hop {
            NextHop::V6 { global, link_local } => (global, link_local),
            NextHop::V4(a) => (a.to_ipv6_mapped(), None),
        };
        mp_head.extend_from_slice(&[FLAG_OPTIONAL | FLAG_EXT_LEN, MP_REACH_NLRI, 0, 0]);
        mp_head.extend_from_slice(&afi_number(afi).to_be_bytes());
        mp_head.push(1);
        mp_head.push(if ll.is_some() { 32 } else { 16 });
        mp_head.extend_from_slice(&global.octets());
        if let Some(ll) = ll {
            mp_head.extend_from_slice(&ll.octets());
        }
        mp_head.push(0);
    }
    let fixed = UPDATE_FIXED + mp_head.len() + common.len();
    let room = max_len.saturating_sub(fixed);
    let mut iter = nlri.iter().peekable();
    while iter.peek().is_some() {
        let mut msg = Vec::with_capacity(max_len.min(fixed + nlri.len() * 17));
        start_message(&mut msg, UPDATE);
        msg.extend_from_slice(&[0, 0, 0, 0]);
        let used = if afi == Afi::Ipv4 {
            msg.extend_from_slice(&common);
            put_prefixes(&mut msg, &mut iter, room)
        } else {
            msg.extend_from_slice(&mp_head);
            let used = put_prefixes(&mut msg, &mut iter, room);
            let mp_len = (mp_head.len() - 4 + used) as u16;
            msg[UPDATE_FIXED + 2..UPDATE_FIXED + 4].copy_from_slice(&mp_len.to_be_bytes());
            msg.extend_from_slice(&common);
            used
        };
        if used == 0 {
            tracing::warn!(
                max_len,
                attrs_len = fixed,
                "path attributes leave no room for a prefix; routes skipped"
            );
            return;
        }
        let alen = if afi == Afi::Ipv4 {
            common.len()
        } else {
            mp_head.len() + used + common.len()
        };
        msg[HEADER_LEN + 2..HEADER_LEN + 4].copy_from_slice(&(alen as u16).to_be_bytes());
        finish_header(&mut msg);
        out.push(msg);
    }
}

/// Writes one attribute with the extended length bit when needed.
fn put(out: &mut Vec<u8>, flags: u8, type_code: u8, value: &[u8]) {
    if value.len() > 255 {
        out.extend_from_slice(&[flags | FLAG_EXT_LEN, type_code]);
        out.extend_from_slice(&(value.len().min(65535) as u16).to_be_bytes());
        out.extend_from_slice(&value[..value.len().min(65535)]);
    } else {
        out.extend_from_slice(&[flags & !FLAG_EXT_LEN, type_code, value.len() as u8]);
        out.extend_from_slice(value);
    }
}

/// Writes every attribute but MP_REACH_NLRI, in type order.
fn write_attrs(
    ctx: &EncodeCtx,
    a: &PathAttrs,
    v4_nh: Option<std::net::Ipv4Addr>,
    out: &mut Vec<u8>,
) {
    const WK: u8 = FLAG_TRANSITIVE;
    const OT: u8 = FLAG_OPTIONAL | FLAG_TRANSITIVE;
    const ON: u8 = FLAG_OPTIONAL;
    put(out, WK, ORIGIN, &[a.origin as u8]);
    let width = if ctx.asn4 { 4 } else { 2 };
    put(out, WK, AS_PATH, &as_path_bytes(&a.as_path, width, true));
    if let Some(nh) = v4_nh {
        put(out, WK, NEXT_HOP, &nh.octets());
    }
    if let Some(med) = a.med {
        put(out, ON, MED, &med.to_be_bytes());
    }
    if let Some(lp) = a.local_pref {
        put(out, WK, LOCAL_PREF, &lp.to_be_bytes());
    }
    if a.atomic_aggregate {
        put(out, WK, ATOMIC_AGGREGATE, &[]);
    }
    if let Some((asn, id)) = a.aggregator {
        let mut v = Vec::with_capacity(8);
        if ctx.asn4 {
            v.extend_from_slice(&asn.to_be_bytes());
        } else {
            v.extend_from_slice(&u16::try_from(asn).unwrap_or(AS_TRANS as u16).to_be_bytes());
        }
        v.extend_from_slice(&id.octets());
        put(out, OT, AGGREGATOR, &v);
    }
    if !a.communities.is_empty() {
        let v: Vec<u8> = a.communities.iter().flat_map(|c| c.to_be_bytes()).collect();
        put(out, OT, COMMUNITIES, &v);
    }
    if let Some(id) = a.originator_id {
        put(out, ON, ORIGINATOR_ID, &id.octets());
    }
    if !a.cluster_list.is_empty() {
        let v: Vec<u8> = a.cluster_list.iter().flat_map(|c| c.octets()).collect();
        put(out, ON, CLUSTER_LIST, &v);
    }
    if !a.ext_communities.is_empty() {
        put(out, OT, EXT_COMMUNITIES, &a.ext_communities.concat());
    }
    if !ctx.asn4 {
        // RFC 6793 §4.2.2: AS4_PATH when the path holds a 4-octet AS.
        let needs_as4 = a.as_path.iter().any(|s| match s {
            AsSegment::Sequence(v) | AsSegment::Set(v) => v.iter().any(|x| *x > 0xffff),
            _ => false,
        });
        if needs_as4 {
            put(out, OT, AS4_PATH, &as_path_bytes(&a.as_path, 4, false));
        }
        if let Some((asn, id)) = a.aggregator.filter(|(asn, _)| *asn > 0xffff) {
            let mut v = asn.to_be_bytes().to_vec();
            v.extend_from_slice(&id.octets());
            put(out, OT, AS4_AGGREGATOR, &v);
        }
    }
    if !a.large_communities.is_empty() {
        let v: Vec<u8> = a
            .large_communities
            .iter()
            .flatten()
            .flat_map(|w| w.to_be_bytes())
            .collect();
        put(out, OT, LARGE_COMMUNITY, &v);
    }
    for raw in &a.unknown {
        // Types we interpret were written above; never write one twice.
        if expected_flags(raw.type_code).is_none() {
            let flags = raw.flags | FLAG_OPTIONAL | FLAG_TRANSITIVE;
            put(out, flags, raw.type_code, &raw.value);
        }
    }
}

/// AS_PATH value with `width`-octet ASNs (AS_TRANS for larger ones when
/// 2). Empty segments are left out and segments over 255 ASNs split
/// (RFC 4271 §4.3). Without `confed`, confederation segments are left out
/// (AS4_PATH, RFC 6793 §3).
fn as_path_bytes(path: &[AsSegment], width: usize, confed: bool) -> Vec<u8> {
    let mut v = Vec::new();
    for seg in path {
        let (t, asns) = match seg {
            AsSegment::Set(a) => (SEG_SET, a),
            AsSegment::Sequence(a) => (SEG_SEQUENCE, a),
            AsSegment::ConfedSequence(a) if confed => (SEG_CONFED_SEQUENCE, a),
            AsSegment::ConfedSet(a) if confed => (SEG_CONFED_SET, a),
            _ => continue,
        };
        for chunk in asns.chunks(255) {
            v.extend_from_slice(&[t, chunk.len() as u8]);
            for asn in chunk {
                if width == 4 {
                    v.extend_from_slice(&asn.to_be_bytes());
                } else {
                    v.extend_from_slice(
                        &u16::try_from(*asn).unwrap_or(AS_TRANS as u16).to_be_bytes(),
                    );
                }
            }
        }
    }
    v
}
