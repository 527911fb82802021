use super::*;

fn peer(name: &str) -> Key {
    Key::new(Kind::BGPPeer, name)
}

fn problem(field: &str, message: &str) -> ObjectProblem {
    ObjectProblem {
        field: field.into(),
        message: message.into(),
    }
}

fn objects(entries: &[(Key, Vec<ObjectProblem>)]) -> ByObject {
    entries.iter().cloned().collect()
}

#[test]
fn nothing_to_write_without_problems_or_when_written() {
    assert_eq!(patches(&ByObject::new(), &ByObject::new()), vec![]);
    let both = objects(&[(peer("tor"), vec![problem("spec.peerIP", "bad")])]);
    assert_eq!(patches(&both, &both), vec![], "already written: no write");
    // An object listed with no problems is no write either.
    let empty = objects(&[(peer("ok"), vec![])]);
    assert_eq!(patches(&ByObject::new(), &empty), vec![]);
}

#[test]
fn problems_that_appear_are_set() {
    let wanted = objects(&[
        (peer("tor"), vec![problem("spec.ttlSecurity", "refused")]),
        (
            Key::new(Kind::IPPool, "p"),
            vec![problem("spec.cidr", "overlaps")],
        ),
    ]);
    let got = patches(&ByObject::new(), &wanted);
    assert_eq!(
        got,
        vec![
            Patch::Set(peer("tor"), vec![problem("spec.ttlSecurity", "refused")]),
            Patch::Set(
                Key::new(Kind::IPPool, "p"),
                vec![problem("spec.cidr", "overlaps")]
            ),
        ]
    );
}

#[test]
fn problems_that_change_are_set_whole_and_only_those() {
    let written = objects(&[
        (peer("a"), vec![problem("spec.peerIP", "bad")]),
        (peer("b"), vec![problem("spec.asNumber", "missing")]),
    ]);
    let wanted = objects(&[
        (
            peer("a"),
            vec![
                problem("spec.peerIP", "bad"),
                problem("spec.password", "no secret"),
            ],
        ),
        (peer("b"), vec![problem("spec.asNumber", "missing")]),
    ]);
    assert_eq!(
        patches(&written, &wanted),
        vec![Patch::Set(
            peer("a"),
            vec![
                problem("spec.peerIP", "bad"),
                problem("spec.password", "no secret")
            ]
        )]
    );
}

#[test]
fn problems_that_disappear_are_cleared() {
    let written = objects(&[
        (peer("a"), vec![problem("spec.peerIP", "bad")]),
        (peer("b"), vec![problem("spec.asNumber", "missing")]),
        (peer("c"), vec![problem("", "left over by an earlier run")]),
    ]);
    let wanted = objects(&[
        (peer("a"), vec![]),
        (peer("b"), vec![problem("spec.asNumber", "missing")]),
    ]);
    assert_eq!(
        patches(&written, &wanted),
        vec![Patch::Clear(peer("a")), Patch::Clear(peer("c"))]
    );
}

#[test]
fn problems_by_object_only_for_the_kinds_with_a_status() {
    let problems = vec![
        Problem::new("BGPPeer/tor", "spec.password", "cannot read the secret"),
        Problem::new("BGPPeer/tor", "spec.peerIP", "multicast"),
        Problem::new("BGPConfiguration/default", "spec.serviceClusterIPs", "bad"),
        Problem::new("Node/n2", "spec.bgp.ipv4Address", "taken"),
        Problem::new("datastore", "", "not a resource"),
    ];
    let mut rejected = BTreeMap::new();
    rejected.insert(
        Kind::BGPPeer,
        vec![Rejected {
            name: "gtsm".into(),
            error: "kubernetes:BGPPeer/gtsm: corrupt: spec.ttlSecurity: 1: not supported: GTSM is not implemented".into(),
        }],
    );
    rejected.insert(
        Kind::Block,
        vec![Rejected {
            name: "b".into(),
            error: "corrupt".into(),
        }],
    );
    let got = by_object(&problems, &rejected);
    let keys: Vec<&Key> = got.keys().collect();
    let mut want = [
        Key::new(Kind::BGPConfiguration, "default"),
        peer("gtsm"),
        peer("tor"),
    ];
    want.sort();
    assert_eq!(keys, want.iter().collect::<Vec<_>>());
    assert_eq!(
        got[&peer("tor")],
        vec![
            problem("spec.password", "cannot read the secret"),
            problem("spec.peerIP", "multicast")
        ]
    );
    let gtsm = &got[&peer("gtsm")];
    assert_eq!(gtsm.len(), 1);
    assert_eq!(gtsm[0].field, "spec.ttlSecurity");
    assert!(
        gtsm[0].message.starts_with("1: not supported: GTSM")
            && gtsm[0].message.ends_with("(the others apply)"),
        "{gtsm:?}"
    );
}

#[test]
fn a_left_out_record_without_a_field_keeps_its_whole_error() {
    let p = left_out("etcd:/tortie/x: corrupt: not valid JSON at line 1");
    assert_eq!(p.field, "");
    assert!(p.message.starts_with("not valid JSON at line 1"), "{p:?}");
}
