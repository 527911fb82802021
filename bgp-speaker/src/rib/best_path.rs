//! The BGP decision process (RFC 4271 §9.1.2.2, RFC 4456 §9): which of two
//! paths to one prefix wins, and why the other lost.

use std::cmp::Ordering;
use std::net::{IpAddr, Ipv4Addr};

use serde::{Deserialize, Serialize};

use crate::route::PathAttrs;

/// LOCAL_PREF assumed for paths that carry none (eBGP-learned, local).
pub const DEFAULT_LOCAL_PREF: u32 = 100;

/// What the decision process needs to know of a path besides its attributes.
#[derive(Clone, Copy, Debug)]
pub struct Candidate<'a> {
    pub attrs: &'a PathAttrs,
    /// `None`: originated by this speaker.
    pub peer: Option<PeerFacts>,
}

/// The facts of the peer a path came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PeerFacts {
    pub address: IpAddr,
    pub router_id: Ipv4Addr,
    pub ebgp: bool,
}

/// Why a path lost to the best one (shown by tortiectl).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum RejectReason {
    LocalOriginPreferred,
    LowerLocalPref,
    LongerAsPath,
    HigherOrigin,
    HigherMed,
    IbgpVersusEbgp,
    HigherRouterId,
    LongerClusterList,
    HigherPeerAddress,
}

/// Compares two paths; `Ordering::Less` means `a` is better. On a tie of
/// everything (the same peer), `Equal`. The reason says why the worse lost.
pub fn compare(a: &Candidate<'_>, b: &Candidate<'_>) -> (Ordering, Option<RejectReason>) {
    use RejectReason::*;
    // Locally originated paths win over learned ones (like a weight).
    let (pa, pb) = match (a.peer, b.peer) {
        (None, None) => return (Ordering::Equal, None),
        (None, Some(_)) => return (Ordering::Less, Some(LocalOriginPreferred)),
        (Some(_), None) => return (Ordering::Greater, Some(LocalOriginPreferred)),
        (Some(pa), Some(pb)) => (pa, pb),
    };
    let steps: [(Ordering, RejectReason); 5] = [
        // a) highest degree of preference (LOCAL_PREF)
        (
            local_pref(b.attrs).cmp(&local_pref(a.attrs)),
            LowerLocalPref,
        ),
        // §9.1.2.2 a) shortest AS_PATH
        (
            a.attrs.as_path_len().cmp(&b.attrs.as_path_len()),
            LongerAsPath,
        ),
        // b) lowest ORIGIN
        (a.attrs.origin.cmp(&b.attrs.origin), HigherOrigin),
        // c) lowest MED, only between paths from the same neighbouring AS;
        // a missing MED counts as 0 (the lowest).
        (med_order(a.attrs, b.attrs), HigherMed),
        // d) eBGP over iBGP
        (pb.ebgp.cmp(&pa.ebgp), IbgpVersusEbgp),
    ];
    for (ord, why) in steps {
        if ord != Ordering::Equal {
            return (ord, Some(why));
        }
    }
    // e) (IGP cost to the next hop: not known to this library, equal.)
    // f) lowest BGP identifier; ORIGINATOR_ID stands in for it (RFC 4456 §9)
    let ida = a.attrs.originator_id.unwrap_or(pa.router_id);
    let idb = b.attrs.originator_id.unwrap_or(pb.router_id);
    if ida != idb {
        return (ida.cmp(&idb), Some(HigherRouterId));
    }
    // RFC 4456 §9: shorter CLUSTER_LIST
    let cl = a.attrs.cluster_list.len().cmp(&b.attrs.cluster_list.len());
    if cl != Ordering::Equal {
        return (cl, Some(LongerClusterList));
    }
    // g) lowest peer address
    let addr = pa.address.cmp(&pb.address);
    (addr, (addr != Ordering::Equal).then_some(HigherPeerAddress))
}

fn local_pref(attrs: &PathAttrs) -> u32 {
    attrs.local_pref.unwrap_or(DEFAULT_LOCAL_PREF)
}

fn med_order(a: &PathAttrs, b: &PathAttrs) -> Ordering {
    if a.neighbor_as() != b.neighbor_as() {
        return Ordering::Equal;
    }
    a.med.unwrap_or(0).cmp(&b.med.unwrap_or(0))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::route::{AsSegment, NextHop, Origin};

    fn attrs() -> PathAttrs {
        PathAttrs::local(NextHop::V4(Ipv4Addr::new(10, 0, 0, 1)))
    }
    fn peer(last: u8, ebgp: bool) -> Option<PeerFacts> {
        Some(PeerFacts {
            address: IpAddr::V4(Ipv4Addr::new(172, 30, 0, last)),
            router_id: Ipv4Addr::new(1, 1, 1, last),
            ebgp,
        })
    }

    /// Each row: a change that makes `a` better than an otherwise equal `b`,
    /// and the reason `b` loses.
    #[test]
    fn each_step_decides() {
        type Mk =
            fn(&mut PathAttrs, &mut PathAttrs, &mut Option<PeerFacts>, &mut Option<PeerFacts>);
        let rows: Vec<(&str, Mk, RejectReason)> = vec![
            (
                "local pref",
                |a, _, _, _| a.local_pref = Some(200),
                RejectReason::LowerLocalPref,
            ),
            (
                "as path",
                |_, b, _, _| b.as_path = vec![AsSegment::Sequence(vec![65001])],
                RejectReason::LongerAsPath,
            ),
            (
                "origin",
                |_, b, _, _| b.origin = Origin::Incomplete,
                RejectReason::HigherOrigin,
            ),
            (
                "med same neighbour AS",
                |a, b, _, _| {
                    a.as_path = vec![AsSegment::Sequence(vec![65001])];
                    b.as_path = vec![AsSegment::Sequence(vec![65001])];
                    b.med = Some(5);
                },
                RejectReason::HigherMed,
            ),
            (
                "ebgp over ibgp",
                |_, _, pa, _| *pa = peer(9, true),
                RejectReason::IbgpVersusEbgp,
            ),
            (
                "originator id",
                |a, _, _, _| a.originator_id = Some(Ipv4Addr::new(0, 0, 0, 1)),
                RejectReason::HigherRouterId,
            ),
            (
                "cluster list",
                |a, b, pa, pb| {
                    *pa = peer(3, false);
                    *pb = peer(3, false);
                    a.originator_id = Some(Ipv4Addr::new(9, 9, 9, 9));
                    b.originator_id = Some(Ipv4Addr::new(9, 9, 9, 9));
                    b.cluster_list = vec![Ipv4Addr::new(1, 2, 3, 4)];
                },
                RejectReason::LongerClusterList,
            ),
            (
                "peer address",
                |a, b, _, _| {
                    a.originator_id = Some(Ipv4Addr::new(9, 9, 9, 9));
                    b.originator_id = Some(Ipv4Addr::new(9, 9, 9, 9));
                },
                RejectReason::HigherPeerAddress,
            ),
        ];
        for (name, mk, reason) in rows {
            let (mut a, mut b) = (attrs(), attrs());
            let (mut pa, mut pb) = (peer(1, false), peer(2, false));
            mk(&mut a, &mut b, &mut pa, &mut pb);
            let ca = Candidate {
                attrs: &a,
                peer: pa,
            };
            let cb = Candidate {
                attrs: &b,
                peer: pb,
            };
            assert_eq!(compare(&ca, &cb), (Ordering::Less, Some(reason)), "{name}");
            assert_eq!(
                compare(&cb, &ca),
                (Ordering::Greater, Some(reason)),
                "{name} reversed"
            );
        }
    }

    #[test]
    fn med_ignored_across_neighbour_as_and_local_wins() {
        let mut a = attrs();
        let mut b = attrs();
        a.as_path = vec![AsSegment::Sequence(vec![65001])];
        b.as_path = vec![AsSegment::Sequence(vec![65002])];
        a.med = Some(500);
        let ca = Candidate {
            attrs: &a,
            peer: peer(1, true),
        };
        let cb = Candidate {
            attrs: &b,
            peer: peer(2, true),
        };
        // MED not compared: falls through to router id (1.1.1.1 < 1.1.1.2).
        assert_eq!(
            compare(&ca, &cb),
            (Ordering::Less, Some(RejectReason::HigherRouterId))
        );
        let local = Candidate {
            attrs: &b,
            peer: None,
        };
        assert_eq!(compare(&local, &ca).0, Ordering::Less);
    }
}
