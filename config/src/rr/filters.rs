//! `filters` of the RR file: named rule lists in the shape of Calico's
//! BGPFilter spec (`exportV4`, `importV4`, `exportV6`, `importV6`), which
//! static `peers` and `dynamicPeers` ranges name in their `filters` (in
//! order: the first rule that matches a prefix, over the lists of all the
//! peer's filters, decides).
//! Each rule is checked as a BGPFilter's is, the error naming
//! `filters[i]` (and the filter's name), the list and the rule's index.
//! A rule with `interface` is refused: a reflector holds announcements,
//! not kernel routes with an interface, so it would match nothing.

use std::collections::HashMap;

use serde::Deserialize;

use crate::error::ConfigError;
use crate::filter::FilterRules;
use crate::resources::{BGPFilterRule, BGPFilterSpec, Metadata, Spec};

/// One entry of `filters`, as written.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(super) struct RawFilter {
    pub name: String,
    #[serde(default, rename = "exportV4")]
    pub export_v4: Vec<BGPFilterRule>,
    #[serde(default, rename = "importV4")]
    pub import_v4: Vec<BGPFilterRule>,
    #[serde(default, rename = "exportV6")]
    pub export_v6: Vec<BGPFilterRule>,
    #[serde(default, rename = "importV6")]
    pub import_v6: Vec<BGPFilterRule>,
}

/// A checked filter's rules: (import, export).
pub(super) type Compiled = HashMap<String, (FilterRules, FilterRules)>;

/// Checks every filter; their rules by name.
pub(super) fn filters(raw: Vec<RawFilter>) -> Result<Compiled, ConfigError> {
    let mut out = Compiled::new();
    let mut first: HashMap<String, usize> = HashMap::new();
    for (i, f) in raw.into_iter().enumerate() {
        let path = format!("filters[{i}]");
        if f.name.is_empty() {
            return Err(ConfigError::invalid(
                format!("{path}.name"),
                "\"\"",
                "a filter needs a name (peers refer to it by it)",
            ));
        }
        if let Some(j) = first.insert(f.name.clone(), i) {
            return Err(ConfigError::invalid(
                format!("{path}.name"),
                format!("{:?}", f.name),
                format!("already the name of filters[{j}]; names must be unique"),
            ));
        }
        let mut spec = BGPFilterSpec {
            export_v4: f.export_v4,
            import_v4: f.import_v4,
            export_v6: f.export_v6,
            import_v6: f.import_v6,
        };
        let metadata = Metadata {
            name: f.name.clone(),
            ..Metadata::default()
        };
        spec.validate(&metadata).map_err(|e| at(&path, e))?;
        if let Some((field, glob)) = spec.interface_rules().into_iter().next() {
            return Err(ConfigError::invalid(
                at_field(&path, &field),
                format!("{glob:?}"),
                format!(
                    "filter {:?}: an interface rule matches nothing in a route reflector \
                     (it holds announcements, not kernel routes); remove it",
                    f.name
                ),
            ));
        }
        out.insert(f.name, (spec.import_rules(), spec.export_rules()));
    }
    Ok(out)
}

/// The rules of the filters a peer (or dynamic range) at `path` names, in
/// order.
pub(super) fn of_peer(
    path: &str,
    names: &[String],
    filters: &Compiled,
) -> Result<(FilterRules, FilterRules), ConfigError> {
    let mut import = FilterRules::default();
    let mut export = FilterRules::default();
    for (j, name) in names.iter().enumerate() {
        let Some((i, e)) = filters.get(name) else {
            let mut known: Vec<&str> = filters.keys().map(String::as_str).collect();
            known.sort_unstable();
            return Err(ConfigError::invalid(
                format!("{path}.filters[{j}]"),
                format!("{name:?}"),
                format!("no filter of that name in filters (there are: {known:?})"),
            ));
        };
        import.extend(i.clone());
        export.extend(e.clone());
    }
    Ok((import, export))
}

/// A BGPFilter error (`spec.<list>[k].<field>`) moved to `path`.
fn at(path: &str, e: ConfigError) -> ConfigError {
    match e {
        ConfigError::Invalid {
            field,
            value,
            allowed,
        } => ConfigError::Invalid {
            field: at_field(path, &field),
            value,
            allowed,
        },
        other => other,
    }
}

fn at_field(path: &str, field: &str) -> String {
    format!("{path}.{}", field.strip_prefix("spec.").unwrap_or(field))
}

#[cfg(test)]
mod tests {
    use crate::filter::FilterAction;
    use crate::rr::RrConfig;

    const HEAD: &str = "routerId: 172.30.0.1\nasNumber: 64512\n";

    fn load(body: &str) -> Result<RrConfig, String> {
        RrConfig::from_yaml(&format!("{HEAD}{body}")).map_err(|e| e.to_string())
    }

    #[test]
    fn a_peer_runs_the_rules_of_its_filters_in_order() {
        let c = load(
            "filters:
  - name: a
    importV4: [{action: Reject, matchOperator: In, cidr: 10.0.0.0/8}]
  - name: b
    importV4: [{action: Accept}]
    exportV6: [{action: Reject, matchOperator: Equal, cidr: 'fd00::/64'}]
peers:
  - {address: 172.30.0.2, asNumber: 64512, filters: [a, b]}
  - {address: 172.30.0.3, asNumber: 64512}
",
        )
        .unwrap();
        let p = &c.peers[0];
        assert_eq!(p.import_filter.v4.len(), 2);
        assert_eq!(p.import_filter.v4[0].action, FilterAction::Reject);
        assert_eq!(p.import_filter.v4[1].action, FilterAction::Accept);
        assert_eq!(p.export_filter.v6.len(), 1);
        assert!(p.export_filter.v4.is_empty());
        let v = |s: &str| s.parse().unwrap();
        assert_eq!(
            p.import_filter.verdict(&v("10.1.0.0/16"), true),
            Some(FilterAction::Reject)
        );
        assert!(c.peers[1].import_filter.is_empty() && c.peers[1].export_filter.is_empty());
    }

    #[test]
    fn a_dynamic_range_runs_the_rules_of_its_filters_on_every_peer() {
        let c = load(
            "filters:
  - name: a
    importV4: [{action: Reject, matchOperator: In, cidr: 10.0.0.0/8}]
  - name: b
    exportV4: [{action: Reject, matchOperator: Equal, cidr: 10.2.0.0/24}]
dynamicPeers:
  - {prefix: 172.31.0.0/16, asNumber: 64512, filters: [b, a]}
  - {prefix: 172.32.0.0/16, asNumber: 64512}
",
        )
        .unwrap();
        let d = &c.dynamic_peers[0];
        assert_eq!(d.import_filter.v4.len(), 1);
        assert_eq!(d.export_filter.v4.len(), 1);
        let p = d.peer("172.31.7.9".parse().unwrap());
        assert!(p.passive);
        assert_eq!(p.import_filter, d.import_filter);
        assert_eq!(
            p.export_filter
                .verdict(&"10.2.0.0/24".parse().unwrap(), true),
            Some(FilterAction::Reject)
        );
        let other = &c.dynamic_peers[1];
        assert!(other.import_filter.is_empty() && other.export_filter.is_empty());
    }

    #[test]
    fn a_dynamic_range_cannot_name_an_interface_rule() {
        // An interface rule is refused at the filter, whoever names it.
        let err = load(
            "filters:
  - name: a
    exportV4: [{action: Reject, interface: 'eth*'}]
dynamicPeers:
  - {prefix: 172.31.0.0/16, asNumber: 64512, filters: [a]}
",
        )
        .unwrap_err();
        assert!(
            err.starts_with("filters[0].exportV4[0].interface: "),
            "{err}"
        );
    }

    #[test]
    fn bad_filters_are_refused_naming_the_rule() {
        let rows = [
            (
                "filters:\n  - name: edge\n    importV4:\n      - {action: Accept}\n      - {action: Reject, matchOperator: In, cidr: 10.0.0.1/8}\n",
                "filters[1].importV4[1].cidr",
            ),
            (
                "filters:\n  - name: edge\n    exportV4: [{action: Drop}]\n",
                "filters[0].exportV4[0].action",
            ),
            (
                "filters:\n  - name: edge\n    exportV6: [{action: Reject, matchOperator: In, cidr: 10.0.0.0/8}]\n",
                "filters[0].exportV6[0].cidr",
            ),
            (
                "filters:\n  - name: edge\n    importV4: [{action: Reject, interface: 'eth*'}]\n",
                "filters[0].importV4[0].interface",
            ),
            (
                "filters:\n  - {name: edge}\n  - {name: edge}\n",
                "filters[1].name",
            ),
            (
                "filters:\n  - {name: edge}\npeers:\n  - {address: 172.30.0.2, asNumber: 64512, filters: [edge, egde]}\n",
                "peers[0].filters[1]",
            ),
            (
                "filters:\n  - {name: edge}\ndynamicPeers:\n  - {prefix: 172.31.0.0/16, asNumber: 64512}\n  - {prefix: 172.32.0.0/16, asNumber: 64512, filters: [edge, egde]}\n",
                "dynamicPeers[1].filters[1]",
            ),
            (
                "dynamicPeers:\n  - {prefix: 172.31.0.0/16, asNumber: 64512, filters: [edge]}\n",
                "dynamicPeers[0].filters[0]",
            ),
        ];
        for (i, (body, field)) in rows.into_iter().enumerate() {
            // The first row's filter is the second: shift it.
            let body = if i == 0 {
                body.replace("filters:\n", "filters:\n  - {name: first}\n")
            } else {
                body.to_string()
            };
            let err = load(&body).unwrap_err();
            assert!(err.contains(field), "row {i}: {err}");
        }
        let err = load("filters:\n  - name: edge\n    importV4: [{action: Reject, matchOperator: In, cidr: 10.0.0.1/8}]\n").unwrap_err();
        assert!(
            err.starts_with(
                "filters[0].importV4[0].cidr: \"10.0.0.1/8\": BGPFilter/edge importV4 rule 0: "
            ),
            "{err}"
        );
    }
}
