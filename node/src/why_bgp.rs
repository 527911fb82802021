//! `/explain`'s BGP part: the speaker's paths and per-peer rules in
//! words, the rules named by BGPFilter and list index
//! ([`crate::why::rule_names`]), and the lines of the filters that acted.

use std::net::IpAddr;

use bgp_speaker::explain::{Announced, PrefixExplain, RuleHit};
use bgp_speaker::rib::best_path::RejectReason;
use bgp_speaker::route::AsSegment;

use crate::status::PeerView;
use crate::why::{BgpView, Facts, PathLine, PeerLine};

/// The speaker's answer in words, and the filters that acted.
pub fn bgp_view(e: &PrefixExplain, f: &Facts<'_>) -> (BgpView, Vec<String>) {
    let who = |a: IpAddr| {
        let p = f.peers.iter().find(|p| p.address == a);
        match p {
            Some(PeerView { node: Some(n), .. }) => format!("{a} (node {n})"),
            Some(p) => format!("{a} ({})", p.source),
            None => a.to_string(),
        }
    };
    let paths = e
        .paths
        .iter()
        .map(|p| PathLine {
            from: p.peer.map_or("local (originated here)".into(), who),
            next_hop: p.attrs.next_hop.addr().to_string(),
            as_path: as_path(&p.attrs.as_path),
            local_pref: p.attrs.local_pref,
            med: p.attrs.med,
            origin: format!("{:?}", p.attrs.origin).to_lowercase(),
            best: p.best,
            stale: p.stale,
            lost: p.lost.map(step),
        })
        .collect();
    let prefix = e.prefix.unwrap_or(e.asked);
    let v6 = prefix.addr().is_ipv6();
    let mut filters = Vec::new();
    let peers = e
        .peers
        .iter()
        .map(|p| {
            let names = f.names.get(&p.address);
            let name = |hit: &RuleHit, export: bool| {
                let list = names.map(|n| match (export, v6) {
                    (false, false) => &n.import_v4,
                    (false, true) => &n.import_v6,
                    (true, false) => &n.export_v4,
                    (true, true) => &n.export_v6,
                });
                let label = list
                    .and_then(|l| l.get(hit.index))
                    .cloned()
                    .or_else(|| {
                        names
                            .and_then(|n| n.export_after.clone())
                            .filter(|_| export)
                    })
                    .unwrap_or_else(|| format!("rule {}", hit.index));
                format!("{label}: {}", hit.rule)
            };
            let import = match (&p.import_rule, p.import_within) {
                (Some(hit), _) => name(hit, false),
                (None, Some(true)) => "no rule matched; inside the pools it may send".into(),
                (None, Some(false)) => {
                    "no rule matched; outside the pools it may send (a router sends only pool \
                     prefixes)"
                        .into()
                }
                (None, None) => "no rule matched; accepted by default".into(),
            };
            let announced = match p.announced {
                Announced::Accepted => "accepted",
                Announced::NotAccepted => "not accepted",
                Announced::No => "no",
            };
            if p.announced != Announced::No && (p.import_rule.is_some() || !p.import_allowed) {
                filters.push(format!("import from {}: {import}", who(p.address)));
            } else if p.announced == Announced::NotAccepted {
                filters.push(format!(
                    "import from {}: the import checks refused it (AS_PATH loop, next hop, or \
                     a limit)",
                    who(p.address)
                ));
            }
            let export = p.export_rule.as_ref().map(|h| name(h, true));
            if let Some(x) = export.as_ref().filter(|_| !e.paths.is_empty()) {
                filters.push(format!("export to {}: {x}", who(p.address)));
            }
            PeerLine {
                peer: who(p.address),
                established: p.established,
                announced: announced.into(),
                import,
                import_allowed: p.import_allowed,
                export,
                advertised: p.advertised,
            }
        })
        .collect();
    (
        BgpView {
            prefix: e.prefix,
            paths,
            peers,
        },
        filters,
    )
}

/// A decision step in words.
pub fn step(r: RejectReason) -> String {
    match r {
        RejectReason::LocalOriginPreferred => "a route originated here wins",
        RejectReason::LowerLocalPref => "lower LOCAL_PREF",
        RejectReason::LongerAsPath => "longer AS_PATH",
        RejectReason::HigherOrigin => "higher ORIGIN",
        RejectReason::HigherMed => "higher MED",
        RejectReason::IbgpVersusEbgp => "iBGP (eBGP preferred)",
        RejectReason::HigherRouterId => "higher router id",
        RejectReason::LongerClusterList => "longer CLUSTER_LIST",
        RejectReason::HigherPeerAddress => "higher peer address",
    }
    .into()
}

fn as_path(segs: &[AsSegment]) -> String {
    let parts: Vec<String> = segs
        .iter()
        .map(|s| match s {
            AsSegment::Sequence(v) | AsSegment::ConfedSequence(v) => v
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(" "),
            AsSegment::Set(v) | AsSegment::ConfedSet(v) => format!(
                "{{{}}}",
                v.iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join(",")
            ),
        })
        .collect();
    if parts.is_empty() {
        "(empty)".into()
    } else {
        parts.join(" ")
    }
}
