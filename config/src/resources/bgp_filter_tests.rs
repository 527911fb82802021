use super::*;
use crate::filter::FilterAction::{Accept, Reject};
use crate::resources::{load_documents, Resource};

fn load(spec: &str) -> Result<BGPFilterSpec, String> {
    let text = format!(
        "apiVersion: projectcalico.org/v3\nkind: BGPFilter\nmetadata:\n  name: edge\nspec:\n{spec}"
    );
    let loaded = load_documents(&text).map_err(|e| e.to_string())?;
    match loaded.resources.into_iter().next() {
        Some(Resource::BGPFilter(f)) => Ok(f.spec),
        other => Err(format!("not a BGPFilter: {other:?}")),
    }
}

fn net(s: &str) -> IpNet {
    s.parse().unwrap()
}

#[test]
fn calicos_sample_loads_and_compiles_in_order() {
    // Calico's documented sample (docs.tigera.io, BGPFilter).
    let spec = load(
        "  exportV4:
    - action: Accept
      matchOperator: In
      cidr: 77.0.0.0/16
      source: RemotePeers
    - action: Reject
      interface: '*.calico'
  importV4:
    - action: Accept
      matchOperator: In
      cidr: 55.0.0.0/16
      prefixLength:
        min: 30
    - action: Reject
      matchOperator: NotIn
      cidr: 44.0.0.0/16
  exportV6:
    - action: Reject
      source: RemotePeers
  importV6:
    - action: Accept
      matchOperator: Equal
      cidr: 5000::0/64
    - action: Reject
",
    )
    .unwrap();
    let export = spec.export_rules();
    assert_eq!(export.v4.len(), 2);
    assert!(export.v4[0].from_peers);
    // Learned from a peer inside 77/16: accepted; our own: no rule.
    assert_eq!(export.verdict(&net("77.0.1.0/24"), true), Some(Accept));
    assert_eq!(export.verdict(&net("77.0.1.0/24"), false), None);
    assert_eq!(export.verdict(&net("2001:db8::/64"), true), Some(Reject));
    let import = spec.import_rules();
    assert_eq!(import.verdict(&net("55.0.0.4/30"), true), Some(Accept));
    // Shorter than /30: not the first rule's; outside 44/16: the second's.
    assert_eq!(import.verdict(&net("55.0.0.0/24"), true), Some(Reject));
    assert_eq!(
        import.verdict(&net("10.0.0.0/8"), true),
        Some(Reject),
        "not in 44/16"
    );
    assert_eq!(import.verdict(&net("44.0.1.0/24"), true), None);
    assert_eq!(import.verdict(&net("5000::/64"), true), Some(Accept));
    assert_eq!(import.verdict(&net("5001::/64"), true), Some(Reject));
    assert_eq!(
        spec.interface_rules(),
        vec![(
            "spec.exportV4[1].interface".to_string(),
            "*.calico".to_string()
        )]
    );
}

#[test]
fn bad_rules_are_refused_naming_filter_list_and_index() {
    // (spec, the error's field, words of the message)
    let rows: &[(&str, &str, &str)] = &[
        (
            "  exportV4:\n    - {action: Accept}\n    - {action: Reject, matchOperator: In, cidr: 10.0.0.0/33}\n",
            "spec.exportV4[1].cidr",
            "BGPFilter/edge exportV4 rule 1: not a CIDR",
        ),
        (
            "  importV4:\n    - {action: Reject, matchOperator: In, cidr: 10.0.0.1/8}\n",
            "spec.importV4[0].cidr",
            "host bits set: write 10.0.0.0/8",
        ),
        (
            "  importV6:\n    - {action: Reject, matchOperator: In, cidr: 10.0.0.0/8}\n",
            "spec.importV6[0].cidr",
            "put this rule in importV4",
        ),
        (
            "  exportV4:\n    - {action: Drop}\n",
            "spec.exportV4[0].action",
            "BGPFilter/edge exportV4 rule 0: unknown variant `Drop`",
        ),
        (
            "  exportV6:\n    - {action: Accept}\n    - {action: Accept, matchOperator: Within, cidr: 'fd00::/8'}\n",
            "spec.exportV6[1].matchOperator",
            "BGPFilter/edge exportV6 rule 1: unknown variant `Within`",
        ),
        (
            "  exportV4:\n    - {action: Accept, cidr: 10.0.0.0/8}\n",
            "spec.exportV4[0].matchOperator",
            "needs a matchOperator",
        ),
        (
            "  exportV4:\n    - {action: Accept, matchOperator: In}\n",
            "spec.exportV4[0].cidr",
            "needs a cidr",
        ),
        (
            "  exportV4:\n    - {action: Accept, prefixLength: {min: 24}}\n",
            "spec.exportV4[0].prefixLength",
            "needs a cidr",
        ),
        (
            "  exportV4:\n    - {action: Accept, matchOperator: Equal, cidr: 10.0.0.0/8, prefixLength: {max: 24}}\n",
            "spec.exportV4[0].prefixLength",
            "goes with In or NotIn",
        ),
        (
            "  exportV4:\n    - {action: Accept, matchOperator: In, cidr: 10.0.0.0/16, prefixLength: {max: 8}}\n",
            "spec.exportV4[0].prefixLength",
            "would match nothing",
        ),
        (
            "  importV4:\n    - {action: Accept, matchOperator: In, cidr: 10.0.0.0/16, prefixLength: {min: 33}}\n",
            "spec.importV4[0].prefixLength.min",
            "0..=32",
        ),
        (
            "  importV4:\n    - {action: Accept, source: Locals}\n",
            "spec.importV4[0].source",
            "unknown variant `Locals`",
        ),
        (
            "  importV4:\n    - {action: Accept, interface: 'eth0 eth1'}\n",
            "spec.importV4[0].interface",
            "interface name or glob",
        ),
        (
            "  importV4:\n    - {action: Accept, peerType: eBGP}\n",
            "spec.importV4[0]",
            "unknown field `peerType`",
        ),
    ];
    for (spec, field, words) in rows {
        let text = format!(
            "apiVersion: projectcalico.org/v3\nkind: BGPFilter\nmetadata:\n  name: edge\nspec:\n{spec}"
        );
        let e = load_documents(&text).expect_err(spec);
        assert!(
            e.field().is_some_and(|f| f.starts_with(field)),
            "{spec}: field {:?}, want {field}: {e}",
            e.field()
        );
        assert!(e.to_string().contains(words), "{spec}: {e}");
    }
}

#[test]
fn stored_form_round_trips() {
    let spec = load(
        "  exportV4:\n    - {action: Reject, matchOperator: NotIn, cidr: 10.0.0.0/8, prefixLength: {min: 16, max: 24}}\n",
    )
    .unwrap();
    let resource = Resource::BGPFilter(crate::resources::Object::new("edge", spec.clone()));
    let value = resource.to_value();
    assert_eq!(value["apiVersion"], "tortie.io/v1");
    let (back, warnings) = Resource::from_value(value.clone()).unwrap();
    assert_eq!(back, resource);
    assert!(warnings.is_empty());
    let (fast, _) =
        Resource::from_json(crate::resources::Kind::BGPFilter, &value.to_string()).unwrap();
    assert_eq!(fast, resource);
    assert_eq!(
        spec.export_rules().v4[0]
            .prefix
            .as_ref()
            .unwrap()
            .to_string(),
        "NotIn 10.0.0.0/8{16,24}"
    );
}
