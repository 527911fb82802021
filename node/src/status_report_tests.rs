//! The status reporter: the pure parts (what is written, when), then the
//! task against a real file datastore.

use std::net::IpAddr;

use bgp_speaker::SessionState as Speaker;
use felix::desired::{DesiredState, LearnedRoute, LocalNode, PeerNode, Pool};
use tortie_config::resources::{LearnedFrom, RouteSourceType, RouteStatus, RouteType};
use tortie_datastore::FileStore;

use super::*;
use crate::metrics::Metrics;
use crate::status::{LearnedPath, PeerView};

fn peer(address: &str, kind: &str, state: Speaker, since_unix: u64) -> PeerView {
    PeerView {
        address: address.parse().unwrap(),
        kind: kind.into(),
        source: "mesh".into(),
        node: None,
        asn: 64512,
        rr_client: false,
        state,
        since_unix,
        uptime_secs: 0,
        prefixes_received: 0,
        prefixes_accepted: 0,
        prefixes_advertised: 0,
        hold_time: None,
        last_error: None,
        bfd: None,
    }
}

fn node_status(peers: Vec<PeerView>) -> NodeStatus {
    NodeStatus {
        node: "n1".into(),
        phase: Phase::Running,
        router_id: Some("192.168.1.11".parse().unwrap()),
        peers,
        ..NodeStatus::default()
    }
}

#[test]
fn report_has_every_peer_with_calicos_words() {
    let s = node_status(vec![
        peer(
            "192.168.1.12",
            "node-to-node mesh",
            Speaker::Established,
            1_796_240_451,
        ),
        peer("192.168.9.1", "global", Speaker::Active, 0),
        peer("fd00::9", "node specific", Speaker::OpenSent, 1_796_240_000),
    ]);
    let r = report(&s, 1_796_000_000);
    assert_eq!(
        (r.bgp.established_v4, r.bgp.not_established_v4),
        (1, 1),
        "{r:?}"
    );
    assert_eq!(
        (r.bgp.established_v6, r.bgp.not_established_v6),
        (0, 1),
        "{r:?}"
    );
    let mesh = &r.bgp.peers_v4[0];
    assert_eq!(mesh.peer_ip, "192.168.1.12".parse::<IpAddr>().unwrap());
    assert_eq!(
        (mesh.kind, mesh.state, mesh.since.as_deref()),
        (
            Some(PeerType::NodeMesh),
            Some(SessionState::Established),
            Some("2026-12-02T19:40:51Z")
        )
    );
    let global = &r.bgp.peers_v4[1];
    assert_eq!(
        (global.kind, global.state, global.since.as_deref()),
        (Some(PeerType::GlobalPeer), Some(SessionState::Active), None)
    );
    assert_eq!(r.bgp.peers_v6[0].kind, Some(PeerType::NodePeer));
    assert_eq!(r.agent.bird_v4.state, Some(DaemonState::Ready));
    assert_eq!(r.agent.bird_v4.router_id.as_deref(), Some("192.168.1.11"));
    assert_eq!(r.agent.bird_v4, r.agent.bird_v6);
    assert_eq!(r.last_updated, None);

    let starting = NodeStatus {
        phase: Phase::StartingBgp,
        ..s
    };
    assert_eq!(
        report(&starting, 0).agent.bird_v4.state,
        Some(DaemonState::NotReady)
    );
}

#[test]
fn only_the_classes_asked_for_are_written() {
    let mut r = report(
        &node_status(vec![peer("10.0.0.2", "global", Speaker::Idle, 0)]),
        0,
    );
    assert_eq!(r.routes, Default::default(), "routes are made apart");
    r.routes.routes_v4.push(route("10.244.1.0/26"));
    let mut spec = CalicoNodeStatusSpec::for_node("n1");
    spec.classes = vec![NodeStatusClass::BGP, NodeStatusClass::Routes];
    let w = stamped(&spec, &r);
    assert_eq!(w.agent, Default::default());
    assert_eq!(w.bgp, r.bgp);
    assert_eq!(w.routes, r.routes);
    assert!(w.last_updated_unix().is_some_and(|t| t > 1_700_000_000));
    // The node's own object: no routes.
    let own = stamped(&CalicoNodeStatusSpec::for_node("n1"), &r);
    assert_eq!((&own.agent, &own.bgp), (&r.agent, &r.bgp));
    assert_eq!(own.routes, Default::default());
}

fn route(destination: &str) -> RouteStatus {
    RouteStatus {
        kind: Some(RouteType::FIB),
        destination: Some(destination.into()),
        gateway: Some("192.168.1.12".into()),
        interface: Some("eth0".into()),
        learned_from: Some(LearnedFrom {
            source_type: Some(RouteSourceType::NodeMesh),
            peer_ip: Some("192.168.1.12".parse().unwrap()),
        }),
    }
}

/// Routes change with every UPDATE: a change of them alone waits for
/// the object's next refresh; a session change does not.
#[test]
fn a_change_of_routes_alone_does_not_hasten_a_write() {
    let now = Instant::now();
    let ago = now - Duration::from_secs(10);
    let base = report(
        &node_status(vec![peer("10.0.0.2", "global", Speaker::Idle, 0)]),
        0,
    );
    let mut spec = CalicoNodeStatusSpec::for_node("n1");
    spec.classes.push(NodeStatusClass::Routes);
    let mut written = base.clone();
    written.routes.routes_v4.push(route("10.244.1.0/26"));
    let target = Target::new(spec, false, Some((written, ago)));

    let mut more_routes = base.clone();
    more_routes.routes.routes_v4.push(route("10.244.2.0/26"));
    let refresh = ago + Duration::from_secs(DEFAULT_REFRESH_SECONDS.into());
    assert_eq!(target.due(&more_routes, now), Some(refresh));
    assert_eq!(target.due(&base, now), Some(refresh));

    let session_up = report(
        &node_status(vec![peer(
            "10.0.0.2",
            "global",
            Speaker::Established,
            1_796_240_451,
        )]),
        0,
    );
    assert_eq!(target.due(&session_up, now), Some(now));
}

#[test]
fn when_a_write_is_due() {
    let now = Instant::now();
    let ago = |s: u64| now - Duration::from_secs(s);
    let secs = |s: u64| Duration::from_secs(s);
    // Never written: now, unless 0.
    assert_eq!(due(None, None, now), Some(now));
    assert_eq!(due(Some(5), None, now), Some(now));
    assert_eq!(due(Some(0), None, now), None);
    // Unset period: a change soon (rate-limited), else the heartbeat.
    assert_eq!(due(None, Some((false, ago(10))), now), Some(now));
    assert_eq!(due(None, Some((false, now)), now), Some(now + MIN_GAP));
    assert_eq!(
        due(None, Some((true, ago(10))), now),
        Some(ago(10) + secs(DEFAULT_REFRESH_SECONDS.into()))
    );
    // A period: every period, changed or not (Calico's way); 0: never.
    assert_eq!(
        due(Some(5), Some((false, ago(1))), now),
        Some(ago(1) + secs(5))
    );
    assert_eq!(
        due(Some(5), Some((true, ago(1))), now),
        Some(ago(1) + secs(5))
    );
    assert_eq!(due(Some(0), Some((false, ago(100))), now), None);
}

/// Waits until `check` holds for the object `name`, or fails.
async fn wait_for(
    store: &AnyStore,
    name: &str,
    what: &str,
    check: impl Fn(&CalicoNodeStatusSpec) -> bool,
) -> CalicoNodeStatusSpec {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let got = store
            .get_typed::<CalicoNodeStatusSpec>(name)
            .await
            .unwrap()
            .map(|(o, _)| o.spec);
        if let Some(spec) = got.filter(|s| check(s)) {
            return spec;
        }
        assert!(Instant::now() < deadline, "{what}: not within 10 s");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn established(spec: &CalicoNodeStatusSpec) -> u32 {
    spec.status.as_ref().map_or(0, |s| s.bgp.established_v4)
}

/// Against a real file datastore: the node's own object is created and
/// follows session changes; a user's object that names the node is
/// filled with its classes; one with period 0 is left alone; another
/// node's is not touched.
#[tokio::test]
async fn fills_its_own_object_and_those_that_name_it() {
    let dir = tempfile::tempdir().unwrap();
    let store = AnyStore::File(FileStore::open(dir.path()).unwrap());
    let user = |name: &str, node: &str, period: Option<u32>| {
        let mut spec = CalicoNodeStatusSpec::for_node(node);
        spec.classes = vec![NodeStatusClass::BGP];
        spec.update_period_seconds = period;
        Resource::CalicoNodeStatus(Object::new(name, spec))
    };
    store.create(user("debug-n1", "n1", Some(1))).await.unwrap();
    store.create(user("quiet-n1", "n1", Some(0))).await.unwrap();
    store.create(user("debug-n2", "n2", Some(1))).await.unwrap();

    let (tx, rx) = watch::channel(Arc::new(node_status(vec![peer(
        "192.168.1.12",
        "node-to-node mesh",
        Speaker::Active,
        0,
    )])));
    let (_mtx, mrx) = watch::channel(Arc::new(NodeStatus::default()));
    let (_btx, brx) = watch::channel(Arc::new(bgp_speaker::Status::default()));
    let metrics = Metrics::new(mrx, brx);
    let reporter = spawn(
        ReporterConfig {
            node: "n1".into(),
            store: store.clone(),
            writes: metrics.status_writes(),
            started_unix: 1_796_000_000,
        },
        rx,
    );

    let own = wait_for(&store, "n1", "own object created", |s| s.status.is_some()).await;
    assert_eq!(own.node, "n1");
    assert_eq!(own.update_period_seconds, None);
    let status = own.status.unwrap();
    assert_eq!(status.bgp.not_established_v4, 1);
    assert_eq!(
        status.agent.bird_v4.last_boot_time.as_deref(),
        Some("2026-11-30T00:53:20Z")
    );

    // A session comes up: written at once (after the rate limit).
    tx.send_replace(Arc::new(node_status(vec![peer(
        "192.168.1.12",
        "node-to-node mesh",
        Speaker::Established,
        1_796_240_451,
    )])));
    wait_for(&store, "n1", "own object follows the session", |s| {
        established(s) == 1
    })
    .await;
    let debug = wait_for(&store, "debug-n1", "user object filled", |s| {
        established(s) == 1
    })
    .await;
    let debug_status = debug.status.unwrap();
    assert_eq!(
        debug_status.agent,
        Default::default(),
        "class Agent not asked"
    );
    // The period of 1 s is kept: lastUpdated moves on.
    let first = debug_status.last_updated_unix().unwrap();
    wait_for(&store, "debug-n1", "refreshed every second", |s| {
        s.status
            .as_ref()
            .and_then(NodeStatusReport::last_updated_unix)
            .is_some_and(|t| t > first)
    })
    .await;

    let quiet = store
        .get_typed::<CalicoNodeStatusSpec>("quiet-n1")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(quiet.0.spec.status, None, "period 0: never written");
    let other = store
        .get_typed::<CalicoNodeStatusSpec>("debug-n2")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(other.0.spec.status, None, "another node's object");

    // Deleted: the node makes its own again.
    store
        .delete(
            &tortie_config::resources::Key::new(Kind::CalicoNodeStatus, "n1"),
            None,
        )
        .await
        .unwrap();
    wait_for(&store, "n1", "own object made again", |s| {
        s.status.is_some()
    })
    .await;
    let text = metrics.render();
    assert!(
        text.contains("tortie_node_status_writes_total{result=\"failed\"} 0"),
        "{text}"
    );
    reporter.abort();
}

/// Against a real file datastore: an object that asks for `Routes` gets
/// them, made from the agent's best paths and felix's desired state, and
/// read back as written; the node's own object (Agent, BGP) gets none.
#[tokio::test]
async fn routes_go_to_the_objects_that_ask_for_them() {
    let dir = tempfile::tempdir().unwrap();
    let store = AnyStore::File(FileStore::open(dir.path()).unwrap());
    let mut spec = CalicoNodeStatusSpec::for_node("n1");
    spec.classes = vec![NodeStatusClass::Routes];
    store
        .create(Resource::CalicoNodeStatus(Object::new("routes-n1", spec)))
        .await
        .unwrap();

    let node2: IpAddr = "192.168.1.12".parse().unwrap();
    let block2: ipnet::IpNet = "10.244.1.0/26".parse().unwrap();
    let mut status = node_status(vec![peer(
        "192.168.1.12",
        "node-to-node mesh",
        Speaker::Established,
        1_796_240_451,
    )]);
    status.address = Some("192.168.1.11/24".parse().unwrap());
    status.interface = "eth0".into();
    status.best_paths = Arc::new(BTreeMap::from([(
        block2,
        LearnedPath {
            next_hop: node2,
            peer: node2,
        },
    )]));
    status.desired = Some(Arc::new(DesiredState {
        local_node: LocalNode {
            name: "n1".into(),
            addresses: vec!["192.168.1.11/24".parse().unwrap()],
            underlay: "eth0".into(),
            vteps: vec![],
        },
        nodes: vec![PeerNode {
            name: "n2".into(),
            addresses: vec![node2],
            vteps: vec![],
        }],
        blocks: vec!["10.244.0.0/26".parse().unwrap()],
        learned: vec![LearnedRoute {
            prefix: block2,
            next_hop: node2,
        }],
        pools: vec![Pool {
            cidr: "10.244.0.0/16".parse().unwrap(),
            ipip: tortie_ipip::EncapMode::Never,
            vxlan: tortie_ipip::EncapMode::Never,
            nat_outgoing: false,
        }],
        ..DesiredState::default()
    }));
    let (_tx, rx) = watch::channel(Arc::new(status));
    let (_mtx, mrx) = watch::channel(Arc::new(NodeStatus::default()));
    let (_btx, brx) = watch::channel(Arc::new(bgp_speaker::Status::default()));
    let metrics = Metrics::new(mrx, brx);
    let reporter = spawn(
        ReporterConfig {
            node: "n1".into(),
            store: store.clone(),
            writes: metrics.status_writes(),
            started_unix: 1_796_000_000,
        },
        rx,
    );

    let asked = wait_for(&store, "routes-n1", "routes written", |s| {
        s.status.is_some()
    })
    .await
    .status
    .unwrap();
    assert_eq!(asked.agent, Default::default(), "class Agent not asked");
    assert_eq!(asked.bgp, Default::default(), "class BGP not asked");
    let rows: Vec<String> = asked
        .routes
        .routes_v4
        .iter()
        .map(|r| serde_json::to_string(r).unwrap())
        .collect();
    assert_eq!(
        rows,
        [
            r#"{"type":"FIB","destination":"10.244.0.0/26","gateway":"N/A","interface":"blackhole","learnedFrom":{"sourceType":"Static"}}"#,
            r#"{"type":"FIB","destination":"10.244.1.0/26","gateway":"192.168.1.12","interface":"eth0","learnedFrom":{"sourceType":"NodeMesh","peerIP":"192.168.1.12"}}"#,
            r#"{"type":"FIB","destination":"192.168.1.0/24","gateway":"N/A","interface":"eth0","learnedFrom":{"sourceType":"Direct"}}"#,
        ]
    );
    assert_eq!(
        (asked.routes.truncated_v4, asked.routes.routes_v6.len()),
        (0, 0)
    );

    let own = wait_for(&store, "n1", "own object", |s| s.status.is_some())
        .await
        .status
        .unwrap();
    assert_eq!(own.bgp.established_v4, 1);
    assert_eq!(own.routes, Default::default(), "class Routes not asked");
    reporter.abort();
}
