use std::net::{IpAddr, Ipv4Addr};

use super::*;
use crate::route::NextHop;

const RID: Ipv4Addr = Ipv4Addr::new(172, 30, 0, 1);

pub(super) fn local(rr: bool) -> LocalFacts {
    LocalFacts {
        asn: 64512,
        router_id: RID,
        cluster_id: rr.then_some(RID),
    }
}

pub(super) fn peer(last: u8, asn: u32, client: bool) -> RibPeer {
    let address = IpAddr::V4(Ipv4Addr::new(172, 30, 0, last));
    let ebgp = asn != 64512;
    RibPeer::new(
        PeerFacts {
            address,
            router_id: Ipv4Addr::new(10, 0, 0, last),
            ebgp,
        },
        asn,
        client,
        ExportClass {
            asn,
            ebgp,
            rr_client: client,
            next_hop_self: false,
            keep_next_hop: false,
            local_only: false,
            aggregates: false,
            policy: crate::rib::policy::NO_POLICY,
            local_addr: IpAddr::V4(RID),
            local_link_local: None,
        },
        vec![Afi::Ipv4, Afi::Ipv6],
    )
}

pub(super) fn pfx(s: &str) -> Prefix {
    s.parse().unwrap()
}

pub(super) fn attrs_from(last: u8) -> PathAttrs {
    let mut a = PathAttrs::local(NextHop::V4(Ipv4Addr::new(172, 30, 0, last)));
    a.local_pref = Some(100);
    a
}

#[test]
fn reflects_between_clients_with_rr_attributes_and_withdraws() {
    let mut rib = Rib::new(local(true));
    rib.peer_up(2, peer(2, 64512, true));
    rib.peer_up(3, peer(3, 64512, true));
    rib.update(
        2,
        attrs_from(2),
        &[pfx("10.244.1.0/26"), pfx("10.244.2.0/26")],
    )
    .unwrap();
    let changes = rib.decide(true);
    assert_eq!(changes.len(), 2);
    assert_eq!(
        changes[0].best.as_ref().unwrap().peer,
        Some(IpAddr::V4(Ipv4Addr::new(172, 30, 0, 2)))
    );
    // Not sent back to the client it came from.
    assert!(!rib.skip_to_pending(2));
    let out = rib.take_out(3, 100);
    assert_eq!(out.announced().len(), 1, "one attribute group");
    let (a, nlri) = &out.announced()[0];
    assert_eq!(nlri.len(), 2);
    assert_eq!(a.originator_id, Some(Ipv4Addr::new(10, 0, 0, 2)));
    assert_eq!(a.cluster_list, vec![RID]);
    assert_eq!(rib.apply_then_count(3).unwrap().advertised(), 2);

    rib.withdraw(2, pfx("10.244.1.0/26"));
    let changes = rib.decide(true);
    assert_eq!(
        changes,
        vec![BestPathChange {
            prefix: pfx("10.244.1.0/26"),
            best: None
        }]
    );
    let out = rib.take_out(3, 100);
    assert_eq!(out.withdrawn(), vec![pfx("10.244.1.0/26")]);
    assert!(out.announced().is_empty());
    assert_eq!(rib.apply_then_best_count(), 1);
}

#[test]
fn ibgp_split_horizon_without_reflection() {
    let mut rib = Rib::new(local(false));
    rib.peer_up(2, peer(2, 64512, true));
    rib.peer_up(3, peer(3, 64512, false));
    rib.peer_up(4, peer(4, 65001, false));
    rib.update(2, attrs_from(2), &[pfx("10.1.0.0/16")]).unwrap();
    rib.decide(true);
    assert!(
        !rib.skip_to_pending(3),
        "iBGP route not sent to another iBGP peer"
    );
    let out = rib.take_out(4, 10);
    assert_eq!(
        out.announced()[0].0.as_path,
        vec![crate::route::AsSegment::Sequence(vec![64512])]
    );
}

#[test]
fn best_path_moves_and_new_peer_gets_full_table() {
    let mut rib = Rib::new(local(true));
    rib.peer_up(2, peer(2, 64512, true));
    rib.peer_up(3, peer(3, 64512, true));
    let p = pfx("10.9.0.0/24");
    rib.update(3, attrs_from(3), &[p]).unwrap();
    rib.update(2, attrs_from(2), &[p]).unwrap();
    let ch = rib.decide(true);
    // Lower router id (10.0.0.2) wins.
    assert_eq!(ch.len(), 1);
    assert_eq!(
        ch[0].best.as_ref().unwrap().attrs.next_hop,
        NextHop::V4(Ipv4Addr::new(172, 30, 0, 2))
    );
    rib.withdraw(2, p);
    let ch = rib.decide(true);
    assert_eq!(
        ch[0].best.as_ref().unwrap().attrs.next_hop,
        NextHop::V4(Ipv4Addr::new(172, 30, 0, 3))
    );
    // A late peer receives every best path it may get.
    rib.peer_up(5, peer(5, 64512, true));
    let out = rib.take_out(5, 10);
    assert_eq!(out.announced().len(), 1);
    assert_eq!(out.announced()[0].1, vec![p]);
}

#[test]
fn graceful_restart_keeps_stale_until_end_of_rib() {
    let mut rib = Rib::new(local(true));
    rib.peer_up(2, peer(2, 64512, true));
    rib.peer_up(3, peer(3, 64512, true));
    let (a, b) = (pfx("10.1.1.0/24"), pfx("10.1.2.0/24"));
    rib.update(2, attrs_from(2), &[a, b]).unwrap();
    rib.decide(true);
    rib.take_out(3, 10);
    rib.peer_down(2, &[Afi::Ipv4]);
    assert!(rib.decide(true).is_empty(), "stale routes stay best");
    assert!(!rib.skip_to_pending(3), "peer 3 keeps them");
    // The peer comes back and refreshes only `a`, then End-of-RIB.
    rib.peer_up(2, peer(2, 64512, true));
    rib.update(2, attrs_from(2), &[a]).unwrap();
    assert_eq!(rib.sweep_stale(2, Afi::Ipv4), 1);
    let ch = rib.decide(true);
    assert_eq!(
        ch,
        vec![BestPathChange {
            prefix: b,
            best: None
        }]
    );
    assert_eq!(rib.take_out(3, 10).withdrawn(), vec![b]);
}

#[test]
fn hard_down_removes_routes_and_rejects_loops() {
    let mut rib = Rib::new(local(true));
    rib.peer_up(2, peer(2, 64512, true));
    let mut looped = attrs_from(2);
    looped.originator_id = Some(RID);
    assert_eq!(
        rib.update(2, looped, &[pfx("10.7.0.0/16")]),
        Err(ImportReject::OriginatorLoop)
    );
    rib.update(2, attrs_from(2), &[pfx("10.8.0.0/16")]).unwrap();
    assert_eq!(rib.apply_then_count(2).unwrap().received(), (2, 1));
    assert_eq!(rib.decide(true).len(), 1);
    rib.peer_down(2, &[]);
    assert_eq!(rib.decide(true).len(), 1);
    assert_eq!(rib.apply_then_best_count(), 0);
    assert!(rib.apply_then_count(2).is_none());
}

#[test]
fn local_routes_go_to_everyone_with_next_hop() {
    let mut rib = Rib::new(local(false));
    rib.peer_up(2, peer(2, 64512, false));
    rib.local_update(
        pfx("10.244.3.0/26"),
        PathAttrs::local(NextHop::V4(Ipv4Addr::UNSPECIFIED)),
    );
    rib.local_update(
        pfx("fd00:244::/122"),
        PathAttrs::local(NextHop::V6 {
            global: "fd00::1".parse().unwrap(),
            link_local: None,
        }),
    );
    assert_eq!(rib.decide(true).len(), 2);
    let out = rib.take_out(2, 10);
    assert_eq!(out.announced().len(), 2);
    let v4 = out
        .announce
        .iter()
        .find(|(a, _)| matches!(a.next_hop, NextHop::V4(_)))
        .unwrap();
    assert_eq!(
        v4.0.next_hop,
        NextHop::V4(RID),
        "unspecified next hop becomes ours"
    );
    assert_eq!(v4.0.local_pref, Some(100));
}

#[test]
fn a_prefix_changed_twice_before_sending_is_sent_once_in_its_last_state() {
    let mut rib = Rib::new(local(true));
    rib.peer_up(2, peer(2, 64512, true));
    rib.peer_up(3, peer(3, 64512, true));
    let p = pfx("10.3.0.0/24");
    rib.update(2, attrs_from(2), &[p]).unwrap();
    rib.decide(false);
    let mut other = attrs_from(2);
    other.med = Some(9);
    rib.update(2, other, &[p]).unwrap();
    rib.decide(false);
    let out = rib.take_out(3, 100);
    assert_eq!(out.announced().len(), 1);
    assert_eq!(out.announced()[0].1, vec![p]);
    assert_eq!(out.announced()[0].0.med, Some(9));
    // Announced then withdrawn before sending: one withdrawal.
    rib.update(2, attrs_from(2), &[pfx("10.4.0.0/24")]).unwrap();
    rib.decide(false);
    rib.withdraw(2, pfx("10.4.0.0/24"));
    rib.decide(false);
    let out = rib.take_out(3, 100);
    assert_eq!(
        (out.announced().len(), out.withdrawn().clone()),
        (0, vec![pfx("10.4.0.0/24")])
    );
    assert!(!rib.skip_to_pending(3));
}

#[test]
fn withdrawn_and_reannounced_in_one_batch_is_one_change_and_one_send() {
    let mut rib = Rib::new(local(true));
    rib.peer_up(2, peer(2, 64512, true));
    rib.peer_up(3, peer(3, 64512, true));
    let p = pfx("10.5.0.0/24");
    rib.update(2, attrs_from(2), &[p]).unwrap();
    rib.decide(true);
    rib.take_out(3, 100);
    // Gone and back before the next decision run.
    rib.withdraw(2, p);
    let mut other = attrs_from(2);
    other.med = Some(3);
    rib.update(2, other, &[p]).unwrap();
    let ch = rib.decide(true);
    assert_eq!(ch.len(), 1, "{ch:?}");
    assert_eq!(ch[0].best.as_ref().unwrap().attrs.med, Some(3));
    let out = rib.take_out(3, 100);
    assert_eq!((out.announced().len(), out.withdrawn().len()), (1, 0));
    assert_eq!(out.announced()[0].1, vec![p]);
    assert_eq!(rib.apply_then_best_count(), 1);
    // Withdrawn for good: the destination goes.
    rib.withdraw(2, p);
    assert_eq!(rib.decide(true).len(), 1);
    assert_eq!(rib.take_out(3, 100).withdrawn(), vec![p]);
    assert_eq!(rib.apply_then_best_count(), 0);
}

#[test]
fn storage_follows_the_routes_through_multipath_replacement_staleness_and_removal() {
    // One shard: attribute sets are counted per shard.
    let mut rib = Rib::with_shards(local(true), 1);
    rib.peer_up(2, peer(2, 64512, true));
    rib.peer_up(3, peer(3, 64512, true));
    let many: Vec<Prefix> = (0..200u32)
        .map(|i| {
            Prefix::V4(ipnet::Ipv4Net::new(Ipv4Addr::from(0x0a00_0000 + (i << 8)), 24).unwrap())
        })
        .collect();
    // Both peers send every prefix: two paths each (overflow lists).
    rib.update(2, attrs_from(2), &many).unwrap();
    rib.update(3, attrs_from(3), &many).unwrap();
    rib.decide(false);
    assert_eq!(rib.v4.storage_in_use(), (200, 2, 200));
    assert_eq!(rib.apply_then_best_count(), 200);
    // Peer 2 changes its attributes for half of them: three sets in use.
    let mut changed = attrs_from(2);
    changed.med = Some(5);
    rib.update(2, changed.clone(), &many[..100]).unwrap();
    rib.decide(false);
    assert_eq!(rib.v4.storage_in_use(), (200, 3, 200));
    // ... then for the rest: the first set is no longer used.
    rib.update(2, changed, &many[100..]).unwrap();
    rib.decide(false);
    assert_eq!(rib.v4.storage_in_use(), (200, 2, 200));
    // An UPDATE that changes nothing leaves no new set behind.
    rib.update(3, attrs_from(3), &many[..10]).unwrap();
    rib.apply();
    assert_eq!(rib.v4.storage_in_use(), (200, 2, 200));
    // Peer 3 withdraws half: those prefixes are back to one inline path.
    for p in &many[..100] {
        rib.withdraw(3, *p);
    }
    rib.decide(false);
    assert_eq!(rib.v4.storage_in_use(), (200, 2, 100));
    // Peer 2 goes down gracefully: its paths stay (stale) until swept.
    rib.peer_down(2, &[Afi::Ipv4]);
    rib.decide(false);
    assert_eq!(rib.v4.storage_in_use(), (200, 2, 100));
    assert_eq!(rib.sweep_stale(2, Afi::Ipv4), 200);
    rib.decide(false);
    assert_eq!(rib.v4.storage_in_use(), (100, 1, 0));
    assert_eq!(rib.apply_then_best_count(), 100);
    // Peer 3 goes down for good: nothing is left.
    rib.peer_down(3, &[]);
    rib.decide(false);
    assert_eq!(rib.v4.storage_in_use(), (0, 0, 0));
    assert_eq!(rib.apply_then_best_count(), 0);
}

/// Everything a RIB shows outside: best paths (from the change stream),
/// counters, and what each peer is sent.
#[derive(Debug, Default, PartialEq)]
struct Seen {
    best: std::collections::BTreeMap<String, Option<String>>,
    /// The peer the best path came from (None: none, or local).
    best_from: std::collections::BTreeMap<String, Option<IpAddr>>,
    counts: Vec<(PeerId, Option<PeerCounts>)>,
    sent: std::collections::BTreeMap<(PeerId, String), String>,
    best_count: u64,
}

fn observe(rib: &mut Rib, seen: &mut Seen, peers: &[PeerId]) {
    for c in rib.decide(true) {
        seen.best_from
            .insert(c.prefix.to_string(), c.best.as_ref().and_then(|b| b.peer));
        let best = c.best.map(|b| format!("{:?} from {:?}", b.attrs, b.peer));
        seen.best.insert(c.prefix.to_string(), best);
    }
    for &id in peers {
        while rib.skip_to_pending(id) {
            let batch = rib.take_out(id, 1000);
            for (attrs, prefixes) in batch.announced() {
                for p in prefixes {
                    seen.sent.insert((id, p.to_string()), format!("{attrs:?}"));
                }
            }
            for p in batch.withdrawn() {
                seen.sent.insert((id, p.to_string()), "withdrawn".into());
            }
        }
    }
    seen.counts = peers
        .iter()
        .map(|&id| (id, rib.apply_then_count(id)))
        .collect();
    seen.best_count = rib.apply_then_best_count();
}

#[test]
fn sharded_tables_behave_like_one_table() {
    let mut state = 0x2545_f491_4f6c_dd1d_u64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let peers: [PeerId; 3] = [2, 3, 4];
    let mut one = Rib::with_shards(local(true), 1);
    let mut three = Rib::with_shards(local(true), 3);
    let (mut seen1, mut seen3) = (Seen::default(), Seen::default());
    for rib in [&mut one, &mut three] {
        for &id in &peers {
            rib.peer_up(id, peer(id as u8, 64512, id != 4));
        }
    }
    let v4 = |i: u64| {
        Prefix::V4(
            ipnet::Ipv4Net::new(Ipv4Addr::from(0x0a00_0000 + ((i as u32) << 8)), 24).unwrap(),
        )
    };
    let v6 = |i: u64| pfx(&format!("2001:db8:{:x}::/48", i));
    // A batch large enough for the threads, then random work.
    let big: Vec<Prefix> = (0..20_000).map(v4).collect();
    for rib in [&mut one, &mut three] {
        rib.update(2, attrs_from(2), &big).unwrap();
    }
    for round in 0..300 {
        let id = peers[(next() % 3) as usize];
        let n = 1 + next() % 400;
        let start = next() % 30_000;
        let prefixes: Vec<Prefix> = (start..start + n)
            .map(|i| if i % 7 == 0 { v6(i) } else { v4(i) })
            .collect();
        let mut attrs = attrs_from(id as u8);
        attrs.med = Some((next() % 3) as u32);
        attrs.local_pref = Some(100 + (next() % 2) as u32 * 50);
        let kind = next() % 10;
        for rib in [&mut one, &mut three] {
            match kind {
                0..=5 => {
                    let _ = rib.update(id, attrs.clone(), &prefixes);
                }
                6 | 7 => prefixes.iter().for_each(|p| rib.withdraw(id, *p)),
                8 if round % 50 == 8 => {
                    // Graceful restart: stale, back up, swept.
                    rib.peer_down(id, &[Afi::Ipv4, Afi::Ipv6]);
                    rib.peer_up(id, peer(id as u8, 64512, id != 4));
                    let _ = rib.update(id, attrs.clone(), &prefixes);
                    rib.sweep_stale(id, Afi::Ipv4);
                    rib.sweep_stale(id, Afi::Ipv6);
                }
                _ => {
                    let _ = rib.update(id, attrs.clone(), &prefixes);
                    prefixes[..prefixes.len() / 2]
                        .iter()
                        .for_each(|p| rib.withdraw(id, *p));
                }
            }
        }
        if next() % 3 == 0 {
            observe(&mut one, &mut seen1, &peers);
            observe(&mut three, &mut seen3, &peers);
            assert_eq!(seen1, seen3, "round {round}");
        }
    }
    observe(&mut one, &mut seen1, &peers);
    observe(&mut three, &mut seen3, &peers);
    assert_eq!(seen1, seen3);
    // Every peer holds exactly the best paths it may get: all of them but
    // its own (peers 2 and 3 are clients, 4 is not: its routes go to
    // clients only).
    for &id in &peers {
        let me = IpAddr::V4(Ipv4Addr::new(172, 30, 0, id as u8));
        for (prefix, from) in &seen1.best_from {
            let held = seen1
                .sent
                .get(&(id, prefix.clone()))
                .is_some_and(|s| s != "withdrawn");
            let expected = match from {
                None => false,
                Some(src) if *src == me => false,
                Some(src) if *src == IpAddr::V4(Ipv4Addr::new(172, 30, 0, 4)) => id != 4,
                Some(_) => true,
            };
            assert_eq!(held, expected, "peer {id}, {prefix} (best from {from:?})");
        }
    }
    assert!(
        seen1.best_count > 10_000,
        "the test exercised a large table"
    );
    assert!(seen1.sent.len() > 10_000, "and sent it to the clients");
    for rib in [&mut one, &mut three] {
        for &id in &peers {
            rib.peer_down(id, &[]);
        }
        rib.decide(false);
        assert_eq!(rib.v4.storage_in_use(), (0, 0, 0));
        assert_eq!(rib.v6.storage_in_use(), (0, 0, 0));
    }
}

#[test]
fn a_client_joining_after_the_source_gets_its_routes() {
    // Peers 2 and 3 share an export class (one update group). While the
    // source is the group's only member, nobody needs its routes; a client
    // that joins later must still get them.
    let mut rib = Rib::new(local(true));
    rib.peer_up(2, peer(2, 64512, true));
    let p = pfx("10.9.0.0/24");
    rib.update(2, attrs_from(2), &[p]).unwrap();
    rib.decide(false);
    assert!(!rib.skip_to_pending(2), "nothing goes back to the source");
    rib.peer_up(3, peer(3, 64512, true));
    rib.decide(false);
    let out = rib.take_out(3, 10);
    assert_eq!(out.announced().len(), 1);
    assert_eq!(out.announced()[0].1, vec![p]);
    assert_eq!(rib.apply_then_count(3).unwrap().advertised(), 1);
    assert_eq!(rib.apply_then_count(2).unwrap().advertised(), 0);
    // A third client joins a group that now holds the route.
    rib.peer_up(4, peer(4, 64512, true));
    assert_eq!(rib.take_out(4, 10).announced()[0].1, vec![p]);
    // The source withdraws it: both clients are told, the source is not.
    rib.withdraw(2, p);
    rib.decide(false);
    assert_eq!(rib.take_out(3, 10).withdrawn(), vec![p]);
    assert_eq!(rib.take_out(4, 10).withdrawn(), vec![p]);
    assert!(!rib.skip_to_pending(2));
    assert_eq!(rib.apply_then_count(3).unwrap().advertised(), 0);
}

/// Drains what `id` is sent into `held` (prefix -> MED, or removed when
/// withdrawn); returns how many prefixes the batches named.
pub(super) fn drain(
    rib: &mut Rib,
    id: PeerId,
    held: &mut std::collections::BTreeMap<Prefix, u32>,
) -> usize {
    let mut named = 0;
    while rib.skip_to_pending(id) {
        let batch = rib.take_out(id, 64);
        let n =
            batch.withdrawn().len() + batch.announced().iter().map(|a| a.1.len()).sum::<usize>();
        assert!(n > 0, "skip_to_pending promised something");
        named += n;
        for (attrs, prefixes) in batch.announced() {
            for p in prefixes {
                held.insert(p, attrs.med.unwrap_or(0));
            }
        }
        for p in batch.withdrawn() {
            held.remove(&p);
        }
    }
    named
}

#[test]
fn members_read_one_change_log_and_a_stuck_one_keeps_it_bounded() {
    // One update group of three clients: 2 announces, 3 reads after every
    // run, 4 reads nothing until the end (its session is stuck).
    let mut rib = Rib::with_shards(local(true), 1);
    for id in [2, 3, 4] {
        rib.peer_up(id, peer(id as u8, 64512, true));
    }
    let prefixes: Vec<Prefix> = (0..100)
        .map(|i| pfx(&format!("10.{}.{}.0/24", 1 + i / 200, i % 200)))
        .collect();
    let (mut held3, mut held4) = (Default::default(), Default::default());
    let bound = 2 * prefixes.len() + 1024;
    for round in 0..40u32 {
        let mut a = attrs_from(2);
        a.med = Some(round);
        rib.update(2, a, &prefixes).unwrap();
        if round % 5 == 4 {
            rib.withdraw(2, prefixes[round as usize]);
        }
        rib.decide(false);
        // The source is never sent its own routes, not even withdrawals.
        assert!(!rib.skip_to_pending(2), "round {round}");
        // The reader gets each change once.
        let named = drain(&mut rib, 3, &mut held3);
        assert_eq!(named, prefixes.len(), "round {round}");
        assert!(
            rib.v4.logged() <= bound + prefixes.len(),
            "round {round}: log of {} entries, bound {bound}",
            rib.v4.logged()
        );
    }
    // Sessions 3 and 4 see the same final state, although 4 read nothing
    // for 40 runs (4000 changes, more than the log keeps).
    // It is sent the current state of what changed (the part of the log
    // that overflowed, once per prefix, then the log after that), not the
    // 4000 changes.
    let named = drain(&mut rib, 4, &mut held4);
    assert!(named <= 2 * prefixes.len(), "sent {named}");
    assert_eq!(held3, held4);
    // The last round withdrew one prefix.
    assert_eq!(held3.len(), 99);
    assert!(held3.values().all(|med| *med == 39), "{held3:?}");
    // Once everyone has read it, the next run empties the log.
    rib.update(2, attrs_from(2), &prefixes[..1]).unwrap();
    rib.decide(false);
    drain(&mut rib, 3, &mut held3);
    drain(&mut rib, 4, &mut held4);
    assert_eq!(drain(&mut rib, 2, &mut Default::default()), 0);
    rib.decide(false);
    rib.update(2, attrs_from(2), &prefixes[1..2]).unwrap();
    rib.decide(false);
    assert_eq!(rib.v4.logged(), 1, "only the last run's change is left");
    assert_eq!(rib.apply_then_count(2).unwrap().advertised(), 0);
    assert_eq!(rib.apply_then_count(4).unwrap().advertised(), 99);
}

#[test]
fn a_whole_table_withdrawn_goes_through_the_log() {
    // Members that keep up read a large run from the log, even when the
    // run is longer than the log's bound (the table it is measured by
    // just emptied): no per-member copies.
    let mut rib = Rib::with_shards(local(true), 1);
    for id in [2, 3, 4] {
        rib.peer_up(id, peer(id as u8, 64512, true));
    }
    let prefixes: Vec<Prefix> = (0..3000u32)
        .map(|i| {
            Prefix::V4(ipnet::Ipv4Net::new(Ipv4Addr::from(0x0a00_0000 + (i << 8)), 24).unwrap())
        })
        .collect();
    rib.update(2, attrs_from(2), &prefixes).unwrap();
    rib.decide(false);
    let mut held = [Default::default(), Default::default(), Default::default()];
    for (id, h) in [2, 3, 4].into_iter().zip(held.iter_mut()) {
        drain(&mut rib, id, h);
    }
    assert_eq!(
        (held[0].len(), held[1].len(), held[2].len()),
        (0, 3000, 3000)
    );
    prefixes.iter().for_each(|p| rib.withdraw(2, *p));
    rib.decide(false);
    assert_eq!(rib.v4.logged(), 3000, "the run stays in the log");
    for (id, h) in [2, 3, 4].into_iter().zip(held.iter_mut()) {
        assert_eq!(drain(&mut rib, id, h), if id == 2 { 0 } else { 3000 });
    }
    assert!(held.iter().all(|h| h.is_empty()));
    rib.decide(false);
    assert_eq!(rib.v4.logged(), 0, "read by all, then trimmed");
}

#[test]
fn a_tor_peer_gets_only_local_routes_and_gives_only_what_its_filter_allows() {
    let mut rib = Rib::new(local(false));
    // Peer 9: an eBGP top-of-rack router, filtered both ways, next hop kept.
    let mut tor = peer(9, 65000, false);
    tor.export.local_only = true;
    tor.export.keep_next_hop = true;
    let tor = tor.importing_only(Some(vec!["10.244.0.0/16".parse().unwrap()]));
    rib.peer_up(9, tor);
    rib.peer_up(2, peer(2, 64512, false));
    // Another node's block (iBGP), and our own block.
    rib.update(2, attrs_from(2), &[pfx("10.244.1.0/26")])
        .unwrap();
    rib.local_update(pfx("10.244.0.0/26"), attrs_from(7));
    rib.decide(true);
    let out = rib.take_out(9, 100);
    let sent: Vec<Prefix> = out
        .announced()
        .iter()
        .flat_map(|(_, n)| n.clone())
        .collect();
    assert_eq!(sent, vec![pfx("10.244.0.0/26")], "only the local route");
    assert_eq!(
        out.announced()[0].0.next_hop,
        NextHop::V4(Ipv4Addr::new(172, 30, 0, 7)),
        "keepOriginalNextHop: the route's own next hop, not our session address"
    );
    // The ToR sends a pool prefix and one outside the pools.
    let mut from_tor = PathAttrs::local(NextHop::V4(Ipv4Addr::new(172, 30, 0, 9)));
    from_tor.as_path = vec![crate::route::AsSegment::Sequence(vec![65000])];
    rib.update(9, from_tor, &[pfx("10.244.9.0/26"), pfx("198.51.100.0/24")])
        .unwrap();
    let changes = rib.decide(true);
    let prefixes: Vec<Prefix> = changes.iter().map(|c| c.prefix).collect();
    assert_eq!(prefixes, vec![pfx("10.244.9.0/26")]);
    let counts = rib.apply_then_count(9).unwrap();
    assert_eq!(counts.received(), (2, 1), "both received, one accepted");
}

#[test]
fn a_decision_with_nothing_changed_and_nothing_read_is_skipped() {
    // The speaker decides after every event, keepalives included: with
    // no best-path change and no log read since the last run there is
    // nothing to export or trim, and no run is made.
    let mut rib = Rib::with_shards(local(true), 2);
    for id in [2, 3] {
        rib.peer_up(id, peer(id as u8, 64512, true));
    }
    assert!(rib.v4.idle());
    let prefixes: Vec<Prefix> = (0..10u32)
        .map(|i| {
            Prefix::V4(ipnet::Ipv4Net::new(Ipv4Addr::from(0x0a00_0000 + (i << 8)), 24).unwrap())
        })
        .collect();
    rib.update(2, attrs_from(2), &prefixes).unwrap();
    assert!(!rib.v4.idle(), "changes queued");
    rib.decide(false);
    assert!(rib.v4.idle(), "the run took the changes");
    assert_eq!(rib.v4.logged(), 10);
    let mut held = Default::default();
    assert_eq!(drain(&mut rib, 3, &mut held), 10);
    // The source's own cursor passes its routes too.
    assert_eq!(drain(&mut rib, 2, &mut Default::default()), 0);
    assert!(
        !rib.v4.idle(),
        "members read the log: the next run trims it"
    );
    rib.decide(false);
    assert!(rib.v4.idle());
    assert_eq!(rib.v4.logged(), 0, "read by all, then trimmed");
    // Idle decisions change nothing.
    for _ in 0..3 {
        assert!(rib.decide(true).is_empty());
    }
    assert_eq!(rib.apply_then_count(3).unwrap().advertised(), 10);
}

#[test]
fn a_batch_of_parallel_size_is_heavy_until_decided() {
    let mut rib = Rib::with_shards(local(false), 2);
    rib.peer_up(1, peer(2, 64512, false));
    let host = |i: u32| Prefix::V4(Ipv4Net::new(Ipv4Addr::from(0x0a00_0000 + i), 32).unwrap());
    let small: Vec<Prefix> = (0..100).map(host).collect();
    rib.update(1, attrs_from(2), &small).unwrap();
    assert!(!rib.heavy(), "100 routes: decided on the runtime");
    rib.decide(false);
    let big: Vec<Prefix> = (0..shard::PARALLEL_MIN as u32).map(host).collect();
    rib.update(1, attrs_from(2), &big).unwrap();
    assert!(rib.heavy(), "a queued batch of PARALLEL_MIN routes");
    rib.decide(false);
    assert!(!rib.heavy());
    // Local routes are not queued: their changed prefixes count.
    for i in 0..shard::PARALLEL_MIN as u32 {
        rib.local_update(host(1_000_000 + i), attrs_from(1));
    }
    assert!(rib.heavy(), "PARALLEL_MIN local routes to decide");
}
