//! `CalicoNodeStatus`: Calico's document loads and reads back, bad
//! fields are named, counts and periods.

use super::super::{load_documents, Kind, Resource};
use super::*;

/// A document in Calico's form, status filled as calico/node fills it
/// (BIRD's times, every class).
const CALICO: &str = r#"apiVersion: projectcalico.org/v3
kind: CalicoNodeStatus
metadata:
  name: debug-node-0
spec:
  classes:
    - Agent
    - BGP
    - Routes
  node: node-0
  updatePeriodSeconds: 10
status:
  agent:
    birdV4:
      lastBootTime: "2021-10-18 10:30:43"
      routerID: 172.17.0.2
      state: Ready
      version: BIRD 1.6
    birdV6: {}
  bgp:
    numberEstablishedV4: 1
    numberEstablishedV6: 0
    numberNotEstablishedV4: 1
    numberNotEstablishedV6: 0
    peersV4:
      - peerIP: 172.17.0.5
        since: "09:19:28"
        state: Established
        type: NodeMesh
      - peerIP: 172.17.0.6
        since: "09:19:28"
        state: Active
        type: GlobalPeer
  lastUpdated: "2021-10-18T13:00:25Z"
  routes:
    routesV4:
      - destination: 192.168.0.0/26
        gateway: 172.17.0.5
        interface: eth0
        learnedFrom:
          peerIP: 172.17.0.5
          sourceType: NodeMesh
        type: FIB
"#;

fn load(text: &str) -> Result<Resource, ConfigError> {
    load_documents(text).map(|l| l.resources.into_iter().next().expect("one"))
}

#[test]
fn calico_document_loads_with_its_status() {
    let r = load(CALICO).expect("loads");
    assert_eq!(r.kind(), Kind::CalicoNodeStatus);
    let o = r
        .clone()
        .into_typed::<CalicoNodeStatusSpec>()
        .expect("typed");
    assert_eq!(o.spec.node, "node-0");
    assert_eq!(o.spec.update_period_seconds, Some(10));
    assert!(o.spec.wants(NodeStatusClass::Routes));
    let status = o.spec.status.as_ref().expect("status");
    assert_eq!(status.last_updated_unix(), Some(1_634_562_025));
    assert_eq!(status.bgp.established_v4, 1);
    assert_eq!(status.bgp.peers_v4[1].kind, Some(PeerType::GlobalPeer));
    assert_eq!(status.bgp.peers_v4[1].state, Some(SessionState::Active));
    assert_eq!(status.agent.bird_v4.state, Some(DaemonState::Ready));
    assert_eq!(
        status.routes.routes_v4[0]
            .learned_from
            .as_ref()
            .unwrap()
            .source_type,
        Some(RouteSourceType::NodeMesh)
    );
    // Written back as tortie.io/v1 with status at the top level, and
    // read back unchanged (also through the JSON path the stores use).
    let value = r.to_value();
    assert_eq!(value["status"]["bgp"]["peersV4"][0]["peerIP"], "172.17.0.5");
    assert!(value["spec"].get("status").is_none(), "{value}");
    let (again, warnings) = Resource::from_value(value.clone()).expect("reads back");
    assert_eq!(again, r);
    assert!(warnings.is_empty());
    let (json, _) = Resource::from_json(Kind::CalicoNodeStatus, &value.to_string()).expect("json");
    assert_eq!(json, r);
}

#[test]
fn without_status_and_without_period() {
    let r = load(
        "apiVersion: projectcalico.org/v3\nkind: CalicoNodeStatus\nmetadata: {name: n1}\n\
         spec: {node: n1, classes: [BGP]}\n",
    )
    .expect("loads");
    let o = r.clone().into_typed::<CalicoNodeStatusSpec>().unwrap();
    assert_eq!(o.spec.update_period_seconds, None);
    assert_eq!(o.spec.status, None);
    assert!(r.to_value().get("status").is_none());
}

#[test]
fn bad_documents_name_the_field() {
    let doc = |spec: &str, status: &str| {
        format!(
            "apiVersion: projectcalico.org/v3\nkind: CalicoNodeStatus\nmetadata: {{name: s}}\n\
             spec: {spec}\n{status}"
        )
    };
    let cases = [
        (doc("{classes: [BGP]}", ""), "spec.node", "missing"),
        (doc("{node: n1}", ""), "spec.classes", "at least one of"),
        (
            doc("{node: N_1, classes: [BGP]}", ""),
            "spec.node",
            "lowercase",
        ),
        (
            doc("{node: n1, classes: [BGP, Bgp]}", ""),
            "spec.classes[1]",
            "unknown variant",
        ),
        (
            doc("{node: n1, classes: [BGP, BGP]}", ""),
            "spec.classes[1]",
            "listed twice",
        ),
        (
            doc("{node: n1, classes: [BGP], updatePeriodSeconds: 86401}", ""),
            "spec.updatePeriodSeconds",
            "one day",
        ),
        (
            doc("{node: n1, classes: [BGP], updatePeriodSeconds: -1}", ""),
            "spec.updatePeriodSeconds",
            "",
        ),
        (
            doc("{node: n1, classes: [BGP], status: {}}", ""),
            "spec.status",
            "top-level",
        ),
        (
            doc(
                "{node: n1, classes: [BGP]}",
                "status: {lastUpdated: yesterday}\n",
            ),
            "status.lastUpdated",
            "RFC 3339",
        ),
        (
            doc(
                "{node: n1, classes: [BGP]}",
                "status: {bgp: {peersV4: [{peerIP: 10.0.0.1, state: Up}]}}\n",
            ),
            "status.bgp.peersV4[0].state",
            "unknown variant",
        ),
        (
            doc(
                "{node: n1, classes: [BGP]}",
                "status: {bgp: {peersV4: [{peerIP: not-an-ip}]}}\n",
            ),
            "status.bgp.peersV4[0].peerIP",
            "",
        ),
        (
            doc("{node: n1, classes: [BGP]}", "status: {colour: red}\n"),
            "status.colour",
            "unknown field",
        ),
    ];
    for (text, field, message) in cases {
        let e = load(&text).expect_err(&text);
        assert_eq!(e.field(), Some(field), "{text}\n{e}");
        assert!(e.to_string().contains(message), "{text}\n{e}");
    }
}

#[test]
fn refresh_and_staleness_follow_the_period() {
    let mut spec = CalicoNodeStatusSpec::for_node("n1");
    assert_eq!(
        (spec.refresh_seconds(), spec.stale_after_seconds()),
        (Some(DEFAULT_REFRESH_SECONDS), Some(90))
    );
    spec.update_period_seconds = Some(2);
    assert_eq!(
        (spec.refresh_seconds(), spec.stale_after_seconds()),
        (Some(2), Some(6))
    );
    spec.update_period_seconds = Some(0);
    assert_eq!(
        (spec.refresh_seconds(), spec.stale_after_seconds()),
        (None, None)
    );
}

#[test]
fn counts_peers_by_family_and_state() {
    let peer = |ip: &str, state| PeerStatus {
        peer_ip: ip.parse().unwrap(),
        kind: Some(PeerType::NodeMesh),
        state: Some(state),
        since: None,
    };
    let s = BgpStatus::of(vec![
        peer("10.0.0.2", SessionState::Established),
        peer("fd00::2", SessionState::Active),
        peer("10.0.0.3", SessionState::Connect),
        peer("fd00::3", SessionState::Established),
    ]);
    assert_eq!(
        (
            s.established_v4,
            s.not_established_v4,
            s.established_v6,
            s.not_established_v6
        ),
        (1, 1, 1, 1)
    );
    assert_eq!(s.peers_v4.len(), 2);
    assert_eq!(s.peers_v6[1].peer_ip.to_string(), "fd00::3");
}

#[test]
fn truncation_counts_read_back_and_are_absent_when_zero() {
    let text = CALICO.replace(
        "  routes:\n    routesV4:",
        "  routes:\n    truncatedV4: 3120\n    routesV4:",
    );
    let r = load(&text).expect("loads");
    let o = r.clone().into_typed::<CalicoNodeStatusSpec>().unwrap();
    let routes = &o.spec.status.as_ref().unwrap().routes;
    assert_eq!((routes.truncated_v4, routes.truncated_v6), (3120, 0));
    let value = r.to_value();
    assert_eq!(value["status"]["routes"]["truncatedV4"], 3120);
    assert!(value["status"]["routes"].get("truncatedV6").is_none());
    assert_eq!(Resource::from_value(value).expect("reads back").0, r);
    // Calico's own document has none.
    let calico = load(CALICO).unwrap().to_value();
    assert!(calico["status"]["routes"].get("truncatedV4").is_none());
}
