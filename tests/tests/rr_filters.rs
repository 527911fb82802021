//! tortie-rr's `filters` against BIRD 2, and a reload that changes them.
//!
//! ```text
//!   h1 tortie-rr AS 64512 (RR) --+-- h2 BIRD, client, sends 10.2/24, 10.3/24, 10.4/24
//!                                +-- h3 BIRD, client, receives
//! ```
//!
//! tortie-rr's file: filter `in` (import, h2's sessions) rejects
//! 10.3.0.0/24; filter `out` (export, h3's) rejects 10.2.0.0/24.
//!
//! Checks:
//! 1. h3 has 10.4.0.0/24 only; tortie-rr counts 3 received and 2
//!    accepted from h2.
//! 2. The file changes (`in` now rejects 10.4.0.0/24, `out` nothing) and
//!    tortie-rr reloads it: h3 gets 10.2.0.0/24 and 10.3.0.0/24 (h2 was
//!    asked for its routes again) and loses 10.4.0.0/24; no session of
//!    tortie-rr's went down (`flaps` 0) and both stayed Established.
//!
//! The same for a `dynamicPeers` range (second test): h2 is a static
//! client as above (unfiltered), h3 a BIRD inside the range
//! 172.30.0.0/24 (h2's static entry wins for h2), sending 10.5.0.0/24 and
//! 10.6.0.0/24; the range's filters are `dyn-in` (rejects 10.6.0.0/24)
//! and `dyn-out` (rejects 10.2.0.0/24).
//!
//! 3. h3 is a dynamic peer and has 10.3/24 and 10.4/24, not 10.2/24; h2
//!    has 10.5/24, not 10.6/24; 2 received, 1 accepted from h3.
//! 4. A reload: `dyn-in` rejects 10.5.0.0/24, `dyn-out` 10.4.0.0/24. h3
//!    gets 10.2/24 and loses 10.4/24; h2 gets 10.6/24 (h3 asked again)
//!    and loses 10.5/24; both sessions stayed up (`flaps` 0).

use std::net::IpAddr;
use std::time::Duration;

use tortie_tests::daemons::tortie::{TortieConfig, TortieDynamic, TortieRr};
use tortie_tests::daemons::{net, DaemonConfig, Kind, Neighbor};
use tortie_tests::interop_enabled;
use tortie_tests::netns::Topology;

const AS: u32 = 64512;
const WAIT: Duration = Duration::from_secs(20);

/// tortie-rr's file with `in` and `out` as given.
fn config(h1: std::net::Ipv4Addr, h2: IpAddr, h3: IpAddr, inn: &str, out: &str) -> TortieConfig {
    let mut c = TortieConfig::new(h1, AS)
        .peer(h2, AS, |p| {
            p.client = true;
            p.filters = vec!["in".into()];
        })
        .peer(h3, AS, |p| {
            p.client = true;
            p.filters = vec!["out".into()];
        });
    c.cluster_id = Some(h1);
    c.filters = vec![format!("{{name: in{inn}}}"), format!("{{name: out{out}}}")];
    c
}

fn reject(list: &str, cidr: &str) -> String {
    format!(", {list}: [{{action: Reject, matchOperator: Equal, cidr: {cidr}}}]")
}

#[test]
fn rr_filters_and_a_reload_that_keeps_the_sessions() {
    if !interop_enabled("rr_filters_and_a_reload_that_keeps_the_sessions") {
        return;
    }
    let topo = Topology::new(3).unwrap();
    let (h1, h2, h3) = (&topo.hosts[0], &topo.hosts[1], &topo.hosts[2]);
    let (a2, a3) = (IpAddr::from(h2.v4), IpAddr::from(h3.v4));
    let mut rr = TortieRr::start(
        &h1.ns,
        config(
            h1.v4,
            a2,
            a3,
            &reject("importV4", "10.3.0.0/24"),
            &reject("exportV4", "10.2.0.0/24"),
        ),
    )
    .unwrap();
    let src = Kind::Bird
        .start(
            h2,
            DaemonConfig::new(h2, AS)
                .peer_both(h1, AS, |n| n)
                .originate(&["10.2.0.0/24", "10.3.0.0/24", "10.4.0.0/24"]),
        )
        .unwrap();
    let sink = Kind::Bird
        .start(h3, DaemonConfig::new(h3, AS).peer_both(h1, AS, |n| n))
        .unwrap();
    for (peer, d, me) in [(a2, &src, h1.v4), (a3, &sink, h1.v4)] {
        rr.wait_established(peer, WAIT).unwrap();
        d.wait_established(me.into(), WAIT).unwrap();
    }
    let any = |_: &tortie_tests::daemons::Route| Ok(());
    // 1.
    sink.wait_route(net("10.4.0.0/24"), WAIT, &any).unwrap();
    tortie_tests::wait_until(WAIT, "3 received, 2 accepted from h2", || {
        let r = rr
            .peer_counter(a2, "prefixesReceived")
            .map_err(|e| e.to_string())?;
        let a = rr
            .peer_counter(a2, "prefixesAccepted")
            .map_err(|e| e.to_string())?;
        if (r, a) == (3, 2) {
            Ok(())
        } else {
            Err(format!("received {r}, accepted {a}"))
        }
    })
    .unwrap();
    for p in ["10.2.0.0/24", "10.3.0.0/24"] {
        sink.wait_no_route(net(p), WAIT).unwrap();
    }
    // 2.
    rr.reload(config(
        h1.v4,
        a2,
        a3,
        &reject("importV4", "10.4.0.0/24"),
        "",
    ))
    .unwrap();
    for p in ["10.2.0.0/24", "10.3.0.0/24"] {
        sink.wait_route(net(p), WAIT, &any).unwrap();
    }
    sink.wait_no_route(net("10.4.0.0/24"), WAIT).unwrap();
    for peer in [a2, a3] {
        let p = rr.peer_status(peer).unwrap();
        assert_eq!(p["state"], "Established", "{p}");
        assert_eq!(p["flaps"], 0, "the session to {peer} went down: {p}");
    }
}

/// tortie-rr's file for the dynamic range: h2 static, the range with
/// `dyn-in` and `dyn-out` as given.
fn dynamic_config(h1: std::net::Ipv4Addr, h2: IpAddr, inn: &str, out: &str) -> TortieConfig {
    let mut c = TortieConfig::new(h1, AS).peer(h2, AS, |p| p.client = true);
    c.cluster_id = Some(h1);
    c.dynamic_peers = vec![TortieDynamic {
        prefix: net("172.30.0.0/24"),
        asn: AS,
        client: Some(true),
        filters: vec!["dyn-in".into(), "dyn-out".into()],
    }];
    c.filters = vec![
        format!("{{name: dyn-in{inn}}}"),
        format!("{{name: dyn-out{out}}}"),
    ];
    c
}

#[test]
fn rr_dynamic_range_filters_and_a_reload_that_keeps_the_sessions() {
    if !interop_enabled("rr_dynamic_range_filters_and_a_reload_that_keeps_the_sessions") {
        return;
    }
    let topo = Topology::new(3).unwrap();
    let (h1, h2, h3) = (&topo.hosts[0], &topo.hosts[1], &topo.hosts[2]);
    let (a2, a3) = (IpAddr::from(h2.v4), IpAddr::from(h3.v4));
    let mut rr = TortieRr::start(
        &h1.ns,
        dynamic_config(
            h1.v4,
            a2,
            &reject("importV4", "10.6.0.0/24"),
            &reject("exportV4", "10.2.0.0/24"),
        ),
    )
    .unwrap();
    let to_rr = Neighbor::new(h1.v4, AS);
    let fixed = Kind::Bird
        .start(
            h2,
            DaemonConfig::new(h2, AS)
                .neighbor(to_rr.clone())
                .originate(&["10.2.0.0/24", "10.3.0.0/24", "10.4.0.0/24"]),
        )
        .unwrap();
    let ranged = Kind::Bird
        .start(
            h3,
            DaemonConfig::new(h3, AS)
                .neighbor(to_rr)
                .originate(&["10.5.0.0/24", "10.6.0.0/24"]),
        )
        .unwrap();
    for (peer, d) in [(a2, &fixed), (a3, &ranged)] {
        rr.wait_established(peer, WAIT).unwrap();
        d.wait_established(h1.v4.into(), WAIT).unwrap();
    }
    let any = |_: &tortie_tests::daemons::Route| Ok(());
    // 3.
    let p = rr.peer_status(a3).unwrap();
    assert_eq!(p["dynamic"], true, "{p}");
    for r in ["10.3.0.0/24", "10.4.0.0/24"] {
        ranged.wait_route(net(r), WAIT, &any).unwrap();
    }
    fixed.wait_route(net("10.5.0.0/24"), WAIT, &any).unwrap();
    tortie_tests::wait_until(WAIT, "2 received, 1 accepted from h3", || {
        let r = rr
            .peer_counter(a3, "prefixesReceived")
            .map_err(|e| e.to_string())?;
        let a = rr
            .peer_counter(a3, "prefixesAccepted")
            .map_err(|e| e.to_string())?;
        if (r, a) == (2, 1) {
            Ok(())
        } else {
            Err(format!("received {r}, accepted {a}"))
        }
    })
    .unwrap();
    ranged.wait_no_route(net("10.2.0.0/24"), WAIT).unwrap();
    fixed.wait_no_route(net("10.6.0.0/24"), WAIT).unwrap();
    // 4.
    rr.reload(dynamic_config(
        h1.v4,
        a2,
        &reject("importV4", "10.5.0.0/24"),
        &reject("exportV4", "10.4.0.0/24"),
    ))
    .unwrap();
    ranged.wait_route(net("10.2.0.0/24"), WAIT, &any).unwrap();
    ranged.wait_no_route(net("10.4.0.0/24"), WAIT).unwrap();
    fixed.wait_route(net("10.6.0.0/24"), WAIT, &any).unwrap();
    fixed.wait_no_route(net("10.5.0.0/24"), WAIT).unwrap();
    for peer in [a2, a3] {
        let p = rr.peer_status(peer).unwrap();
        assert_eq!(p["state"], "Established", "{p}");
        assert_eq!(p["flaps"], 0, "the session to {peer} went down: {p}");
    }
}
