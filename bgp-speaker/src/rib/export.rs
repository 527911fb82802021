//! What a peer is sent: iBGP split horizon, route reflection (RFC 4456),
//! eBGP rules (AS_PATH prepend, next hop self, no LOCAL_PREF, no MED from
//! another AS), import checks (AS loop, ORIGINATOR_ID and CLUSTER_LIST loops).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::route::{AsSegment, NextHop, PathAttrs};

use super::best_path::DEFAULT_LOCAL_PREF;
use super::policy::PolicyId;

/// The speaker's own identity, for import and export rules.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LocalFacts {
    pub asn: u32,
    pub router_id: Ipv4Addr,
    /// `Some`: this speaker reflects routes for its clients.
    pub cluster_id: Option<Ipv4Addr>,
}

/// How a peer is treated on export. Peers with equal `ExportClass` get the
/// same attributes for the same best path, so the result is computed once,
/// and share an update group. Their export filter is in it by id: peers
/// with equal rules still share.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ExportClass {
    pub asn: u32,
    pub ebgp: bool,
    /// Route reflector client (only meaningful for iBGP with a cluster id).
    pub rr_client: bool,
    pub next_hop_self: bool,
    /// Our address on the session: the next hop when we set it ourselves.
    pub local_addr: IpAddr,
    /// Our link-local address toward the peer when it shares our subnet:
    /// the second IPv6 next hop when we set the next hop ourselves (RFC
    /// 2545 §3).
    pub local_link_local: Option<Ipv6Addr>,
    /// eBGP: leave the next hop as it is.
    pub keep_next_hop: bool,
    /// Only locally originated routes are sent (unless an export rule
    /// accepts one).
    pub local_only: bool,
    /// Our aggregates (routes we originate with ATOMIC_AGGREGATE set) are
    /// sent; a peer without it is never sent one. (A node sends a router
    /// its pools; its export rules then keep the blocks inside them back.)
    pub aggregates: bool,
    /// Its export rules ([`super::policy::NO_POLICY`]: none).
    pub policy: PolicyId,
}

/// Where the best path came from, as export rules need it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SourceKind {
    Local,
    Ebgp,
    /// An iBGP peer; `client` = it is one of our RR clients.
    Ibgp {
        client: bool,
        router_id: Ipv4Addr,
    },
}

/// Why a received route was not accepted into the Loc-RIB.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ImportReject {
    /// Our AS is in the AS_PATH (RFC 4271 §9.1.2).
    AsLoop,
    /// The first AS is not the eBGP peer's AS.
    FirstAsMismatch,
    /// ORIGINATOR_ID is our router id (RFC 4456 §8).
    OriginatorLoop,
    /// Our cluster id is in CLUSTER_LIST (RFC 4456 §8).
    ClusterLoop,
}

/// Import checks. For eBGP it also drops attributes an external peer must
/// not set for us (LOCAL_PREF, ORIGINATOR_ID, CLUSTER_LIST). Our AS may
/// appear `allow_local_as` times in an eBGP route's AS_PATH (BIRD's `allow
/// local as N`, Calico's `numAllowedLocalASNumbers`), not more.
pub fn import(
    local: &LocalFacts,
    peer_asn: u32,
    ebgp: bool,
    allow_local_as: u8,
    attrs: &mut PathAttrs,
) -> Result<(), ImportReject> {
    if ebgp {
        let looped = match allow_local_as {
            0 => attrs.as_path_contains(local.asn),
            n => attrs.as_path_count(local.asn) > usize::from(n),
        };
        if looped {
            return Err(ImportReject::AsLoop);
        }
        if attrs.neighbor_as() != Some(peer_asn) {
            return Err(ImportReject::FirstAsMismatch);
        }
        attrs.local_pref = None;
        attrs.originator_id = None;
        attrs.cluster_list.clear();
        return Ok(());
    }
    if attrs.originator_id == Some(local.router_id) {
        return Err(ImportReject::OriginatorLoop);
    }
    if let Some(cid) = local.cluster_id {
        if attrs.cluster_list.contains(&cid) {
            return Err(ImportReject::ClusterLoop);
        }
    }
    Ok(())
}

/// Whether a locally originated route with `attrs` goes to a peer of
/// `class`: local aggregates (ATOMIC_AGGREGATE set) go only to the peers
/// that take aggregates. Learned routes are not concerned.
pub fn aggregate_rule(source: SourceKind, class: &ExportClass, attrs: &PathAttrs) -> bool {
    source != SourceKind::Local || !attrs.atomic_aggregate || class.aggregates
}

/// Whether a best path from `source` may be sent to a peer of `class` at
/// all (iBGP split horizon, RFC 4456 §6 reflection rules). `accepted`: an
/// export rule of the class accepted it, which lifts `local_only` (not
/// BGP's rules).
pub fn allowed(
    local: &LocalFacts,
    source: SourceKind,
    class: &ExportClass,
    accepted: bool,
) -> bool {
    if class.local_only && source != SourceKind::Local && !accepted {
        return false;
    }
    match (source, class.ebgp) {
        (SourceKind::Local | SourceKind::Ebgp, _) => true,
        (SourceKind::Ibgp { .. }, true) => true,
        (SourceKind::Ibgp { client, .. }, false) => match local.cluster_id {
            None => false,
            // From a client: to all clients and non-clients.
            // From a non-client: to clients only.
            Some(_) => client || class.rr_client,
        },
    }
}

/// The attributes sent to a peer of `class` for a best path from `source`.
/// Call only when [`allowed`] says so.
///
/// An IPv6 next hop we set ourselves carries our link-local address
/// toward the peer when there is one; one we pass on goes with its global
/// address alone: a link-local address is only good on the link between
/// the speakers that shared it, which this peer may not be on (RFC 2545
/// §3).
pub fn transform(
    local: &LocalFacts,
    source: SourceKind,
    class: &ExportClass,
    best: &PathAttrs,
) -> Option<PathAttrs> {
    let mut out = best.clone();
    if let NextHop::V6 { link_local, .. } = &mut out.next_hop {
        *link_local = None;
    }
    if class.ebgp {
        // Sender-side loop prevention: the peer would drop it anyway.
        if best.as_path_contains(class.asn) {
            return None;
        }
        prepend(&mut out.as_path, local.asn);
        if !class.keep_next_hop || unspecified(&best.next_hop) {
            out.next_hop = self_next_hop(class, &best.next_hop);
        }
        out.local_pref = None;
        out.originator_id = None;
        out.cluster_list.clear();
        // RFC 4271 §5.1.4: a MED received from one AS is not passed to another.
        if source != SourceKind::Local {
            out.med = None;
        }
        return Some(out);
    }
    if out.local_pref.is_none() {
        out.local_pref = Some(DEFAULT_LOCAL_PREF);
    }
    if let SourceKind::Ibgp { router_id, .. } = source {
        // Reflected (RFC 4456 §8).
        if let Some(cid) = local.cluster_id {
            out.originator_id.get_or_insert(router_id);
            out.cluster_list.insert(0, cid);
        }
    }
    if class.next_hop_self || source == SourceKind::Local && unspecified(&best.next_hop) {
        out.next_hop = self_next_hop(class, &best.next_hop);
    }
    Some(out)
}

/// Our session address as the next hop, in the family of `like`: an IPv6
/// one with our link-local address toward the peer when we have one (RFC
/// 2545 §3). An IPv6 route over an IPv4 session gets the IPv4-mapped
/// address.
pub fn self_next_hop(class: &ExportClass, like: &NextHop) -> NextHop {
    match (like, class.local_addr) {
        (NextHop::V4(_), IpAddr::V4(a)) => NextHop::V4(a),
        (NextHop::V4(_), IpAddr::V6(a)) => {
            NextHop::V4(a.to_ipv4_mapped().unwrap_or(Ipv4Addr::UNSPECIFIED))
        }
        (NextHop::V6 { .. }, IpAddr::V6(a)) => NextHop::V6 {
            global: a,
            link_local: class.local_link_local,
        },
        (NextHop::V6 { .. }, IpAddr::V4(a)) => NextHop::V6 {
            global: a.to_ipv6_mapped(),
            link_local: None,
        },
    }
}

fn unspecified(nh: &NextHop) -> bool {
    match nh {
        NextHop::V4(a) => a.is_unspecified(),
        NextHop::V6 { global, .. } => *global == Ipv6Addr::UNSPECIFIED,
    }
}

fn prepend(path: &mut Vec<AsSegment>, asn: u32) {
    match path.first_mut() {
        Some(AsSegment::Sequence(v)) if v.len() < 255 => v.insert(0, asn),
        _ => path.insert(0, AsSegment::Sequence(vec![asn])),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LOCAL: LocalFacts = LocalFacts {
        asn: 64512,
        router_id: Ipv4Addr::new(172, 30, 0, 1),
        cluster_id: Some(Ipv4Addr::new(172, 30, 0, 1)),
    };

    fn class(ebgp: bool, rr_client: bool) -> ExportClass {
        ExportClass {
            asn: if ebgp { 65001 } else { 64512 },
            ebgp,
            rr_client,
            next_hop_self: false,
            keep_next_hop: false,
            local_only: false,
            aggregates: false,
            policy: crate::rib::policy::NO_POLICY,
            local_addr: IpAddr::V4(Ipv4Addr::new(172, 30, 0, 1)),
            local_link_local: None,
        }
    }

    #[test]
    fn local_aggregates_go_only_to_aggregate_peers() {
        let mut agg = PathAttrs::local(NextHop::V4(Ipv4Addr::new(172, 30, 0, 1)));
        agg.atomic_aggregate = true;
        let block = PathAttrs::local(NextHop::V4(Ipv4Addr::new(172, 30, 0, 1)));
        let mesh = class(false, false);
        let mut router = class(true, false);
        router.aggregates = true;
        assert!(aggregate_rule(SourceKind::Local, &mesh, &block));
        assert!(!aggregate_rule(SourceKind::Local, &mesh, &agg));
        assert!(aggregate_rule(SourceKind::Local, &router, &agg));
        // Its export rules keep blocks back, not this rule.
        assert!(aggregate_rule(SourceKind::Local, &router, &block));
        // A learned aggregate is a route like any other.
        assert!(aggregate_rule(SourceKind::Ebgp, &mesh, &agg));
    }

    #[test]
    fn reflection_rules_table() {
        let rid = Ipv4Addr::new(172, 30, 0, 2);
        let from_client = SourceKind::Ibgp {
            client: true,
            router_id: rid,
        };
        let from_nonclient = SourceKind::Ibgp {
            client: false,
            router_id: rid,
        };
        let no_rr = LocalFacts {
            cluster_id: None,
            ..LOCAL
        };
        // (local, source, to client?, to ebgp?, allowed)
        let rows = [
            (LOCAL, from_client, true, false, true),
            (LOCAL, from_client, false, false, true),
            (LOCAL, from_nonclient, true, false, true),
            (LOCAL, from_nonclient, false, false, false),
            (no_rr, from_client, true, false, false),
            (no_rr, from_nonclient, false, true, true),
            (LOCAL, SourceKind::Ebgp, false, false, true),
            (LOCAL, SourceKind::Local, true, false, true),
        ];
        for (i, (local, src, client, ebgp, want)) in rows.into_iter().enumerate() {
            assert_eq!(
                allowed(&local, src, &class(ebgp, client), false),
                want,
                "row {i}"
            );
        }
        // A router takes our routes only, unless an export rule accepts.
        let mut router = class(true, false);
        router.local_only = true;
        assert!(!allowed(&LOCAL, SourceKind::Ebgp, &router, false));
        assert!(allowed(&LOCAL, SourceKind::Ebgp, &router, true));
        // iBGP split horizon holds even for an accepted route.
        assert!(!allowed(&no_rr, from_nonclient, &class(false, false), true));
    }

    #[test]
    fn reflected_route_gets_originator_and_cluster() {
        let rid = Ipv4Addr::new(172, 30, 0, 2);
        let mut a = PathAttrs::local(NextHop::V4(Ipv4Addr::new(172, 30, 0, 2)));
        a.local_pref = Some(100);
        let out = transform(
            &LOCAL,
            SourceKind::Ibgp {
                client: true,
                router_id: rid,
            },
            &class(false, true),
            &a,
        )
        .unwrap();
        assert_eq!(out.originator_id, Some(rid));
        assert_eq!(out.cluster_list, vec![Ipv4Addr::new(172, 30, 0, 1)]);
        // Next hop unchanged by reflection.
        assert_eq!(out.next_hop, a.next_hop);
    }

    #[test]
    fn ipv6_next_hops_we_set_carry_our_link_local_and_others_lose_theirs() {
        let global: Ipv6Addr = "fd30:1::11".parse().unwrap();
        let ll: Ipv6Addr = "fe80::1:11".parse().unwrap();
        let other: Ipv6Addr = "fd30:1::12".parse().unwrap();
        let alone = |global| NextHop::V6 {
            global,
            link_local: None,
        };
        let mut tor = class(true, false);
        tor.local_addr = IpAddr::V6(global);
        tor.local_link_local = Some(ll);
        let ours = NextHop::V6 {
            global,
            link_local: Some(ll),
        };
        // Originated (next hop unspecified) to a peer on the subnet.
        let block = PathAttrs::local(NextHop::V6 {
            global: Ipv6Addr::UNSPECIFIED,
            link_local: None,
        });
        let out = transform(&LOCAL, SourceKind::Local, &tor, &block).unwrap();
        assert_eq!(out.next_hop, ours);
        // Another speaker's route, next hop self (eBGP): ours again.
        let learned = PathAttrs::local(NextHop::V6 {
            global: other,
            link_local: Some("fe80::1:12".parse().unwrap()),
        });
        let src = SourceKind::Ibgp {
            client: false,
            router_id: Ipv4Addr::new(172, 30, 0, 2),
        };
        let out = transform(&LOCAL, src, &tor, &learned).unwrap();
        assert_eq!(out.next_hop, ours);
        // A peer off the subnet: the global address alone.
        let mut far = tor;
        far.local_link_local = None;
        let out = transform(&LOCAL, SourceKind::Local, &far, &block).unwrap();
        assert_eq!(out.next_hop, alone(global));
        // Passed on unchanged (reflected to a client): the other speaker's
        // global address, without its link-local one.
        let mut client = class(false, true);
        client.local_addr = IpAddr::V6(global);
        client.local_link_local = Some(ll);
        let out = transform(&LOCAL, src, &client, &learned).unwrap();
        assert_eq!(out.next_hop, alone(other));
        // eBGP keeping the next hop: the same.
        let mut keep = tor;
        keep.keep_next_hop = true;
        let out = transform(&LOCAL, src, &keep, &learned).unwrap();
        assert_eq!(out.next_hop, alone(other));
        // An IPv6 route over an IPv4 session: the mapped address alone.
        let v4 = class(true, false);
        let out = transform(&LOCAL, SourceKind::Local, &v4, &block).unwrap();
        assert_eq!(
            out.next_hop,
            alone(Ipv4Addr::new(172, 30, 0, 1).to_ipv6_mapped())
        );
    }

    #[test]
    fn ebgp_export_prepends_and_strips() {
        let mut a = PathAttrs::local(NextHop::V4(Ipv4Addr::new(172, 30, 0, 2)));
        a.local_pref = Some(300);
        a.med = Some(7);
        a.cluster_list = vec![Ipv4Addr::new(9, 9, 9, 9)];
        let src = SourceKind::Ibgp {
            client: true,
            router_id: Ipv4Addr::new(1, 1, 1, 1),
        };
        let out = transform(&LOCAL, src, &class(true, false), &a).unwrap();
        assert_eq!(out.as_path, vec![AsSegment::Sequence(vec![64512])]);
        assert_eq!(out.next_hop, NextHop::V4(Ipv4Addr::new(172, 30, 0, 1)));
        assert_eq!(
            (out.local_pref, out.med, out.cluster_list.len()),
            (None, None, 0)
        );
        // A path through the peer's own AS is not sent to it.
        a.as_path = vec![AsSegment::Sequence(vec![65001])];
        assert!(transform(&LOCAL, SourceKind::Ebgp, &class(true, false), &a).is_none());
    }

    #[test]
    fn import_checks() {
        let mut a = PathAttrs::local(NextHop::V4(Ipv4Addr::new(1, 1, 1, 1)));
        a.as_path = vec![AsSegment::Sequence(vec![65001, 64512])];
        assert_eq!(
            import(&LOCAL, 65001, true, 0, &mut a.clone()),
            Err(ImportReject::AsLoop)
        );
        a.as_path = vec![AsSegment::Sequence(vec![65002])];
        assert_eq!(
            import(&LOCAL, 65001, true, 0, &mut a.clone()),
            Err(ImportReject::FirstAsMismatch)
        );
        a.originator_id = Some(LOCAL.router_id);
        assert_eq!(
            import(&LOCAL, 64512, false, 0, &mut a.clone()),
            Err(ImportReject::OriginatorLoop)
        );
        a.originator_id = None;
        a.cluster_list = vec![LOCAL.cluster_id.unwrap()];
        assert_eq!(
            import(&LOCAL, 64512, false, 0, &mut a.clone()),
            Err(ImportReject::ClusterLoop)
        );
        a.as_path = vec![AsSegment::Sequence(vec![65001])];
        a.local_pref = Some(5);
        let mut b = a.clone();
        assert_eq!(import(&LOCAL, 65001, true, 0, &mut b), Ok(()));
        assert_eq!((b.local_pref, b.cluster_list.len()), (None, 0));
        // numAllowedLocalASNumbers: our AS up to N times.
        a.as_path = vec![AsSegment::Sequence(vec![65001, 64512, 65002, 64512])];
        let twice = |n| import(&LOCAL, 65001, true, n, &mut a.clone());
        assert_eq!(twice(0), Err(ImportReject::AsLoop));
        assert_eq!(twice(1), Err(ImportReject::AsLoop));
        assert_eq!(twice(2), Ok(()));
    }
}
