//! A peer's filters changed while its session is up, with paused time
//! over in-memory connections: the session stays Established (no
//! NOTIFICATION, no flap), and the peer gets exactly the difference.
//!
//! 1. Export: the new rules run over the Loc-RIB; the peer is sent what
//!    they now allow and a withdrawal of what they now refuse, nothing
//!    else.
//! 2. Import, the peer can refresh (RFC 2918): its routes the new rules
//!    refuse leave at once; one ROUTE-REFRESH asks for the routes we
//!    refused before, which are taken when they come again.
//! 3. Import, the peer cannot refresh: refusing more keeps the session;
//!    taking a route we refused before resets it (Cease, Other
//!    Configuration Change), the one case that does.
//! 4. A dynamic range's filters: its peer's first table and what it
//!    sends are filtered; a change of the range's filters reaches the
//!    running session as a static peer's does.

mod common;

use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use bgp_speaker::packet::{decode, DecodeCtx, Message};
use bgp_speaker::{
    Afi, BestPathChange, DynamicPeerConfig, LocalRoute, NextHop, PathAttrs, PeerConfig,
    SessionState, SpeakerConfig,
};
use common::pipe::{settle, Net, Peer, SPEAKER};
use common::*;
use tortie_config::filter::{FilterAction, FilterRule, FilterRules, MatchOperator, PrefixMatch};

const PEER: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 2);

fn peer_ip() -> IpAddr {
    IpAddr::V4(PEER)
}

/// Rules rejecting exactly these IPv4 prefixes.
fn reject(prefixes: &[&str]) -> FilterRules {
    FilterRules {
        v4: prefixes
            .iter()
            .map(|p| FilterRule {
                prefix: Some(PrefixMatch::new(p.parse().unwrap(), MatchOperator::Equal)),
                from_peers: false,
                interface: None,
                action: FilterAction::Reject,
            })
            .collect(),
        v6: Vec::new(),
    }
}

/// The peer's OPEN ([`open`]), with the route refresh capability
/// (RFC 2918) when `refresh`.
fn peer_open(refresh: bool) -> Vec<u8> {
    let mut m = open(4, AS, 90, PEER.octets());
    if refresh {
        let cap = [2, 2, 2, 0];
        m.extend_from_slice(&cap);
        let len = u16::try_from(m.len()).unwrap();
        m[16..18].copy_from_slice(&len.to_be_bytes());
        m[28] += cap.len() as u8;
    }
    m
}

/// A speaker (AS 64512) with one iBGP peer, `config`, Established over a
/// pipe; the speaker's first table is read up to its End-of-RIB and
/// returned as (announced, withdrawn).
async fn up(config: PeerConfig, routes: &[&str], refresh: bool) -> (Net, Peer, Sent) {
    let mut c = SpeakerConfig::new(SPEAKER, AS);
    c.families = vec![Afi::Ipv4];
    c.peers = vec![config];
    let mut net = Net::start_config(c).await;
    net.h
        .originate(routes.iter().map(|r| local(r)).collect())
        .await
        .unwrap();
    let mut p = net.next_dial().await.accept();
    p.expect(1, "OPEN").await;
    p.send(&peer_open(refresh)).await;
    p.expect(4, "KEEPALIVE").await;
    p.send(&msg(4, &[])).await;
    let first = read_until_quiet(&mut p).await;
    assert!(first.end_of_rib, "End-of-RIB after the first table");
    (net, p, first)
}

fn local(p: &str) -> LocalRoute {
    LocalRoute {
        prefix: p.parse().unwrap(),
        attrs: PathAttrs::local(NextHop::V4(SPEAKER)),
    }
}

/// What the speaker sent the peer in a stretch.
#[derive(Debug, Default)]
struct Sent {
    announced: BTreeSet<String>,
    withdrawn: BTreeSet<String>,
    refreshes: Vec<Afi>,
    end_of_rib: bool,
    updates: usize,
    other: Vec<u8>,
}

/// Reads what the speaker sends until it is quiet for 5 s (virtual),
/// KEEPALIVEs aside.
async fn read_until_quiet(p: &mut Peer) -> Sent {
    let ctx = DecodeCtx {
        asn4: true,
        ibgp: true,
        max_len: 4096,
        families: vec![Afi::Ipv4],
    };
    let mut sent = Sent::default();
    loop {
        let Ok(got) = tokio::time::timeout(Duration::from_secs(5), p.recv()).await else {
            return sent;
        };
        let (t, body) = got.expect("the speaker keeps the connection");
        match decode(&msg(t, &body), &ctx).unwrap() {
            Message::Keepalive => {}
            Message::Update(u) if u.end_of_rib.is_some() => sent.end_of_rib = true,
            Message::Update(u) => {
                sent.updates += 1;
                sent.withdrawn
                    .extend(u.withdrawn.iter().map(ToString::to_string));
                for a in u.announced {
                    sent.announced
                        .extend(a.nlri.iter().map(ToString::to_string));
                }
            }
            Message::RouteRefresh { afi, subtype: 0 } => sent.refreshes.push(afi),
            _ => sent.other.push(t),
        }
    }
}

fn set(items: &[&str]) -> BTreeSet<String> {
    items.iter().map(|s| s.to_string()).collect()
}

/// The session is Established and never left it.
async fn still_up(net: &Net) {
    settle().await;
    let s = net.h.fresh_status().await.unwrap();
    let p = s.peers.iter().find(|p| p.address == peer_ip()).unwrap();
    assert_eq!(p.state, SessionState::Established);
    assert_eq!(p.flaps, 0, "the session never went down");
}

/// (received, accepted) prefixes from the peer.
async fn counts(net: &Net) -> (u64, u64) {
    settle().await;
    let s = net.h.fresh_status().await.unwrap();
    let p = s.peers.iter().find(|p| p.address == peer_ip()).unwrap();
    (p.prefixes_received, p.prefixes_accepted)
}

/// The speaker's configuration with the peer's `config`.
fn with_peer(config: PeerConfig) -> SpeakerConfig {
    let mut c = SpeakerConfig::new(SPEAKER, AS);
    c.families = vec![Afi::Ipv4];
    c.peers = vec![config];
    c
}

/// Best-path changes as (prefix, has a best path), drained.
fn drain(net: &mut Net) -> Vec<(String, bool)> {
    let mut out = Vec::new();
    while let Ok(batch) = net.best.try_recv() {
        out.extend(
            batch
                .into_iter()
                .map(|c: BestPathChange| (c.prefix.to_string(), c.best.is_some())),
        );
    }
    out
}

/// An UPDATE from the peer announcing these /24s of 10.7.0.0/16.
fn announce(thirds: &[u8]) -> Vec<u8> {
    let nlri: Vec<u8> = thirds.iter().flat_map(|t| [24, 10, 7, *t]).collect();
    update(&[], &good_attrs(), &nlri)
}

#[tokio::test(start_paused = true)]
async fn an_export_filter_change_sends_the_difference_only() {
    let routes = ["10.1.0.0/24", "10.2.0.0/24", "10.3.0.0/24"];
    let mut config = PeerConfig::new(peer_ip(), AS);
    config.export_filter = reject(&["10.1.0.0/24"]);
    let (net, mut p, first) = up(config.clone(), &routes, true).await;
    assert_eq!(first.announced, set(&["10.2.0.0/24", "10.3.0.0/24"]));

    config.export_filter = reject(&["10.2.0.0/24"]);
    net.h.reconfigure(with_peer(config.clone())).await.unwrap();
    let sent = read_until_quiet(&mut p).await;
    assert_eq!(sent.announced, set(&["10.1.0.0/24"]), "{sent:?}");
    assert_eq!(sent.withdrawn, set(&["10.2.0.0/24"]), "{sent:?}");
    assert!(sent.other.is_empty() && !sent.end_of_rib, "{sent:?}");
    still_up(&net).await;

    // No rules: the one refused prefix comes; nothing else is sent again.
    config.export_filter = FilterRules::default();
    net.h.reconfigure(with_peer(config.clone())).await.unwrap();
    let sent = read_until_quiet(&mut p).await;
    assert_eq!(sent.announced, set(&["10.2.0.0/24"]), "{sent:?}");
    assert!(sent.withdrawn.is_empty(), "{sent:?}");
    // Another export class that tells the peer the same (only our own
    // routes, and there are no others): nothing is sent.
    config.export_local_only = true;
    net.h.reconfigure(with_peer(config)).await.unwrap();
    let sent = read_until_quiet(&mut p).await;
    assert_eq!(sent.updates, 0, "{sent:?}");
    still_up(&net).await;
    let s = net.h.fresh_status().await.unwrap();
    assert_eq!(s.peers[0].prefixes_advertised, 3);
}

#[tokio::test(start_paused = true)]
async fn an_import_filter_change_refreshes_a_peer_that_can() {
    let mut config = PeerConfig::new(peer_ip(), AS);
    config.import_filter = reject(&["10.7.2.0/24"]);
    let (mut net, mut p, _) = up(config.clone(), &[], true).await;
    p.send(&announce(&[1, 2, 3])).await;
    assert_eq!(counts(&net).await, (3, 2));
    drain(&mut net);

    config.import_filter = reject(&["10.7.3.0/24"]);
    net.h.reconfigure(with_peer(config)).await.unwrap();
    // 10.7.3.0/24 goes at once, before the peer sends anything.
    settle().await;
    assert_eq!(drain(&mut net), vec![("10.7.3.0/24".to_string(), false)]);
    assert_eq!(counts(&net).await, (3, 1));
    let sent = read_until_quiet(&mut p).await;
    assert_eq!(
        sent.refreshes,
        vec![Afi::Ipv4],
        "one ROUTE-REFRESH: {sent:?}"
    );
    assert_eq!(sent.updates, 0, "{sent:?}");
    // The peer sends its routes again: 10.7.2.0/24 is taken now.
    p.send(&announce(&[1, 2, 3])).await;
    assert_eq!(counts(&net).await, (3, 2));
    assert_eq!(drain(&mut net), vec![("10.7.2.0/24".to_string(), true)]);
    still_up(&net).await;
}

#[tokio::test(start_paused = true)]
async fn a_peer_without_route_refresh_is_reset_only_to_take_a_refused_route() {
    let mut config = PeerConfig::new(peer_ip(), AS);
    config.import_filter = reject(&["10.7.2.0/24"]);
    let (mut net, mut p, _) = up(config.clone(), &[], false).await;
    p.send(&announce(&[1, 2, 3])).await;
    assert_eq!(counts(&net).await, (3, 2));
    drain(&mut net);

    // Refusing one more: no refresh needed, the session stays.
    config.import_filter = reject(&["10.7.2.0/24", "10.7.3.0/24"]);
    net.h.reconfigure(with_peer(config.clone())).await.unwrap();
    settle().await;
    assert_eq!(drain(&mut net), vec![("10.7.3.0/24".to_string(), false)]);
    let sent = read_until_quiet(&mut p).await;
    assert!(
        sent.refreshes.is_empty() && sent.other.is_empty(),
        "{sent:?}"
    );
    still_up(&net).await;

    // Taking 10.7.2.0/24: only a new session brings it.
    config.import_filter = reject(&["10.7.3.0/24"]);
    net.h.reconfigure(with_peer(config)).await.unwrap();
    assert_eq!(
        p.notification().await.map(|n| (n.0, n.1)),
        Some((6, 6)),
        "Cease, Other Configuration Change"
    );
}

#[tokio::test(start_paused = true)]
async fn a_dynamic_ranges_filters_apply_to_its_running_sessions() {
    let routes = ["10.1.0.0/24", "10.2.0.0/24", "10.3.0.0/24"];
    let range = |import: &[&str], export: &[&str]| {
        let mut c = SpeakerConfig::new(SPEAKER, AS);
        c.families = vec![Afi::Ipv4];
        c.dynamic_peers = vec![DynamicPeerConfig {
            import_filter: reject(import),
            export_filter: reject(export),
            ..DynamicPeerConfig::new("10.0.0.0/24".parse().unwrap(), AS)
        }];
        c
    };
    let mut net = Net::start_config(range(&["10.7.2.0/24"], &["10.1.0.0/24"])).await;
    net.h
        .originate(routes.iter().map(|r| local(r)).collect())
        .await
        .unwrap();
    let mut p = net.connect_from(peer_ip()).await;
    p.expect(1, "OPEN").await;
    p.send(&peer_open(true)).await;
    p.expect(4, "KEEPALIVE").await;
    p.send(&msg(4, &[])).await;
    let first = read_until_quiet(&mut p).await;
    assert_eq!(first.announced, set(&["10.2.0.0/24", "10.3.0.0/24"]));
    p.send(&announce(&[1, 2, 3])).await;
    assert_eq!(counts(&net).await, (3, 2));
    drain(&mut net);

    net.h
        .reconfigure(range(&["10.7.3.0/24"], &["10.2.0.0/24"]))
        .await
        .unwrap();
    settle().await;
    assert_eq!(drain(&mut net), vec![("10.7.3.0/24".to_string(), false)]);
    let sent = read_until_quiet(&mut p).await;
    assert_eq!(sent.announced, set(&["10.1.0.0/24"]), "{sent:?}");
    assert_eq!(sent.withdrawn, set(&["10.2.0.0/24"]), "{sent:?}");
    assert_eq!(sent.refreshes, vec![Afi::Ipv4], "{sent:?}");
    p.send(&announce(&[1, 2, 3])).await;
    assert_eq!(counts(&net).await, (3, 2));
    assert_eq!(drain(&mut net), vec![("10.7.2.0/24".to_string(), true)]);
    still_up(&net).await;
    let s = net.h.fresh_status().await.unwrap();
    assert!(s.peers[0].dynamic);
}
