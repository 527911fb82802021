//! tortie-rr as a route reflector client of a BIRD reflector, and itself a
//! reflector for its own client. Runs by default; `TORTIE_INTEROP=0` skips it.
//!
//! Topology (one L2 segment, all AS 64512, v4 + v6 sessions):
//!
//! ```text
//!   h1 BIRD RR, cluster 9.9.9.9 ----- clients: h2, h3
//!   h2 tortie-rr, clusterId 10.255.0.1 -- client of h1; its client: h4
//!   h3 BIRD, originates 10.3.0.0/24, fd10:3::/64 (peer: h1 only)
//!   h4 BIRD, originates 10.4.0.0/24               (peer: h2 only)
//! ```
//!
//! Checks:
//! 1. tortie-rr's sessions with h1 and h4 (v4 + v6) are Established on both
//!    sides.
//! 2. h3's prefixes reach h4 through h1 and h2: next hop h3,
//!    ORIGINATOR_ID 172.30.0.3, CLUSTER_LIST [10.255.0.1, 9.9.9.9].
//! 3. h4's 10.4.0.0/24 reaches h3 through h2 and h1: ORIGINATOR_ID
//!    172.30.0.4, CLUSTER_LIST [9.9.9.9, 10.255.0.1].
//! 4. tortie-rr's /status: 1 prefix received from h1 on each family;
//!    advertised to h1: 1 on IPv4 (h4's), 0 on IPv6 (nothing goes back to
//!    the peer it came from).

mod common;

use std::net::{IpAddr, Ipv4Addr};

use common::{AS_RR, CLUSTER, WAIT};
use tortie_tests::daemons::bird::Bird;
use tortie_tests::daemons::tortie::{TortieConfig, TortieRr};
use tortie_tests::daemons::{net, BgpDaemon, DaemonConfig, Route};
use tortie_tests::interop_enabled;
use tortie_tests::netns::Topology;

#[test]
fn tortie_as_client_of_bird_reflector() {
    if !interop_enabled("tortie_as_client_of_bird_reflector") {
        return;
    }
    let topo = Topology::new(4).unwrap();
    let (h1, h2, h3, h4) = (
        &topo.hosts[0],
        &topo.hosts[1],
        &topo.hosts[2],
        &topo.hosts[3],
    );
    let bird_cluster = Ipv4Addr::new(9, 9, 9, 9);
    let rr1 = Bird::start(
        &h1.ns,
        DaemonConfig::new(h1, AS_RR)
            .cluster_id(bird_cluster)
            .peer_both(h2, AS_RR, |n| n.rr_client())
            .peer_both(h3, AS_RR, |n| n.rr_client()),
    )
    .unwrap();
    let mut cfg = TortieConfig::new(h2.v4, AS_RR);
    cfg.cluster_id = Some(CLUSTER);
    for a in [IpAddr::from(h1.v4), h1.v6.into()] {
        cfg = cfg.peer(a, AS_RR, |_| {});
    }
    for a in [IpAddr::from(h4.v4), h4.v6.into()] {
        cfg = cfg.peer(a, AS_RR, |p| p.client = true);
    }
    let rr2 = TortieRr::start(&h2.ns, cfg).unwrap();
    let b3 = Bird::start(
        &h3.ns,
        DaemonConfig::new(h3, AS_RR)
            .peer_both(h1, AS_RR, |n| n)
            .originate(&["10.3.0.0/24", "fd10:3::/64"]),
    )
    .unwrap();
    let b4 = Bird::start(
        &h4.ns,
        DaemonConfig::new(h4, AS_RR)
            .peer_both(h2, AS_RR, |n| n)
            .originate(&["10.4.0.0/24"]),
    )
    .unwrap();
    // 1.
    for (d, h) in [(&rr1, h1), (&b4, h4)] {
        for (peer, me) in [
            (IpAddr::from(h.v4), IpAddr::from(h2.v4)),
            (h.v6.into(), h2.v6.into()),
        ] {
            rr2.wait_established(peer, WAIT).unwrap();
            d.wait_established(me, WAIT).unwrap();
        }
    }
    // 2.
    let via = |origin: Ipv4Addr, v6: std::net::Ipv6Addr, list: Vec<Ipv4Addr>| {
        move |r: &Route| -> Result<(), String> {
            let nh: IpAddr = if r.prefix.addr().is_ipv4() {
                origin.into()
            } else {
                v6.into()
            };
            if r.next_hop != Some(nh) {
                return Err(format!("next hop {:?}, want {nh}", r.next_hop));
            }
            if r.originator_id != Some(origin) {
                return Err(format!(
                    "ORIGINATOR_ID {:?}, want {origin}",
                    r.originator_id
                ));
            }
            if r.cluster_list != list {
                return Err(format!("CLUSTER_LIST {:?}, want {list:?}", r.cluster_list));
            }
            Ok(())
        }
    };
    for p in ["10.3.0.0/24", "fd10:3::/64"] {
        b4.wait_route(
            net(p),
            WAIT,
            &via(h3.v4, h3.v6, vec![CLUSTER, bird_cluster]),
        )
        .unwrap();
    }
    // 3.
    b3.wait_route(
        net("10.4.0.0/24"),
        WAIT,
        &via(h4.v4, h4.v6, vec![bird_cluster, CLUSTER]),
    )
    .unwrap();
    // 4.
    assert_eq!(
        rr2.peer_counter(h1.v4.into(), "prefixesReceived").unwrap(),
        1
    );
    assert_eq!(
        rr2.peer_counter(h1.v6.into(), "prefixesReceived").unwrap(),
        1
    );
    assert_eq!(
        rr2.peer_counter(h1.v4.into(), "prefixesAdvertised")
            .unwrap(),
        1
    );
    assert_eq!(
        rr2.peer_counter(h1.v6.into(), "prefixesAdvertised")
            .unwrap(),
        0
    );
}
