//! `SpeakerHandle::explain` over in-memory sessions with paused time:
//! three iBGP paths to one prefix in decision order with the step at
//! which each lost, an eBGP peer whose import rule refused it (the rule
//! named), an export rule that keeps one of our prefixes from a peer,
//! the longest match of an address, and a prefix nobody sent.
//!
//! ```text
//!            10.0.0.2 (iBGP, LOCAL_PREF 100)        ──┐
//!            10.0.0.3 (iBGP, LOCAL_PREF 200)        ──┤  10.244.1.0/26
//!  speaker ─ 10.0.0.4 (iBGP, LOCAL_PREF 200, AS 65001 in the path) ──┤
//!  AS 64512  10.0.0.5 (eBGP AS 65001; import: Reject In 10.244.0.0/16{26,32};
//!                      export: Reject Equal 10.244.9.0/26)          ──┘
//! ```

mod common;

use std::net::{IpAddr, Ipv4Addr};

use bgp_speaker::explain::{Announced, PrefixExplain};
use bgp_speaker::rib::best_path::RejectReason;
use bgp_speaker::{LocalRoute, NextHop, PathAttrs, PeerConfig, Prefix, SpeakerConfig};
use common::pipe::{settle, Net, Peer, SPEAKER};
use common::*;
use tortie_config::filter::{FilterAction, FilterRule, FilterRules, MatchOperator, PrefixMatch};

fn ip(last: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(10, 0, 0, last))
}

fn net(s: &str) -> Prefix {
    s.parse().unwrap()
}

fn rule(op: MatchOperator, cidr: &str, lens: Option<(u8, u8)>, action: FilterAction) -> FilterRule {
    let mut m = PrefixMatch::new(net(cidr), op);
    if let Some((min, max)) = lens {
        (m.min_len, m.max_len) = (min, max);
    }
    FilterRule {
        prefix: Some(m),
        from_peers: false,
        interface: None,
        action,
    }
}

/// 10.244.1.0/26 with this LOCAL_PREF and AS_PATH (4-octet ASNs).
fn announce(local_pref: u32, path: &[u32], hop: u8) -> Vec<u8> {
    let mut seg = Vec::new();
    if !path.is_empty() {
        seg = vec![2, path.len() as u8];
        for a in path {
            seg.extend_from_slice(&a.to_be_bytes());
        }
    }
    let attrs = [
        attr(0x40, 1, &[0]),
        attr(0x40, 2, &seg),
        attr(0x40, 3, &[10, 0, 0, hop]),
        attr(0x40, 5, &local_pref.to_be_bytes()),
    ]
    .concat();
    update(&[], &attrs, &[26, 10, 244, 1, 0])
}

/// The peer at `last` (AS `asn`) connects and reaches Established.
async fn establish(net: &Net, last: u8, asn: u32) -> Peer {
    let mut p = net.connect_from(ip(last)).await;
    p.expect(1, "OPEN").await;
    p.send(&open(4, asn, 90, [10, 9, 9, last])).await;
    p.expect(4, "KEEPALIVE").await;
    p.send(&msg(4, &[])).await;
    p
}

/// Asks until `done` holds (the UPDATEs are taken in turn), at most 100
/// times a virtual millisecond.
async fn explain_until(lab: &Net, p: &str, done: impl Fn(&PrefixExplain) -> bool) -> PrefixExplain {
    for _ in 0..100 {
        let e = lab.h.explain(net(p)).await.unwrap();
        if done(&e) {
            return e;
        }
        settle().await;
    }
    panic!(
        "explain {p} never got there: {:#?}",
        lab.h.explain(net(p)).await
    );
}

#[tokio::test(start_paused = true)]
async fn explain_names_the_decision_step_and_the_rules() {
    let mut c = SpeakerConfig::new(SPEAKER, AS);
    for last in 2..=5 {
        let asn = if last == 5 { 65001 } else { AS };
        let mut p = PeerConfig::new(ip(last), asn);
        p.passive = true;
        if last == 5 {
            p.import_filter = FilterRules {
                v4: vec![
                    rule(
                        MatchOperator::Equal,
                        "192.0.2.0/24",
                        None,
                        FilterAction::Accept,
                    ),
                    rule(
                        MatchOperator::In,
                        "10.244.0.0/16",
                        Some((26, 32)),
                        FilterAction::Reject,
                    ),
                ],
                v6: Vec::new(),
            };
            p.export_filter = FilterRules {
                v4: vec![rule(
                    MatchOperator::Equal,
                    "10.244.9.0/26",
                    None,
                    FilterAction::Reject,
                )],
                v6: Vec::new(),
            };
        }
        c.peers.push(p);
    }
    let lab = Net::start_config(c).await;
    let mut peers = Vec::new();
    for last in 2..=5 {
        let asn = if last == 5 { 65001 } else { AS };
        peers.push(establish(&lab, last, asn).await);
    }
    peers[0].send(&announce(100, &[], 2)).await;
    peers[1].send(&announce(200, &[], 3)).await;
    peers[2].send(&announce(200, &[65001], 4)).await;
    peers[3].send(&announce(100, &[65001], 5)).await;
    let hop = NextHop::V4(Ipv4Addr::new(10, 0, 0, 1));
    lab.h
        .originate(vec![LocalRoute {
            prefix: net("10.244.9.0/26"),
            attrs: PathAttrs::local(hop),
        }])
        .await
        .unwrap();

    // Three paths held, in decision order; the eBGP peer's refused.
    let e = explain_until(&lab, "10.244.1.0/26", |e| {
        e.paths.len() == 3 && e.peers[3].announced == Announced::NotAccepted
    })
    .await;
    assert_eq!(e.prefix, Some(net("10.244.1.0/26")));
    let order: Vec<_> = e.paths.iter().map(|p| (p.peer, p.best, p.lost)).collect();
    assert_eq!(
        order,
        [
            (Some(ip(3)), true, None),
            (Some(ip(4)), false, Some(RejectReason::LongerAsPath)),
            (Some(ip(2)), false, Some(RejectReason::LowerLocalPref)),
        ]
    );
    assert_eq!(e.paths[0].attrs.local_pref, Some(200));
    let addrs: Vec<_> = e.peers.iter().map(|p| p.address).collect();
    assert_eq!(addrs, [ip(2), ip(3), ip(4), ip(5)]);
    let ebgp = &e.peers[3];
    let hit = ebgp.import_rule.as_ref().expect("an import rule matched");
    assert_eq!(
        (hit.index, hit.action, hit.rule.as_str()),
        (1, FilterAction::Reject, "Reject In 10.244.0.0/16{26,32}")
    );
    assert!(!ebgp.import_allowed);
    assert!(e.peers[..3]
        .iter()
        .all(|p| p.announced == Announced::Accepted
            && p.import_allowed
            && p.import_rule.is_none()));
    // The iBGP-learned best goes to the eBGP peer only (iBGP split horizon).
    let told: Vec<_> = e.peers.iter().map(|p| p.advertised).collect();
    assert_eq!(told, [false, false, false, true]);

    // An address finds its block (the longest match).
    let e = lab.h.explain(net("10.244.1.7/32")).await.unwrap();
    assert_eq!(e.asked, net("10.244.1.7/32"));
    assert_eq!(e.prefix, Some(net("10.244.1.0/26")));
    assert_eq!(e.paths.len(), 3);

    // Ours: originated here, kept from the eBGP peer by its export rule.
    let e = explain_until(&lab, "10.244.9.0/26", |e| e.peers[0].advertised).await;
    assert_eq!(e.paths.len(), 1);
    assert_eq!((e.paths[0].peer, e.paths[0].best), (None, true));
    let told: Vec<_> = e.peers.iter().map(|p| p.advertised).collect();
    assert_eq!(told, [true, true, true, false]);
    let hit = e.peers[3].export_rule.as_ref().expect("the export rule");
    assert_eq!((hit.index, hit.action), (0, FilterAction::Reject));
    assert!(e.peers[..3].iter().all(|p| p.export_rule.is_none()));

    // Nobody sent it: nothing held; the rules are still those for it.
    let e = lab.h.explain(net("192.0.2.0/24")).await.unwrap();
    assert_eq!(e.prefix, None);
    assert!(e.paths.is_empty());
    assert!(e.peers.iter().all(|p| p.announced == Announced::No));
    let hit = e.peers[3].import_rule.as_ref().unwrap();
    assert_eq!((hit.index, hit.action), (0, FilterAction::Accept));

    // A withdrawal: the path goes, the next one is best.
    peers[1].send(&update(&[26, 10, 244, 1, 0], &[], &[])).await;
    let e = explain_until(&lab, "10.244.1.0/26", |e| e.paths.len() == 2).await;
    let order: Vec<_> = e.paths.iter().map(|p| (p.peer, p.best, p.lost)).collect();
    assert_eq!(
        order,
        [
            (Some(ip(4)), true, None),
            (Some(ip(2)), false, Some(RejectReason::LowerLocalPref)),
        ]
    );
    assert_eq!(e.peers[1].announced, Announced::No);
}
