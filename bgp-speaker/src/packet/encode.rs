//! UPDATE packing, the hot path: attributes are encoded once per call, then
//! as many prefixes as fit go into each message, never over the
//! negotiated maximum length (netgauze's encoder does not check it).
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
/// Routes that cannot be encoded are never sent malformed: IPv4 prefixes
/// whose next hop is IPv6 (RFC 8950 is not negotiated), or attributes too
/// large for `ctx.max_len`. They are returned (with a warning logged): a
/// session withdraws them, so that the peer does not keep an older path
/// of theirs. An IPv4 next hop for IPv6 prefixes is sent IPv4-mapped
/// (`::ffff:a.b.c.d`).
pub fn encode_announce<P: Copy + Into<Prefix>>(
    ctx: &EncodeCtx,
    attrs: &PathAttrs,
    nlri: &[P],
    out: &mut Vec<Vec<u8>>,
) -> Vec<Prefix> {
    let mut unsent = Vec::new();
    let Some(first) = nlri.first() else {
        return unsent;
    };
    let afi = afi_of(&(*first).into());
    if nlri.iter().all(|p| afi_of(&(*p).into()) == afi) {
        announce_family(ctx, attrs, afi, nlri, out, &mut unsent);
    } else {
        for afi in [Afi::Ipv4, Afi::Ipv6] {
            let part: Vec<Prefix> = nlri
                .iter()
                .map(|p| (*p).into())
                .filter(|p| afi_of(p) == afi)
                .collect();
            if !part.is_empty() {
                announce_family(ctx, attrs, afi, &part, out, &mut unsent);
            }
        }
    }
    unsent
}

/// Appends the UPDATE messages withdrawing `prefixes` to `out`: IPv4 ones
/// in WITHDRAWN ROUTES, IPv6 ones in MP_UNREACH_NLRI, in separate messages,
/// each as full as `ctx.max_len` allows.
pub fn encode_withdraw<P: Copy + Into<Prefix>>(
    ctx: &EncodeCtx,
    prefixes: &[P],
    out: &mut Vec<Vec<u8>>,
) {
    let max_len = ctx.max_len.min(MAX_EXTENDED_LEN);
    for afi in [Afi::Ipv4, Afi::Ipv6] {
        let mut iter = prefixes
            .iter()
            .map(|p| (*p).into())
            .filter(|p: &Prefix| afi_of(p) == afi)
            .peekable();
        while iter.peek().is_some() {
            let mut msg = Vec::with_capacity(max_len.min(4096));
            start_message(&mut msg, UPDATE);
            if afi == Afi::Ipv4 {
                msg.extend_from_slice(&[0, 0]);
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
            }
            let start = msg.len();
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
fn put_prefixes(
    msg: &mut Vec<u8>,
    iter: &mut std::iter::Peekable<impl Iterator<Item = Prefix>>,
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

/// Announces prefixes of one family; those that cannot be go to `unsent`.
fn announce_family<P: Copy + Into<Prefix>>(
    ctx: &EncodeCtx,
    attrs: &PathAttrs,
    afi: Afi,
    nlri: &[P],
    out: &mut Vec<Vec<u8>>,
    unsent: &mut Vec<Prefix>,
) {
    let max_len = ctx.max_len.min(MAX_EXTENDED_LEN);
    match (afi, attrs.next_hop) {
        (Afi::Ipv4, NextHop::V4(nh)) => announce_v4(ctx, attrs, nh, nlri, max_len, out, unsent),
        (Afi::Ipv4, NextHop::V6 { .. }) => {
            tracing::warn!(
                prefixes = nlri.len(),
                "IPv4 routes with an IPv6 next hop cannot be sent; withdrawn instead"
            );
            unsent.extend(nlri.iter().map(|p| (*p).into()));
        }
        (Afi::Ipv6, _) => announce_mp(ctx, attrs, afi, nlri, max_len, out, unsent),
    }
}

/// IPv4: the attributes are written straight into the first message, and
/// copied from it into the next ones.
fn announce_v4<P: Copy + Into<Prefix>>(
    ctx: &EncodeCtx,
    attrs: &PathAttrs,
    nh: std::net::Ipv4Addr,
    nlri: &[P],
    max_len: usize,
    out: &mut Vec<Vec<u8>>,
    unsent: &mut Vec<Prefix>,
) {
    let first = out.len();
    let mut iter = nlri.iter().map(|p| (*p).into()).peekable();
    let mut attr_range = 0..0;
    while iter.peek().is_some() {
        let cap = UPDATE_FIXED + size_hint(attrs) + 5 * iter.len();
        let mut msg = Vec::with_capacity(cap.min(max_len));
        start_message(&mut msg, UPDATE);
        msg.extend_from_slice(&[0, 0, 0, 0]);
        if out.len() == first {
            write_attrs(ctx, attrs, Some(nh), &mut msg);
            attr_range = UPDATE_FIXED..msg.len();
        } else {
            msg.extend_from_slice(&out[first][attr_range.clone()]);
        }
        let alen = attr_range.len();
        let used = put_prefixes(
            &mut msg,
            &mut iter,
            max_len.saturating_sub(UPDATE_FIXED + alen),
        );
        if used == 0 {
            tracing::warn!(
                max_len,
                attrs_len = alen,
                "path attributes leave no room for a prefix; routes withdrawn instead"
            );
            unsent.extend(iter);
            return;
        }
        msg[HEADER_LEN + 2..HEADER_LEN + 4].copy_from_slice(&(alen as u16).to_be_bytes());
        finish_header(&mut msg);
        out.push(msg);
    }
}

/// IPv6: MP_REACH_NLRI (first attribute, RFC 7606 §5.1) holds the NLRI,
/// the other attributes follow, encoded once.
fn announce_mp<P: Copy + Into<Prefix>>(
    ctx: &EncodeCtx,
    attrs: &PathAttrs,
    afi: Afi,
    nlri: &[P],
    max_len: usize,
    out: &mut Vec<Vec<u8>>,
    unsent: &mut Vec<Prefix>,
) {
    let mut common = Vec::with_capacity(size_hint(attrs));
    write_attrs(ctx, attrs, None, &mut common);
    // MP_REACH_NLRI head: flags, type, length (2), AFI, SAFI, next hop
    // length, next hop, reserved.
    let (global, ll) = match attrs.next_hop {
        NextHop::V6 { global, link_local } => (global, link_local),
        NextHop::V4(a) => (a.to_ipv6_mapped(), None),
    };
    let mut mp_head = Vec::with_capacity(41);
    mp_head.extend_from_slice(&[FLAG_OPTIONAL | FLAG_EXT_LEN, MP_REACH_NLRI, 0, 0]);
    mp_head.extend_from_slice(&afi_number(afi).to_be_bytes());
    mp_head.push(1);
    mp_head.push(if ll.is_some() { 32 } else { 16 });
    mp_head.extend_from_slice(&global.octets());
    if let Some(ll) = ll {
        mp_head.extend_from_slice(&ll.octets());
    }
    mp_head.push(0);
    let fixed = UPDATE_FIXED + mp_head.len() + common.len();
    let room = max_len.saturating_sub(fixed);
    let mut iter = nlri.iter().map(|p| (*p).into()).peekable();
    while iter.peek().is_some() {
        let mut msg = Vec::with_capacity(max_len.min(fixed + 17 * iter.len()));
        start_message(&mut msg, UPDATE);
        msg.extend_from_slice(&[0, 0, 0, 0]);
        msg.extend_from_slice(&mp_head);
        let used = put_prefixes(&mut msg, &mut iter, room);
        if used == 0 {
            tracing::warn!(
                max_len,
                attrs_len = fixed,
                "path attributes leave no room for a prefix; routes withdrawn instead"
            );
            unsent.extend(iter);
            return;
        }
        let mp_len = (mp_head.len() - 4 + used) as u16;
        msg[UPDATE_FIXED + 2..UPDATE_FIXED + 4].copy_from_slice(&mp_len.to_be_bytes());
        msg.extend_from_slice(&common);
        let alen = mp_head.len() + used + common.len();
        msg[HEADER_LEN + 2..HEADER_LEN + 4].copy_from_slice(&(alen as u16).to_be_bytes());
        finish_header(&mut msg);
        out.push(msg);
    }
}

/// Writes an attribute header for a value of `len` octets, with the
/// extended length bit when needed. Callers keep `len` <= 65535 (values
/// longer than a message can hold never reach the wire: the packers check
/// the total against `max_len`).
fn header(out: &mut Vec<u8>, flags: u8, type_code: u8, len: usize) {
    if len > 255 {
        out.extend_from_slice(&[flags | FLAG_EXT_LEN, type_code]);
        out.extend_from_slice(&(len.min(65535) as u16).to_be_bytes());
    } else {
        out.extend_from_slice(&[flags & !FLAG_EXT_LEN, type_code, len as u8]);
    }
}

/// Writes one attribute.
fn put(out: &mut Vec<u8>, flags: u8, type_code: u8, value: &[u8]) {
    let value = &value[..value.len().min(65535)];
    header(out, flags, type_code, value.len());
    out.extend_from_slice(value);
}

/// A rough size of the encoded attributes, to size buffers once.
fn size_hint(a: &PathAttrs) -> usize {
    let asns: usize = a.as_path.iter().map(|s| 2 + 4 * seg_asns(s).len()).sum();
    64 + 2 * asns
        + 4 * a.communities.len()
        + 4 * a.cluster_list.len()
        + 8 * a.ext_communities.len()
        + 12 * a.large_communities.len()
        + a.unknown.iter().map(|u| 4 + u.value.len()).sum::<usize>()
}

fn seg_asns(s: &AsSegment) -> &[u32] {
    match s {
        AsSegment::Sequence(v)
        | AsSegment::Set(v)
        | AsSegment::ConfedSequence(v)
        | AsSegment::ConfedSet(v) => v,
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
    write_as_path(out, AS_PATH, &a.as_path, width, true);
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
        if ctx.asn4 {
            header(out, OT, AGGREGATOR, 8);
            out.extend_from_slice(&asn.to_be_bytes());
        } else {
            header(out, OT, AGGREGATOR, 6);
            out.extend_from_slice(&u16::try_from(asn).unwrap_or(AS_TRANS as u16).to_be_bytes());
        }
        out.extend_from_slice(&id.octets());
    }
    if !a.communities.is_empty() {
        header(out, OT, COMMUNITIES, 4 * a.communities.len());
        for c in &a.communities {
            out.extend_from_slice(&c.to_be_bytes());
        }
    }
    if let Some(id) = a.originator_id {
        put(out, ON, ORIGINATOR_ID, &id.octets());
    }
    if !a.cluster_list.is_empty() {
        header(out, ON, CLUSTER_LIST, 4 * a.cluster_list.len());
        for c in &a.cluster_list {
            out.extend_from_slice(&c.octets());
        }
    }
    if !a.ext_communities.is_empty() {
        header(out, OT, EXT_COMMUNITIES, 8 * a.ext_communities.len());
        for c in &a.ext_communities {
            out.extend_from_slice(c);
        }
    }
    if !ctx.asn4 {
        // RFC 6793 §4.2.2: AS4_PATH when the path holds a 4-octet AS.
        let needs_as4 = a.as_path.iter().any(|s| match s {
            AsSegment::Sequence(v) | AsSegment::Set(v) => v.iter().any(|x| *x > 0xffff),
            _ => false,
        });
        if needs_as4 {
            write_as_path(out, AS4_PATH, &a.as_path, 4, false);
        }
        if let Some((asn, id)) = a.aggregator.filter(|(asn, _)| *asn > 0xffff) {
            header(out, OT, AS4_AGGREGATOR, 8);
            out.extend_from_slice(&asn.to_be_bytes());
            out.extend_from_slice(&id.octets());
        }
    }
    if !a.large_communities.is_empty() {
        header(out, OT, LARGE_COMMUNITY, 12 * a.large_communities.len());
        for w in a.large_communities.iter().flatten() {
            out.extend_from_slice(&w.to_be_bytes());
        }
    }
    for raw in &a.unknown {
        // Types we interpret were written above; never write one twice.
        if expected_flags(raw.type_code).is_none() {
            let flags = raw.flags | FLAG_OPTIONAL | FLAG_TRANSITIVE;
            put(out, flags, raw.type_code, &raw.value);
        }
    }
}

/// Writes AS_PATH (or AS4_PATH) with `width`-octet ASNs (AS_TRANS for
/// larger ones when 2). Empty segments are left out and segments over 255
/// ASNs split (RFC 4271 §4.3). Without `confed`, confederation segments
/// are left out (AS4_PATH, RFC 6793 §3).
fn write_as_path(out: &mut Vec<u8>, type_code: u8, path: &[AsSegment], width: usize, confed: bool) {
    let segs = || {
        path.iter().filter_map(move |seg| match seg {
            AsSegment::Set(a) => Some((SEG_SET, a)),
            AsSegment::Sequence(a) => Some((SEG_SEQUENCE, a)),
            AsSegment::ConfedSequence(a) if confed => Some((SEG_CONFED_SEQUENCE, a)),
            AsSegment::ConfedSet(a) if confed => Some((SEG_CONFED_SET, a)),
            _ => None,
        })
    };
    let len: usize = segs()
        .map(|(_, a)| a.len().div_ceil(255) * 2 + a.len() * width)
        .sum();
    let flags = if type_code == AS_PATH {
        FLAG_TRANSITIVE
    } else {
        FLAG_OPTIONAL | FLAG_TRANSITIVE
    };
    header(out, flags, type_code, len);
    for (t, asns) in segs() {
        for chunk in asns.chunks(255) {
            out.extend_from_slice(&[t, chunk.len() as u8]);
            for asn in chunk {
                if width == 4 {
                    out.extend_from_slice(&asn.to_be_bytes());
                } else {
                    out.extend_from_slice(
                        &u16::try_from(*asn).unwrap_or(AS_TRANS as u16).to_be_bytes(),
                    );
                }
            }
        }
    }
}
