//! `BGPFilter`, Calico's per-peer route filter (cluster-scoped): four
//! ordered rule lists, `exportV4`, `importV4`, `exportV6`, `importV6`. A
//! BGPPeer names the filters it uses (`filters`); for each route the
//! first matching rule of its filters, in order, accepts or rejects it,
//! and a route no rule matches gets the default (as Calico's BIRD
//! functions run, `config/src/filter.rs`).
//!
//! Checked here, each error naming the filter, the list and the rule's
//! index: the cidr (a prefix of the list's family, host bits clear), the
//! operator and action (serde refuses an unknown one), `cidr` and
//! `matchOperator` set together, `prefixLength` only with a cidr and `In`
//! / `NotIn`, within the family's lengths and leaving some length to
//! match, and `interface` as Calico allows it.

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

use super::Metadata;
use crate::error::ConfigError;
use crate::filter::{FilterAction, FilterRule, FilterRules, MatchOperator, PrefixMatch};

/// The four rule lists of a BGPFilter.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BGPFilterSpec {
    /// Rules for IPv4 routes sent to the peers that use the filter.
    #[serde(default, rename = "exportV4", skip_serializing_if = "Vec::is_empty")]
    pub export_v4: Vec<BGPFilterRule>,
    /// Rules for IPv4 routes received from them.
    #[serde(default, rename = "importV4", skip_serializing_if = "Vec::is_empty")]
    pub import_v4: Vec<BGPFilterRule>,
    /// Rules for IPv6 routes sent.
    #[serde(default, rename = "exportV6", skip_serializing_if = "Vec::is_empty")]
    pub export_v6: Vec<BGPFilterRule>,
    /// Rules for IPv6 routes received.
    #[serde(default, rename = "importV6", skip_serializing_if = "Vec::is_empty")]
    pub import_v6: Vec<BGPFilterRule>,
}

/// One rule: its tests (all must hold) and its action.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BGPFilterRule {
    /// The prefix compared with the route's (with `matchOperator`). Kept as
    /// written; checked by validation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cidr: Option<String>,
    /// `Equal`, `NotEqual`, `In`, `NotIn`; exactly when `cidr` is set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub match_operator: Option<MatchOperator>,
    /// The prefix lengths `In` / `NotIn` take (default: the cidr's up to
    /// the family's longest).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefix_length: Option<PrefixLength>,
    /// `RemotePeers`: only routes learned from BGP peers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<FilterSource>,
    /// Only routes with an outgoing interface matching this glob. No route
    /// the speaker handles has one: such a rule matches nothing (and
    /// tortie-node says so on the BGPPeers that use it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interface: Option<String>,
    /// `Accept` or `Reject`.
    pub action: FilterAction,
}

/// `prefixLength: {min, max}`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PrefixLength {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min: Option<u8>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max: Option<u8>,
}

/// `source`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum FilterSource {
    /// Routes learned from a BGP peer (not originated by the node).
    RemotePeers,
}

/// One of the four lists.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum List {
    ExportV4,
    ImportV4,
    ExportV6,
    ImportV6,
}

// ===== impl BGPFilterSpec =====

impl BGPFilterSpec {
    fn check(&mut self, metadata: &Metadata) -> Result<(), ConfigError> {
        for list in List::ALL {
            for (i, rule) in self.list(list).iter().enumerate() {
                rule.compile(list, i, &metadata.name)?;
            }
        }
        Ok(())
    }

    /// The import rules (`importV4`, `importV6`), compiled.
    pub fn import_rules(&self) -> FilterRules {
        FilterRules {
            v4: self.compiled(List::ImportV4),
            v6: self.compiled(List::ImportV6),
        }
    }

    /// The export rules (`exportV4`, `exportV6`), compiled.
    pub fn export_rules(&self) -> FilterRules {
        FilterRules {
            v4: self.compiled(List::ExportV4),
            v6: self.compiled(List::ExportV6),
        }
    }

    /// Each rule with an `interface`: (its field path, the glob).
    pub fn interface_rules(&self) -> Vec<(String, String)> {
        List::ALL
            .into_iter()
            .flat_map(|list| {
                self.list(list)
                    .iter()
                    .enumerate()
                    .filter_map(move |(i, r)| {
                        let glob = r.interface.clone()?;
                        Some((format!("spec.{}[{i}].interface", list.name()), glob))
                    })
            })
            .collect()
    }

    fn list(&self, list: List) -> &[BGPFilterRule] {
        match list {
            List::ExportV4 => &self.export_v4,
            List::ImportV4 => &self.import_v4,
            List::ExportV6 => &self.export_v6,
            List::ImportV6 => &self.import_v6,
        }
    }

    /// A validated list's rules (validation has refused any that does not
    /// compile).
    fn compiled(&self, list: List) -> Vec<FilterRule> {
        self.list(list)
            .iter()
            .enumerate()
            .filter_map(|(i, r)| r.compile(list, i, "").ok())
            .collect()
    }
}

super::spec_kind!(BGPFilterSpec, BGPFilter);

// ===== impl BGPFilterRule =====

impl BGPFilterRule {
    /// The rule as the speaker runs it, or the error naming `filter`, the
    /// list and the rule's index `i`.
    fn compile(&self, list: List, i: usize, filter: &str) -> Result<FilterRule, ConfigError> {
        let at = |field: &str| format!("spec.{}[{i}].{field}", list.name());
        let bad = |field: &str, value: &dyn std::fmt::Display, why: String| {
            ConfigError::invalid(
                at(field),
                value,
                format!("BGPFilter/{filter} {} rule {i}: {why}", list.name()),
            )
        };
        let prefix = match (&self.cidr, self.match_operator) {
            (None, None) => {
                if let Some(pl) = self.prefix_length {
                    return Err(bad(
                        "prefixLength",
                        &shown_length(&pl),
                        "prefixLength needs a cidr (and matchOperator In or NotIn)".into(),
                    ));
                }
                None
            }
            (Some(c), None) => {
                return Err(bad(
                    "matchOperator",
                    &"(missing)",
                    format!("cidr {c:?} needs a matchOperator: Equal, NotEqual, In or NotIn"),
                ))
            }
            (None, Some(op)) => {
                return Err(bad(
                    "cidr",
                    &"(missing)",
                    format!("matchOperator {op:?} needs a cidr to compare with"),
                ))
            }
            (Some(text), Some(op)) => Some(self.prefix_match(text, op, list, &bad)?),
        };
        if let Some(glob) = &self.interface {
            let ok = |c: char| c.is_ascii_alphanumeric() || "_.*-".contains(c);
            if glob.is_empty() || glob.len() > 15 || !glob.chars().all(ok) {
                return Err(bad(
                    "interface",
                    &format!("{glob:?}"),
                    "an interface name or glob: 1-15 of letters, digits, '_', '.', '*', '-'".into(),
                ));
            }
        }
        Ok(FilterRule {
            prefix,
            from_peers: self.source == Some(FilterSource::RemotePeers),
            interface: self.interface.clone(),
            action: self.action,
        })
    }

    fn prefix_match(
        &self,
        text: &str,
        op: MatchOperator,
        list: List,
        bad: &dyn Fn(&str, &dyn std::fmt::Display, String) -> ConfigError,
    ) -> Result<PrefixMatch, ConfigError> {
        let shown = format!("{text:?}");
        let cidr: IpNet = text.trim().parse().map_err(|_| {
            bad(
                "cidr",
                &shown,
                format!("not a CIDR (write e.g. {})", list.example()),
            )
        })?;
        if cidr.trunc() != cidr {
            return Err(bad(
                "cidr",
                &shown,
                format!("host bits set: write {}", cidr.trunc()),
            ));
        }
        if matches!(cidr, IpNet::V4(_)) != list.v4() {
            return Err(bad(
                "cidr",
                &shown,
                format!(
                    "{} is for IPv{} prefixes: put this rule in {}",
                    list.name(),
                    if list.v4() { 4 } else { 6 },
                    list.other_family().name()
                ),
            ));
        }
        let mut m = PrefixMatch::new(cidr, op);
        let Some(pl) = self.prefix_length else {
            return Ok(m);
        };
        if matches!(op, MatchOperator::Equal | MatchOperator::NotEqual) {
            return Err(bad(
                "prefixLength",
                &shown_length(&pl),
                format!("{op:?} compares the whole prefix: prefixLength goes with In or NotIn"),
            ));
        }
        let top = cidr.max_prefix_len();
        for (name, v) in [("min", pl.min), ("max", pl.max)] {
            if let Some(v) = v.filter(|v| *v > top) {
                return Err(bad(
                    &format!("prefixLength.{name}"),
                    &v,
                    format!(
                        "an IPv{} prefix length is 0..={top}",
                        if list.v4() { 4 } else { 6 }
                    ),
                ));
            }
        }
        m.min_len = m.min_len.max(pl.min.unwrap_or(0));
        m.max_len = m.max_len.min(pl.max.unwrap_or(top));
        if m.min_len > m.max_len {
            return Err(bad(
                "prefixLength",
                &shown_length(&pl),
                format!(
                    "no prefix inside {cidr} has a length from {} to {}: the rule would match nothing",
                    m.min_len, m.max_len
                ),
            ));
        }
        Ok(m)
    }
}

// ===== impl List =====

impl List {
    const ALL: [List; 4] = [
        List::ExportV4,
        List::ImportV4,
        List::ExportV6,
        List::ImportV6,
    ];

    fn name(self) -> &'static str {
        match self {
            List::ExportV4 => "exportV4",
            List::ImportV4 => "importV4",
            List::ExportV6 => "exportV6",
            List::ImportV6 => "importV6",
        }
    }

    fn v4(self) -> bool {
        matches!(self, List::ExportV4 | List::ImportV4)
    }

    fn example(self) -> &'static str {
        if self.v4() {
            "10.244.0.0/16"
        } else {
            "fd00:10:244::/48"
        }
    }

    fn other_family(self) -> List {
        match self {
            List::ExportV4 => List::ExportV6,
            List::ImportV4 => List::ImportV6,
            List::ExportV6 => List::ExportV4,
            List::ImportV6 => List::ImportV4,
        }
    }
}

// ===== helpers =====

fn shown_length(pl: &PrefixLength) -> String {
    let part = |v: Option<u8>| v.map_or("-".to_string(), |v| v.to_string());
    format!("{{min: {}, max: {}}}", part(pl.min), part(pl.max))
}

/// A BGPFilter's error that serde found (an unknown action or operator,
/// an unknown field), with the filter named as validation names it.
pub(crate) fn name_in_error(error: ConfigError, name: &str) -> ConfigError {
    match error {
        ConfigError::Schema { field, message } => ConfigError::Schema {
            message: format!("BGPFilter/{name}{}: {message}", rule_of(&field)),
            field,
        },
        other => other,
    }
}

/// ` exportV4 rule 2` for `spec.exportV4[2].action`, else nothing.
fn rule_of(field: &str) -> String {
    let Some(rest) = field.strip_prefix("spec.") else {
        return String::new();
    };
    let Some((list, rest)) = rest.split_once('[') else {
        return String::new();
    };
    match rest.split_once(']') {
        Some((i, _)) if i.parse::<usize>().is_ok() => format!(" {list} rule {i}"),
        _ => String::new(),
    }
}

#[cfg(test)]
#[path = "bgp_filter_tests.rs"]
mod tests;
