//! UPDATE decoding (RFC 4271 §4.3, §6.3) with the revised error handling
//! of RFC 7606. We walk the framing ourselves: the length fields, each
//! attribute TLV, duplicates and the mandatory attributes, so that every
//! problem gets the RFC 7606 approach (session reset, treat-as-withdraw,
//! attribute discard) and every NOTIFICATION the RFC 4271 data.
//!
//! Values are parsed right in the walk (`attribute.rs`), not by netgauze:
//! the walk has already read every octet once, netgauze's strict parse
//! stops at the first bad attribute and its lenient one desyncs on some
//! bad lengths (found by feeding it malformed UPDATEs), and a second pass plus a conversion of
//! netgauze's types into ours would cost time on the hot path.

use super::attribute::*;
use super::nlri::read_prefixes;
use super::open::AS_TRANS;
use super::{Announcement, AttrAction, AttrIssue, DecodeCtx, DecodeError, Update, HEADER_LEN};
use crate::route::{Afi, NextHop, Origin, PathAttrs};

/// Decodes the UPDATE `msg` (header included, framed).
pub(crate) fn decode_update(msg: &[u8], ctx: &DecodeCtx) -> Result<Update, DecodeError> {
    let body = &msg[HEADER_LEN..];
    // RFC 4271 §6.3: Withdrawn Routes Length or Total Attribute Length too
    // large for the message: 3/1 Malformed Attribute List. RFC 7606 §4
    // leaves these two fields a session reset: nothing after them can be
    // located.
    let wlen = usize::from(u16::from_be_bytes([body[0], body[1]]));
    let Some(alen_field) = body.get(2 + wlen..4 + wlen) else {
        return Err(DecodeError::malformed_attr_list(format!(
            "withdrawn routes length {wlen} overruns the UPDATE body of {} octets",
            body.len()
        )));
    };
    let alen = usize::from(u16::from_be_bytes([alen_field[0], alen_field[1]]));
    let Some(attrs) = body.get(4 + wlen..4 + wlen + alen) else {
        return Err(DecodeError::malformed_attr_list(format!(
            "total path attribute length {alen} overruns the UPDATE body of {} octets",
            body.len()
        )));
    };
    let nlri_bytes = &body[4 + wlen + alen..];

    // RFC 4271 §6.3 / RFC 7606 §5.3 and §3 i: a malformed Withdrawn Routes
    // or NLRI field is 3/10 Invalid Network Field, session reset (treat-as-
    // withdraw cannot apply to prefixes we cannot read).
    let mut withdrawn = Vec::new();
    read_prefixes(&body[2..2 + wlen], Afi::Ipv4, &mut withdrawn)
        .map_err(|e| DecodeError::invalid_network(format!("withdrawn routes: {}", e.0)))?;
    let mut nlri = Vec::new();
    read_prefixes(nlri_bytes, Afi::Ipv4, &mut nlri)
        .map_err(|e| DecodeError::invalid_network(format!("NLRI: {}", e.0)))?;

    let mut update = Update::default();
    if withdrawn.is_empty() && attrs.is_empty() && nlri.is_empty() {
        // RFC 4724 §2: the IPv4 unicast End-of-RIB marker.
        update.end_of_rib = Some(Afi::Ipv4);
        return Ok(update);
    }

    let mut walk = Walk {
        has_nlri_field: !nlri.is_empty(),
        ..Walk::default()
    };
    walk.attributes(attrs, ctx)?;
    let Walk {
        mut parsed,
        mut issues,
        mut withdraw,
        seen,
        count,
        ..
    } = walk;

    // Families not negotiated are ignored (RFC 4760 §7), with an issue.
    if !ctx.families.contains(&Afi::Ipv4) && (!withdrawn.is_empty() || !nlri.is_empty()) {
        issues.push(issue(
            0,
            AttrAction::Discard,
            "IPv4 unicast NLRI/withdrawn routes ignored: family not negotiated".into(),
        ));
        withdrawn.clear();
        nlri.clear();
    }
    if let Some(mp) = parsed.mp_unreach.take() {
        if count == 1 && mp.prefixes.is_empty() && withdrawn.is_empty() && nlri.is_empty() {
            // RFC 4724 §2: End-of-RIB of another family = an UPDATE with
            // only an empty MP_UNREACH_NLRI.
            update.end_of_rib = Some(mp.afi);
        }
        withdrawn.extend(mp.prefixes);
    }
    let mp_reach = parsed.mp_reach.take();
    let announcing = !nlri.is_empty() || mp_reach.as_ref().is_some_and(|m| !m.prefixes.is_empty());

    // RFC 7606 §3 d: a missing well-known mandatory attribute is
    // treat-as-withdraw. They are mandatory only when routes are announced
    // (RFC 4271 §5, RFC 4760 §3: NEXT_HOP only for the NLRI field; RFC
    // 7606 §5.2), and LOCAL_PREF only towards internal peers (RFC 4271
    // §5.1.5). An attribute that was present but malformed is already
    // counted and not reported twice.
    if announcing {
        let mut need = vec![ORIGIN, AS_PATH];
        if !nlri.is_empty() {
            need.push(NEXT_HOP);
        }
        if ctx.ibgp {
            need.push(LOCAL_PREF);
        }
        for t in need {
            if !seen.contains(t) {
                withdraw = true;
                issues.push(issue(
                    t,
                    AttrAction::TreatAsWithdraw,
                    format!("mandatory {} is missing (RFC 7606 §3 d)", name(t)),
                ));
            }
        }
    }

    if withdraw {
        // RFC 7606 §2 treat-as-withdraw: the message's NLRI are withdrawn.
        withdrawn.extend(nlri);
        withdrawn.extend(mp_reach.into_iter().flat_map(|m| m.prefixes));
    } else if announcing {
        merge_as4(&mut parsed, ctx, &mut issues);
        let base = base_attrs(&mut parsed);
        let v4_nh = NextHop::V4(parsed.next_hop.unwrap_or(std::net::Ipv4Addr::UNSPECIFIED));
        let with_nh = |mut attrs: PathAttrs, nh: NextHop| {
            attrs.next_hop = nh;
            attrs
        };
        // The attributes are cloned only when both families are announced.
        match (nlri.is_empty(), mp_reach.filter(|m| !m.prefixes.is_empty())) {
            (false, None) => update.announced.push(Announcement {
                attrs: with_nh(base, v4_nh),
                nlri,
            }),
            (empty, Some(mp)) => {
                if !empty {
                    update.announced.push(Announcement {
                        attrs: with_nh(base.clone(), v4_nh),
                        nlri,
                    });
                }
                let nh = mp.next_hop.unwrap_or(v4_nh);
                update.announced.push(Announcement {
                    attrs: with_nh(base, nh),
                    nlri: mp.prefixes,
                });
            }
            (true, None) => {}
        }
    }
    update.withdrawn = withdrawn;
    update.issues = issues;
    Ok(update)
}

/// State of the attribute walk.
#[derive(Default)]
struct Walk {
    parsed: Parsed,
    issues: Vec<AttrIssue>,
    /// Some attribute asked for treat-as-withdraw.
    withdraw: bool,
    /// Attribute types met (first occurrence).
    seen: TypeSet,
    /// Number of attributes met, duplicates included.
    count: usize,
    /// The NLRI field is not empty (NEXT_HOP matters only then).
    has_nlri_field: bool,
}

/// A set of attribute type codes.
#[derive(Default)]
struct TypeSet([u64; 4]);

// ===== impl Walk =====

impl Walk {
    /// Walks the path attributes TLV by TLV.
    fn attributes(&mut self, attrs: &[u8], ctx: &DecodeCtx) -> Result<(), DecodeError> {
        let mut i = 0;
        while i < attrs.len() {
            let flags = attrs[i];
            let hdr = if flags & FLAG_EXT_LEN != 0 { 4 } else { 3 };
            let left = attrs.len() - i;
            if left < hdr {
                // RFC 7606 §4, second case: too few octets left for an
                // attribute header: treat-as-withdraw. Every attribute
                // before was read, so all NLRI are known (§3 j).
                self.withdraw = true;
                self.issues.push(issue(
                    0,
                    AttrAction::TreatAsWithdraw,
                    format!("{left} octet(s) left after the last attribute, too few for one (RFC 7606 §4)"),
                ));
                return Ok(());
            }
            let type_code = attrs[i + 1];
            let len = if hdr == 4 {
                usize::from(u16::from_be_bytes([attrs[i + 2], attrs[i + 3]]))
            } else {
                usize::from(attrs[i + 2])
            };
            let end = i + hdr + len;
            if end > attrs.len() {
                if type_code == MP_REACH_NLRI || type_code == MP_UNREACH_NLRI {
                    // Its prefixes cannot be read: the more severe error
                    // that RFC 7606 §4 defers to (§3 j, §5.3): 3/1.
                    return Err(DecodeError::malformed_attr_list(format!(
                        "{} (type {type_code}) length {len} at offset {i} overruns the {} octets of path attributes",
                        name(type_code),
                        attrs.len()
                    )));
                }
                // RFC 7606 §4, first case: the last attribute's length
                // runs past the Total Path Attribute Length. Treat as
                // withdraw; the NLRI field begins where the total length
                // says (the caller found it so), and every attribute
                // before this one was read (an MP_REACH_NLRI among them
                // has its prefixes withdrawn too).
                self.withdraw = true;
                self.issues.push(issue(
                    type_code,
                    AttrAction::TreatAsWithdraw,
                    format!(
                        "{} (type {type_code}) length {len} at offset {i} overruns the {} octets of path attributes (RFC 7606 §4)",
                        name(type_code),
                        attrs.len()
                    ),
                ));
                return Ok(());
            }
            let raw = &attrs[i..end];
            let value = &attrs[i + hdr..end];
            i = end;
            self.count += 1;
            if self.seen.contains(type_code) {
                if type_code == MP_REACH_NLRI || type_code == MP_UNREACH_NLRI {
                    // RFC 7606 §3 g: a repeated MP attribute is 3/1.
                    return Err(DecodeError::malformed_attr_list(format!(
                        "{} appears more than once (RFC 7606 §3 g)",
                        name(type_code)
                    )));
                }
                // RFC 7606 §3 g: all but the first occurrence are discarded.
                self.issues.push(issue(
                    type_code,
                    AttrAction::Discard,
                    format!(
                        "{} (type {type_code}) repeated; later copies discarded (RFC 7606 §3 g)",
                        name(type_code)
                    ),
                ));
                continue;
            }
            self.seen.insert(type_code);
            match parse_attr(&mut self.parsed, flags, type_code, value, raw, ctx) {
                Ok(()) => {}
                Err(AttrError::Discard(r)) => {
                    self.issues.push(issue(type_code, AttrAction::Discard, r))
                }
                Err(AttrError::Withdraw(r)) if type_code == NEXT_HOP && !self.has_nlri_field => {
                    // RFC 4760 §3: without IPv4 NLRI the NEXT_HOP attribute
                    // is ignored, so a bad one only gets discarded.
                    self.issues.push(issue(
                        type_code,
                        AttrAction::Discard,
                        format!("{r}; ignored as the message has no NLRI field (RFC 4760 §3)"),
                    ))
                }
                Err(AttrError::Withdraw(r)) => {
                    // RFC 7606 §3 h: the strongest approach wins; a reset
                    // returns at once.
                    self.withdraw = true;
                    self.issues
                        .push(issue(type_code, AttrAction::TreatAsWithdraw, r));
                }
                Err(AttrError::Reset(e)) => return Err(e),
            }
        }
        Ok(())
    }
}

// ===== impl TypeSet =====

impl TypeSet {
    fn contains(&self, t: u8) -> bool {
        self.0[usize::from(t >> 6)] & (1 << (t & 63)) != 0
    }

    fn insert(&mut self, t: u8) {
        self.0[usize::from(t >> 6)] |= 1 << (t & 63);
    }
}

fn issue(type_code: u8, action: AttrAction, reason: String) -> AttrIssue {
    AttrIssue {
        type_code,
        action,
        reason,
    }
}

/// RFC 6793: AS4_PATH / AS4_AGGREGATOR handling.
fn merge_as4(p: &mut Parsed, ctx: &DecodeCtx, issues: &mut Vec<AttrIssue>) {
    let (as4_path, as4_agg) = (p.as4_path.take(), p.as4_aggregator.take());
    if as4_path.is_none() && as4_agg.is_none() {
        return;
    }
    if ctx.asn4 {
        // RFC 6793 §4.1: between NEW speakers these attributes SHALL be
        // discarded.
        issues.push(issue(
            AS4_PATH,
            AttrAction::Discard,
            "AS4_PATH/AS4_AGGREGATOR received on a 4-octet AS session (RFC 6793 §4.1)".into(),
        ));
        return;
    }
    if let Some((asn, _)) = p.aggregator {
        if asn != AS_TRANS {
            // RFC 6793 §4.2.3: AGGREGATOR holds a real 2-octet AS: the AS4_
            // attributes are stale and ignored.
            issues.push(issue(
                AS4_AGGREGATOR,
                AttrAction::Discard,
                format!("AS4_PATH/AS4_AGGREGATOR ignored: AGGREGATOR AS {asn} is not AS_TRANS (RFC 6793 §4.2.3)"),
            ));
            return;
        }
        if let Some(a) = as4_agg {
            p.aggregator = Some(a);
        }
    }
    if let Some(as4) = as4_path {
        if let Some(path) = p.as_path.take() {
            p.as_path = Some(merge_as4_path(path, as4));
        }
    }
}

/// The attributes common to every family of the message (the next hop is
/// filled in per family by the caller).
fn base_attrs(p: &mut Parsed) -> PathAttrs {
    let mut unknown = std::mem::take(&mut p.unknown);
    unknown.sort_by_key(|a| a.type_code);
    PathAttrs {
        origin: p.origin.unwrap_or(Origin::Incomplete),
        as_path: p.as_path.take().unwrap_or_default(),
        next_hop: NextHop::V4(std::net::Ipv4Addr::UNSPECIFIED),
        med: p.med,
        local_pref: p.local_pref,
        atomic_aggregate: p.atomic_aggregate,
        aggregator: p.aggregator,
        communities: std::mem::take(&mut p.communities),
        originator_id: p.originator_id,
        cluster_list: std::mem::take(&mut p.cluster_list),
        ext_communities: std::mem::take(&mut p.ext_communities),
        large_communities: std::mem::take(&mut p.large_communities),
        unknown,
    }
}
