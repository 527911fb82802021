//! Path attribute values: one check and parse per type, each returning the
//! RFC 7606 approach for a malformed value (sections quoted per case).
//!
//! The attribute TLV framing (flags, length, duplicates) is walked by
//! `update.rs`; this module sees one attribute's flags and value.

use std::net::{Ipv4Addr, Ipv6Addr};

use super::error::*;
use super::nlri::read_prefixes;
use super::open::family;
use super::{DecodeCtx, DecodeError};
use crate::route::{Afi, AsSegment, NextHop, Origin, Prefix, RawAttr};

/// Attribute flags (RFC 4271 §4.3).
pub(crate) const FLAG_OPTIONAL: u8 = 0x80;
pub(crate) const FLAG_TRANSITIVE: u8 = 0x40;
pub(crate) const FLAG_PARTIAL: u8 = 0x20;
pub(crate) const FLAG_EXT_LEN: u8 = 0x10;

/// Attribute type codes.
pub(crate) const ORIGIN: u8 = 1;
pub(crate) const AS_PATH: u8 = 2;
pub(crate) const NEXT_HOP: u8 = 3;
pub(crate) const MED: u8 = 4;
pub(crate) const LOCAL_PREF: u8 = 5;
pub(crate) const ATOMIC_AGGREGATE: u8 = 6;
pub(crate) const AGGREGATOR: u8 = 7;
pub(crate) const COMMUNITIES: u8 = 8;
pub(crate) const ORIGINATOR_ID: u8 = 9;
pub(crate) const CLUSTER_LIST: u8 = 10;
pub(crate) const MP_REACH_NLRI: u8 = 14;
pub(crate) const MP_UNREACH_NLRI: u8 = 15;
pub(crate) const EXT_COMMUNITIES: u8 = 16;
pub(crate) const AS4_PATH: u8 = 17;
pub(crate) const AS4_AGGREGATOR: u8 = 18;
pub(crate) const LARGE_COMMUNITY: u8 = 32;

/// AS_PATH segment types (RFC 4271 §4.3, RFC 5065 §3).
pub(crate) const SEG_SET: u8 = 1;
pub(crate) const SEG_SEQUENCE: u8 = 2;
pub(crate) const SEG_CONFED_SEQUENCE: u8 = 3;
pub(crate) const SEG_CONFED_SET: u8 = 4;

/// What to do about one attribute that is not clean.
#[derive(Debug)]
pub(crate) enum AttrError {
    /// RFC 7606 "attribute discard".
    Discard(String),
    /// RFC 7606 "treat-as-withdraw".
    Withdraw(String),
    /// "session reset": the NOTIFICATION to send.
    Reset(DecodeError),
}

/// MP_REACH_NLRI or MP_UNREACH_NLRI of a family we carry.
#[derive(Debug)]
pub(crate) struct MpNlri {
    pub afi: Afi,
    /// The next hop (MP_REACH_NLRI only).
    pub next_hop: Option<NextHop>,
    pub prefixes: Vec<Prefix>,
}

/// The attributes of one UPDATE as read, before RFC 6793 merging and the
/// mandatory-attribute checks.
#[derive(Debug, Default)]
pub(crate) struct Parsed {
    pub origin: Option<Origin>,
    pub as_path: Option<Vec<AsSegment>>,
    pub next_hop: Option<Ipv4Addr>,
    pub med: Option<u32>,
    pub local_pref: Option<u32>,
    pub atomic_aggregate: bool,
    pub aggregator: Option<(u32, Ipv4Addr)>,
    pub communities: Vec<u32>,
    pub originator_id: Option<Ipv4Addr>,
    pub cluster_list: Vec<Ipv4Addr>,
    pub ext_communities: Vec<[u8; 8]>,
    pub large_communities: Vec<[u32; 3]>,
    pub unknown: Vec<RawAttr>,
    pub as4_path: Option<Vec<AsSegment>>,
    pub as4_aggregator: Option<(u32, Ipv4Addr)>,
    pub mp_reach: Option<MpNlri>,
    pub mp_unreach: Option<MpNlri>,
}

/// The optional and transitive bits a known type must carry, or None for
/// a type we do not interpret.
pub(crate) fn expected_flags(type_code: u8) -> Option<u8> {
    const WELL_KNOWN: u8 = FLAG_TRANSITIVE;
    const OPT_TRANS: u8 = FLAG_OPTIONAL | FLAG_TRANSITIVE;
    const OPT_NON_TRANS: u8 = FLAG_OPTIONAL;
    Some(match type_code {
        ORIGIN | AS_PATH | NEXT_HOP | LOCAL_PREF | ATOMIC_AGGREGATE => WELL_KNOWN,
        MED | ORIGINATOR_ID | CLUSTER_LIST | MP_REACH_NLRI | MP_UNREACH_NLRI => OPT_NON_TRANS,
        AGGREGATOR | COMMUNITIES | EXT_COMMUNITIES | AS4_PATH | AS4_AGGREGATOR
        | LARGE_COMMUNITY => OPT_TRANS,
        _ => return None,
    })
}

/// Attribute name for messages.
pub(crate) fn name(type_code: u8) -> &'static str {
    match type_code {
        ORIGIN => "ORIGIN",
        AS_PATH => "AS_PATH",
        NEXT_HOP => "NEXT_HOP",
        MED => "MULTI_EXIT_DISC",
        LOCAL_PREF => "LOCAL_PREF",
        ATOMIC_AGGREGATE => "ATOMIC_AGGREGATE",
        AGGREGATOR => "AGGREGATOR",
        COMMUNITIES => "COMMUNITIES",
        ORIGINATOR_ID => "ORIGINATOR_ID",
        CLUSTER_LIST => "CLUSTER_LIST",
        MP_REACH_NLRI => "MP_REACH_NLRI",
        MP_UNREACH_NLRI => "MP_UNREACH_NLRI",
        EXT_COMMUNITIES => "EXTENDED_COMMUNITIES",
        AS4_PATH => "AS4_PATH",
        AS4_AGGREGATOR => "AS4_AGGREGATOR",
        LARGE_COMMUNITY => "LARGE_COMMUNITY",
        _ => "unknown attribute",
    }
}

/// Reads one attribute into `p`. `raw` is the whole TLV (the NOTIFICATION
/// data for attribute errors, RFC 4271 §6.3).
pub(crate) fn parse_attr(
    p: &mut Parsed,
    flags: u8,
    type_code: u8,
    value: &[u8],
    raw: &[u8],
    ctx: &DecodeCtx,
) -> Result<(), AttrError> {
    let Some(expected) = expected_flags(type_code) else {
        return unknown_attr(p, flags, type_code, value, raw);
    };
    let name = name(type_code);
    let len = value.len();
    if type_code == LOCAL_PREF && !ctx.ibgp {
        // RFC 7606 §7.5: LOCAL_PREF from an external neighbor SHALL be
        // discarded ("attribute discard"), whatever its value.
        return Err(AttrError::Discard(
            "LOCAL_PREF received from an external peer (RFC 7606 §7.5)".into(),
        ));
    }
    let flags_ok = flags & (FLAG_OPTIONAL | FLAG_TRANSITIVE) == expected;
    let flags_msg = || {
        format!(
            "{name} flags {flags:#04x}: optional/transitive bits must be {expected:#04x} (RFC 7606 §3 c)"
        )
    };
    match type_code {
        // The MP attributes are parsed even with wrong flags: treat-as-withdraw
        // needs their NLRI (RFC 7606 §3 j).
        MP_REACH_NLRI | MP_UNREACH_NLRI => {
            parse_mp(p, type_code, value, raw, ctx)?;
            return if flags_ok {
                Ok(())
            } else {
                Err(AttrError::Withdraw(flags_msg()))
            };
        }
        // RFC 7606 §3 c: conflicting flags make the attribute malformed, and
        // malformed is handled as the attribute's own section says:
        // discard for these (§7.6, §7.7, RFC 6793 §6), treat-as-withdraw
        // for the others.
        ATOMIC_AGGREGATE | AGGREGATOR | AS4_PATH | AS4_AGGREGATOR if !flags_ok => {
            return Err(AttrError::Discard(flags_msg()))
        }
        _ if !flags_ok => return Err(AttrError::Withdraw(flags_msg())),
        _ => {}
    }
    let withdraw = |what: String| Err(AttrError::Withdraw(what));
    let discard = |what: String| Err(AttrError::Discard(what));
    match type_code {
        ORIGIN => {
            // RFC 7606 §7.1: length != 1 or undefined value: treat-as-withdraw.
            let o = match value {
                [0] => Origin::Igp,
                [1] => Origin::Egp,
                [2] => Origin::Incomplete,
                [v] => return withdraw(format!("ORIGIN value {v} is undefined (RFC 7606 §7.1)")),
                _ => return withdraw(format!("ORIGIN length {len} is not 1 (RFC 7606 §7.1)")),
            };
            p.origin = Some(o);
        }
        AS_PATH => {
            // RFC 7606 §7.2: malformed AS_PATH: treat-as-withdraw.
            let width = if ctx.asn4 { 4 } else { 2 };
            let path = read_as_path(value, width)
                .map_err(|e| AttrError::Withdraw(format!("AS_PATH {e} (RFC 7606 §7.2)")))?;
            let confed = path
                .iter()
                .any(|s| matches!(s, AsSegment::ConfedSequence(_) | AsSegment::ConfedSet(_)));
            if confed && !ctx.ibgp {
                // We are in no confederation: confederation segments from an
                // external peer are malformed (RFC 5065 §5, RFC 7606 §7.2).
                return withdraw(
                    "AS_PATH from an external peer holds confederation segments (RFC 5065 §5)"
                        .into(),
                );
            }
            p.as_path = Some(path);
        }
        NEXT_HOP => {
            // RFC 7606 §7.3: length != 4: treat-as-withdraw; a semantically
            // invalid address (RFC 4271 §6.3) is ignored as a route: ditto.
            let Ok(a) = <[u8; 4]>::try_from(value) else {
                return withdraw(format!("NEXT_HOP length {len} is not 4 (RFC 7606 §7.3)"));
            };
            let a = Ipv4Addr::from(a);
            if a.is_unspecified() || a.is_multicast() || a.octets()[0] >= 240 {
                return withdraw(format!(
                    "NEXT_HOP {a} is not a valid unicast address (RFC 4271 §6.3)"
                ));
            }
            p.next_hop = Some(a);
        }
        MED | LOCAL_PREF | ORIGINATOR_ID => {
            // RFC 7606 §7.4 (MED), §7.5 (LOCAL_PREF from internal peers),
            // RFC 7606 §7.9 (ORIGINATOR_ID): length != 4: treat-as-withdraw.
            let Ok(v) = <[u8; 4]>::try_from(value) else {
                return withdraw(format!(
                    "{name} length {len} is not 4 (RFC 7606 §7.4/§7.5/§7.9)"
                ));
            };
            match type_code {
                MED => p.med = Some(u32::from_be_bytes(v)),
                LOCAL_PREF => p.local_pref = Some(u32::from_be_bytes(v)),
                _ => p.originator_id = Some(Ipv4Addr::from(v)),
            }
        }
        ATOMIC_AGGREGATE => {
            // RFC 7606 §7.6: length != 0: attribute discard.
            if len != 0 {
                return discard(format!(
                    "ATOMIC_AGGREGATE length {len} is not 0 (RFC 7606 §7.6)"
                ));
            }
            p.atomic_aggregate = true;
        }
        AGGREGATOR | AS4_AGGREGATOR => {
            // RFC 7606 §7.7 / RFC 6793 §6: wrong length: attribute discard;
            // RFC 7607 §2: AS 0 in AGGREGATOR: attribute discard.
            let want = if type_code == AGGREGATOR && !ctx.asn4 {
                6
            } else {
                8
            };
            if len != want {
                return discard(format!("{name} length {len} is not {want} (RFC 7606 §7.7)"));
            }
            let (asn, id) = value.split_at(want - 4);
            let asn = asn.iter().fold(0u32, |a, b| (a << 8) | u32::from(*b));
            if asn == 0 {
                return discard(format!("{name} AS is 0 (RFC 7607 §2)"));
            }
            let id = Ipv4Addr::new(id[0], id[1], id[2], id[3]);
            if type_code == AGGREGATOR {
                p.aggregator = Some((asn, id));
            } else {
                p.as4_aggregator = Some((asn, id));
            }
        }
        AS4_PATH => {
            // RFC 6793 §6 / RFC 7606 §7.x: malformed AS4_PATH: discard.
            let path = read_as_path(value, 4)
                .map_err(|e| AttrError::Discard(format!("AS4_PATH {e} (RFC 6793 §6)")))?;
            p.as4_path = Some(path);
        }
        COMMUNITIES | CLUSTER_LIST => {
            // RFC 7606 §7.8 / §7.10: not a non-zero multiple of 4:
            // treat-as-withdraw.
            if len == 0 || len % 4 != 0 {
                return withdraw(format!(
                    "{name} length {len} is not a non-zero multiple of 4 (RFC 7606 §7.8/§7.10)"
                ));
            }
            let words = value.chunks_exact(4).map(|c| [c[0], c[1], c[2], c[3]]);
            if type_code == COMMUNITIES {
                p.communities = words.map(u32::from_be_bytes).collect();
            } else {
                p.cluster_list = words.map(Ipv4Addr::from).collect();
            }
        }
        EXT_COMMUNITIES => {
            // RFC 7606 §7.14: not a non-zero multiple of 8: treat-as-withdraw.
            if len == 0 || len % 8 != 0 {
                return withdraw(format!(
                    "EXTENDED_COMMUNITIES length {len} is not a non-zero multiple of 8 (RFC 7606 §7.14)"
                ));
            }
            p.ext_communities = value
                .chunks_exact(8)
                .map(|c| <[u8; 8]>::try_from(c).unwrap_or_default())
                .collect();
        }
        LARGE_COMMUNITY => {
            // RFC 8092 §5: not a non-zero multiple of 12: treat-as-withdraw.
            if len == 0 || len % 12 != 0 {
                return withdraw(format!(
                    "LARGE_COMMUNITY length {len} is not a non-zero multiple of 12 (RFC 8092 §5)"
                ));
            }
            p.large_communities = value
                .chunks_exact(12)
                .map(|c| {
                    let w = |i: usize| u32::from_be_bytes([c[i], c[i + 1], c[i + 2], c[i + 3]]);
                    [w(0), w(4), w(8)]
                })
                .collect();
        }
        _ => {}
    }
    Ok(())
}

/// An attribute type we do not interpret (RFC 4271 §5, §6.3).
fn unknown_attr(
    p: &mut Parsed,
    flags: u8,
    type_code: u8,
    value: &[u8],
    raw: &[u8],
) -> Result<(), AttrError> {
    if flags & FLAG_OPTIONAL == 0 {
        // RFC 4271 §6.3: 3/2 Unrecognized Well-known Attribute, data = the
        // attribute; RFC 7606 keeps this a session reset.
        return Err(AttrError::Reset(DecodeError::new(
            UPDATE_ERROR,
            UNRECOGNIZED_WELL_KNOWN,
            raw.to_vec(),
            format!("attribute type {type_code} is flagged well-known but unrecognized"),
        )));
    }
    if flags & FLAG_TRANSITIVE != 0 {
        // RFC 4271 §5: kept for propagation with the Partial bit set.
        p.unknown.push(RawAttr {
            flags: (flags & (FLAG_OPTIONAL | FLAG_TRANSITIVE)) | FLAG_PARTIAL,
            type_code,
            value: value.to_vec(),
        });
    }
    // Unrecognized optional non-transitive: quietly ignored (RFC 4271 §5).
    Ok(())
}

/// Reads MP_REACH_NLRI / MP_UNREACH_NLRI (RFC 4760 §3, §4).
///
/// A malformed one is a session reset with 3/9 Optional Attribute Error and
/// the attribute as data: RFC 7606 §7.11 ("the 'session reset' approach or
/// the 'AFI/SAFI disable' approach MUST be used" when the next hop length
/// is inconsistent) and §5.3 (malformed NLRI inside them), with the
/// subcode of RFC 4760 §7. We do not implement AFI/SAFI disable.
fn parse_mp(
    p: &mut Parsed,
    type_code: u8,
    v: &[u8],
    raw: &[u8],
    ctx: &DecodeCtx,
) -> Result<(), AttrError> {
    let reset = |what: String| {
        AttrError::Reset(DecodeError::new(
            UPDATE_ERROR,
            OPTIONAL_ATTRIBUTE_ERROR,
            raw.to_vec(),
            format!("{} {what} (RFC 7606 §7.11, §5.3)", name(type_code)),
        ))
    };
    if v.len() < 3 {
        return Err(reset(format!(
            "length {} is too short for AFI/SAFI",
            v.len()
        )));
    }
    let (afi_n, safi) = (u16::from_be_bytes([v[0], v[1]]), v[2]);
    let Some(afi) = family(afi_n, safi) else {
        // RFC 4760 §7 family not advertised: ignore it (NLRI not parsed).
        return Err(AttrError::Discard(format!(
            "{} for AFI {afi_n} SAFI {safi} ignored: family not supported",
            name(type_code)
        )));
    };
    let mut next_hop = None;
    let mut nlri = &v[3..];
    if type_code == MP_REACH_NLRI {
        let Some(&nh_len) = v.get(3) else {
            return Err(reset("has no next hop length".into()));
        };
        let nh_end = 4 + usize::from(nh_len);
        let Some(nh) = v.get(4..nh_end) else {
            return Err(reset(format!(
                "next hop length {nh_len} overruns the attribute"
            )));
        };
        if v.len() < nh_end + 1 {
            return Err(reset("has no reserved octet after the next hop".into()));
        }
        let ipv6 = |b: &[u8]| Ipv6Addr::from(<[u8; 16]>::try_from(b).unwrap_or_default());
        next_hop = Some(match (afi, nh.len()) {
            (Afi::Ipv4, 4) => NextHop::V4(Ipv4Addr::new(nh[0], nh[1], nh[2], nh[3])),
            (Afi::Ipv6, 16) => NextHop::V6 {
                global: ipv6(nh),
                link_local: None,
            },
            (Afi::Ipv6, 32) => NextHop::V6 {
                global: ipv6(&nh[..16]),
                link_local: Some(ipv6(&nh[16..])),
            },
            (_, n) => return Err(reset(format!("next hop length {n} is invalid for {afi:?}"))),
        });
        nlri = &v[nh_end + 1..];
    }
    let mut prefixes = Vec::new();
    read_prefixes(nlri, afi, &mut prefixes).map_err(|e| reset(format!("NLRI: {}", e.0)))?;
    if !ctx.families.contains(&afi) {
        // RFC 4760 §7 (not negotiated): ignored, with an issue.
        return Err(AttrError::Discard(format!(
            "{} for {afi:?} ignored: family not negotiated",
            name(type_code)
        )));
    }
    let mp = MpNlri {
        afi,
        next_hop,
        prefixes,
    };
    if type_code == MP_REACH_NLRI {
        p.mp_reach = Some(mp);
        if let Some(NextHop::V6 { global, .. }) = next_hop {
            if global.is_multicast() {
                // RFC 4271 §6.3 semantics applied to the MP next hop.
                return Err(AttrError::Withdraw(format!(
                    "MP_REACH_NLRI next hop {global} is multicast"
                )));
            }
        }
        if let Some(NextHop::V4(a)) = next_hop {
            if a.is_unspecified() || a.is_multicast() || a.octets()[0] >= 240 {
                return Err(AttrError::Withdraw(format!(
                    "MP_REACH_NLRI next hop {a} is not a valid unicast address"
                )));
            }
        }
    } else {
        p.mp_unreach = Some(mp);
    }
    Ok(())
}

/// Reads AS_PATH / AS4_PATH segments of `width`-octet ASNs. Malformed
/// (RFC 7606 §7.2): unknown segment type, zero segment length, overrun,
/// a lone trailing octet; also AS 0 (RFC 7607 §2).
pub(crate) fn read_as_path(v: &[u8], width: usize) -> Result<Vec<AsSegment>, String> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < v.len() {
        let (Some(&t), Some(&n)) = (v.get(i), v.get(i + 1)) else {
            return Err(format!("has 1 trailing octet at offset {i}"));
        };
        if n == 0 {
            return Err(format!("segment at offset {i} has length 0"));
        }
        let end = i + 2 + usize::from(n) * width;
        let Some(body) = v.get(i + 2..end) else {
            return Err(format!(
                "segment at offset {i} of {n} ASNs overruns the attribute"
            ));
        };
        let asns: Vec<u32> = body
            .chunks_exact(width)
            .map(|c| c.iter().fold(0u32, |a, b| (a << 8) | u32::from(*b)))
            .collect();
        if asns.contains(&0) {
            return Err(format!("segment at offset {i} holds AS 0 (RFC 7607)"));
        }
        out.push(match t {
            SEG_SET => AsSegment::Set(asns),
            SEG_SEQUENCE => AsSegment::Sequence(asns),
            SEG_CONFED_SEQUENCE => AsSegment::ConfedSequence(asns),
            SEG_CONFED_SET => AsSegment::ConfedSet(asns),
            t => return Err(format!("segment type {t} at offset {i} is undefined")),
        });
        i = end;
    }
    Ok(out)
}

/// RFC 6793 §4.2.3: rebuild the path of a 2-octet session from AS_PATH and
/// AS4_PATH. If AS_PATH counts fewer ASes than AS4_PATH, AS4_PATH is
/// ignored; otherwise the leading ASes of AS_PATH that AS4_PATH lacks are
/// kept and AS4_PATH appended. Confederation segments count zero (and are
/// dropped from AS4_PATH, RFC 6793 §3); a set counts one.
pub(crate) fn merge_as4_path(as_path: Vec<AsSegment>, as4: Vec<AsSegment>) -> Vec<AsSegment> {
    let as4: Vec<AsSegment> = as4
        .into_iter()
        .filter(|s| matches!(s, AsSegment::Sequence(_) | AsSegment::Set(_)))
        .collect();
    let (n2, n4) = (count(&as_path), count(&as4));
    if n2 < n4 {
        return as_path;
    }
    let mut keep = n2 - n4;
    let mut out = Vec::new();
    for seg in as_path {
        match seg {
            AsSegment::ConfedSequence(_) | AsSegment::ConfedSet(_) => out.push(seg),
            AsSegment::Set(_) if keep > 0 => {
                keep -= 1;
                out.push(seg);
            }
            AsSegment::Sequence(mut v) if keep > 0 => {
                v.truncate(keep);
                keep -= v.len();
                out.push(AsSegment::Sequence(v));
            }
            _ => break,
        }
    }
    let mut as4 = as4.into_iter();
    // The kept leading sequence and AS4_PATH's first one are one sequence.
    match (out.last_mut(), as4.next()) {
        (Some(AsSegment::Sequence(a)), Some(AsSegment::Sequence(b))) => a.extend(b),
        (_, Some(seg)) => out.push(seg),
        (_, None) => {}
    }
    out.extend(as4);
    out
}

/// AS count for RFC 6793 §4.2.3 (as RFC 4271 §9.1.2.2 a counts).
fn count(path: &[AsSegment]) -> usize {
    path.iter()
        .map(|s| match s {
            AsSegment::Sequence(v) => v.len(),
            AsSegment::Set(_) => 1,
            _ => 0,
        })
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;
    use AsSegment::*;

    #[test]
    fn as4_path_replaces_the_trailing_ases_and_keeps_the_leading_ones() {
        // An old speaker prepended 65002 and 65003 (a set counts one).
        let two = vec![Set(vec![65003, 65004]), Sequence(vec![65002, 65000, 23456])];
        let four = vec![Sequence(vec![65000, 4_200_000_001])];
        assert_eq!(
            merge_as4_path(two, four),
            vec![
                Set(vec![65003, 65004]),
                Sequence(vec![65002, 65000, 4_200_000_001])
            ]
        );
    }

    #[test]
    fn as4_path_longer_than_as_path_is_ignored() {
        let two = vec![Sequence(vec![23456])];
        let four = vec![Sequence(vec![1, 4_200_000_001])];
        assert_eq!(merge_as4_path(two.clone(), four), two);
    }

    #[test]
    fn confederation_segments_stay_in_front_and_leave_as4_path() {
        let two = vec![ConfedSequence(vec![1]), Sequence(vec![23456])];
        let four = vec![ConfedSequence(vec![9]), Sequence(vec![4_200_000_001])];
        assert_eq!(
            merge_as4_path(two, four),
            vec![ConfedSequence(vec![1]), Sequence(vec![4_200_000_001])]
        );
    }

    #[test]
    fn as_path_reader_rejects_each_malformation() {
        assert!(read_as_path(&[2, 1, 0, 1], 2).is_ok());
        assert!(read_as_path(&[2, 0], 2).unwrap_err().contains("length 0"));
        assert!(read_as_path(&[2, 2, 0, 1], 2)
            .unwrap_err()
            .contains("overruns"));
        assert!(read_as_path(&[2, 1, 0, 1, 2], 2)
            .unwrap_err()
            .contains("trailing"));
        assert!(read_as_path(&[9, 1, 0, 1], 2)
            .unwrap_err()
            .contains("type 9"));
        assert!(read_as_path(&[2, 1, 0, 0], 2).unwrap_err().contains("AS 0"));
    }
}
