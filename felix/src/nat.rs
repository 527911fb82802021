//! NAT outgoing: masquerade traffic from `natOutgoing` pools to destinations
//! outside all pools, in nftables tables of our own.
//!
//! What we keep in place (one table per family that has a `natOutgoing`
//! pool; `ip6` alike with `ip6 saddr`/`ip6 daddr`):
//!
//! ```text
//! table ip tortie {
//!   set nat-pools { type ipv4_addr; flags interval; elements = { <natOutgoing pools> } }
//!   set all-pools { type ipv4_addr; flags interval; elements = { <all pools> } }
//!   chain postrouting { type nat hook postrouting priority srcnat; policy accept;
//!     ip saddr @nat-pools ip daddr != @all-pools masquerade
//!   }
//! }
//! ```
//!
//! - Reconciled like routes: list our tables (`nft -j list tables`, then
//!   `nft -j list table ip tortie`), compare with the wanted content (handles
//!   and element order ignored), and only when they differ send **one** batch
//!   that replaces our tables atomically: `add table; delete table; add
//!   table, sets, chain, rule` (`add` first so `delete` cannot fail on a missing
//!   table; nft 1.0.6 has no `destroy`). A table no longer wanted is deleted.
//!   Nothing else is ever flushed or edited: other tables are only listed by
//!   name.
//! - Through the `nftables` crate (JSON documents for `nft -j -f -`): interval
//!   (CIDR) sets, one kernel transaction per batch, nft's own semantics; a
//!   rejected batch leaves the old table as it was (nft applies a batch
//!   atomically).
//! - Namespaces: `nft` is run from a dedicated std thread that has
//!   `setns(2)`'d into the namespace; the child process inherits it.

use std::path::{Path, PathBuf};

use ipnet::IpNet;
use nftables::batch::Batch;
use nftables::expr::{Expression, NamedExpression, Payload, PayloadField, Prefix};
use nftables::helper::{self, NftablesError};
use nftables::schema::{Chain, NfListObject, Rule, Set, SetFlag, SetType, SetTypeValue, Table};
use nftables::stmt::{Match, Operator, Statement};
use nftables::types::{NfChainPolicy, NfChainType, NfFamily, NfHook};
use serde::Serialize;
use serde_json::Value;

use crate::desired::Pool;

/// Name of our table (in family `ip` and `ip6`).
pub const NAT_TABLE: &str = "tortie";
/// The chain in our table.
pub const NAT_CHAIN: &str = "postrouting";
/// Set of `natOutgoing` pool CIDRs.
pub const SET_NAT: &str = "nat-pools";
/// Set of all pool CIDRs.
pub const SET_ALL: &str = "all-pools";
/// Priority `srcnat`.
pub const SRCNAT_PRIO: i32 = 100;

/// The wanted NAT rules of one family.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FamilyRules {
    /// CIDRs of `natOutgoing` pools (none contained in another).
    pub nat: Vec<IpNet>,
    /// CIDRs of all pools of the family (none contained in another).
    pub all: Vec<IpNet>,
}

/// The wanted NAT rules: a table per family, or none.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct NatRules {
    /// `table ip tortie`, if any IPv4 pool has `natOutgoing`.
    pub v4: Option<FamilyRules>,
    /// `table ip6 tortie`, if any IPv6 pool has `natOutgoing`.
    pub v6: Option<FamilyRules>,
}

/// What one [`reconcile`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct NatReport {
    /// `nft -f` batches sent: 0 when our tables were already right, else 1.
    pub writes: u64,
    /// What the batch changed (`replace ip tortie`, `delete ip6 tortie`).
    pub changes: Vec<String>,
}

/// Why NAT could not be reconciled.
#[derive(Debug, thiserror::Error)]
pub enum NatError {
    /// The namespace could not be entered.
    #[error("cannot enter network namespace {path}: {source}")]
    Netns {
        /// The namespace path.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// `nft` failed (not installed, or it rejected the batch: the old tables
    /// stay as they were).
    #[error("nft {what} failed: {source}{}", stderr_suffix(.source))]
    Nft {
        /// What we asked (`list tables`, `list table ip tortie`, `-f` batch).
        what: String,
        /// The cause.
        source: NftablesError,
    },
    /// `nft` printed something that is not JSON.
    #[error("nft {what} printed invalid JSON: {source}")]
    Json {
        /// What we asked.
        what: String,
        /// The cause.
        source: serde_json::Error,
    },
    /// The worker thread died.
    #[error("nft worker thread panicked")]
    Thread,
}

/// Pure: the NAT rules `pools` need.
pub fn rules(pools: &[Pool]) -> NatRules {
    let family = |v4: bool| {
        let of: Vec<&Pool> = pools
            .iter()
            .filter(|p| p.cidr.addr().is_ipv4() == v4)
            .collect();
        let nat = cover(of.iter().filter(|p| p.nat_outgoing).map(|p| p.cidr));
        if nat.is_empty() {
            return None;
        }
        let all = cover(of.iter().map(|p| p.cidr));
        Some(FamilyRules { nat, all })
    };
    NatRules {
        v4: family(true),
        v6: family(false),
    }
}

/// Pure: the objects of our table for one family (what `nft -j list table`
/// shows, without handles), table first.
pub fn table_objects(v4: bool, r: &FamilyRules) -> Vec<NfListObject<'static>> {
    let (family, set_type, proto) = if v4 {
        (NfFamily::IP, SetType::Ipv4Addr, "ip")
    } else {
        (NfFamily::IP6, SetType::Ipv6Addr, "ip6")
    };
    let set = |name: &'static str, cidrs: &[IpNet]| {
        NfListObject::Set(Box::new(Set {
            family,
            table: NAT_TABLE.into(),
            name: name.into(),
            handle: None,
            set_type: SetTypeValue::Single(set_type),
            policy: None,
            flags: Some([SetFlag::Interval].into_iter().collect()),
            elem: Some(cidrs.iter().map(element).collect::<Vec<_>>().into()),
            timeout: None,
            gc_interval: None,
            size: None,
            comment: None,
        }))
    };
    let field = |f: &'static str| {
        Expression::Named(NamedExpression::Payload(Payload::PayloadField(
            PayloadField {
                protocol: proto.into(),
                field: f.into(),
            },
        )))
    };
    let matches = |f: &'static str, op: Operator, set: &'static str| {
        Statement::Match(Match {
            left: field(f),
            right: Expression::String(format!("@{set}").into()),
            op,
        })
    };
    vec![
        NfListObject::Table(Table {
            family,
            name: NAT_TABLE.into(),
            handle: None,
        }),
        set(SET_NAT, &r.nat),
        set(SET_ALL, &r.all),
        NfListObject::Chain(Chain {
            family,
            table: NAT_TABLE.into(),
            name: NAT_CHAIN.into(),
            newname: None,
            handle: None,
            _type: Some(NfChainType::NAT),
            hook: Some(NfHook::Postrouting),
            prio: Some(SRCNAT_PRIO),
            dev: None,
            policy: Some(NfChainPolicy::Accept),
        }),
        NfListObject::Rule(Rule {
            family,
            table: NAT_TABLE.into(),
            chain: NAT_CHAIN.into(),
            expr: vec![
                matches("saddr", Operator::EQ, SET_NAT),
                matches("daddr", Operator::NEQ, SET_ALL),
                Statement::Masquerade(None),
            ]
            .into(),
            handle: None,
            index: None,
            comment: None,
        }),
    ]
}

/// Pure: a comparable form of a table listing: one string per object, keys
/// sorted, handles and `metainfo` dropped, set elements sorted; sorted.
pub fn canonical(objects: &[Value]) -> Vec<String> {
    let mut out: Vec<String> = objects
        .iter()
        .filter(|o| o.get("metainfo").is_none())
        .map(|o| {
            let mut o = o.clone();
            strip(&mut o);
            to_sorted_string(&o)
        })
        .collect();
    out.sort();
    out
}

/// Reconciles our tables in `netns` (`None` = the caller's) with `pools`.
/// Blocking (runs `nft`): call from `spawn_blocking` or a std thread.
pub fn reconcile(netns: Option<&Path>, pools: &[Pool]) -> Result<NatReport, NatError> {
    let want = rules(pools);
    let ns = netns.map(Path::to_path_buf);
    std::thread::spawn(move || {
        crate::netns::enter(ns.as_deref()).map_err(|e| NatError::Netns {
            path: e.path,
            source: e.source,
        })?;
        reconcile_here(&want)
    })
    .join()
    .map_err(|_| NatError::Thread)?
}

// ===== helpers =====

/// [`reconcile`] in the current thread's namespace.
fn reconcile_here(want: &NatRules) -> Result<NatReport, NatError> {
    let tables = match list(&["list", "tables"]) {
        Ok(t) => t,
        // No nft binary and nothing to masquerade: no table of ours can
        // exist (we make them with nft), so there is nothing to do.
        Err(NatError::Nft {
            source: NftablesError::NftExecution { inner, .. },
            ..
        }) if inner.kind() == std::io::ErrorKind::NotFound && want == &NatRules::default() => {
            return Ok(NatReport::default())
        }
        Err(e) => return Err(e),
    };
    let mut report = NatReport::default();
    let mut batch = Batch::new();
    for (v4, family, rules) in [(true, "ip", &want.v4), (false, "ip6", &want.v6)] {
        let present = tables.iter().any(|t| {
            t.pointer("/table/family").and_then(Value::as_str) == Some(family)
                && t.pointer("/table/name").and_then(Value::as_str) == Some(NAT_TABLE)
        });
        let table = || {
            NfListObject::Table(Table {
                family: if v4 { NfFamily::IP } else { NfFamily::IP6 },
                name: NAT_TABLE.into(),
                handle: None,
            })
        };
        match rules {
            None if present => {
                batch.delete(table());
                report.changes.push(format!("delete {family} {NAT_TABLE}"));
            }
            None => {}
            Some(r) => {
                let objects = table_objects(v4, r);
                if present {
                    let have = list(&["list", "table", family, NAT_TABLE])?;
                    let wanted: Vec<Value> = objects
                        .iter()
                        .map(|o| serde_json::to_value(o).unwrap_or(Value::Null))
                        .collect();
                    if canonical(&have) == canonical(&wanted) {
                        continue;
                    }
                    // add + delete: the batch works whether or not it exists.
                    batch.add(table());
                    batch.delete(table());
                }
                for o in objects {
                    batch.add(o);
                }
                report.changes.push(format!("replace {family} {NAT_TABLE}"));
            }
        }
    }
    if report.changes.is_empty() {
        return Ok(report);
    }
    let doc = batch.to_nftables();
    report.writes += 1;
    helper::apply_ruleset(&doc).map_err(|source| NatError::Nft {
        what: format!("-f batch ({})", report.changes.join(", ")),
        source,
    })?;
    Ok(report)
}

/// `nft -j ARGS`, the objects of its `nftables` array.
fn list(args: &[&str]) -> Result<Vec<Value>, NatError> {
    let what = args.join(" ");
    let raw = helper::get_current_ruleset_raw(helper::DEFAULT_NFT, args.iter().copied()).map_err(
        |source| NatError::Nft {
            what: what.clone(),
            source,
        },
    )?;
    let v: Value = serde_json::from_str(&raw).map_err(|source| NatError::Json { what, source })?;
    Ok(v.get("nftables")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default())
}

/// Sorted, containment-free CIDRs (nft rejects overlapping interval
/// elements; a contained CIDR adds nothing).
fn cover(cidrs: impl Iterator<Item = IpNet>) -> Vec<IpNet> {
    let mut all: Vec<IpNet> = cidrs.map(|c| c.trunc()).collect();
    all.sort_by_key(|c| (c.prefix_len(), c.addr()));
    let mut out: Vec<IpNet> = Vec::new();
    for c in all {
        if !out.iter().any(|o| o.contains(&c)) {
            out.push(c);
        }
    }
    out.sort_by_key(|c| (c.addr(), c.prefix_len()));
    out
}

/// A set element as nft lists it: a bare address for a host prefix, else a
/// prefix expression.
fn element(c: &IpNet) -> Expression<'static> {
    let addr = Expression::String(c.addr().to_string().into());
    if c.prefix_len() == c.max_prefix_len() {
        return addr;
    }
    Expression::Named(NamedExpression::Prefix(Prefix {
        addr: Box::new(addr),
        len: u32::from(c.prefix_len()),
    }))
}

/// Drops `handle` keys everywhere and sorts `elem` arrays.
fn strip(v: &mut Value) {
    match v {
        Value::Object(m) => {
            m.remove("handle");
            for (k, x) in m.iter_mut() {
                strip(x);
                if k == "elem" {
                    if let Value::Array(a) = x {
                        a.sort_by_key(to_sorted_string);
                    }
                }
            }
        }
        Value::Array(a) => a.iter_mut().for_each(strip),
        _ => {}
    }
}

fn to_sorted_string(v: &Value) -> String {
    match v {
        Value::Object(m) => {
            let mut keys: Vec<&String> = m.keys().collect();
            keys.sort();
            let parts: Vec<String> = keys
                .iter()
                .map(|k| format!("{:?}:{}", k, to_sorted_string(&m[*k])))
                .collect();
            format!("{{{}}}", parts.join(","))
        }
        Value::Array(a) => {
            let parts: Vec<String> = a.iter().map(to_sorted_string).collect();
            format!("[{}]", parts.join(","))
        }
        other => other.to_string(),
    }
}

fn stderr_suffix(e: &NftablesError) -> String {
    match e {
        NftablesError::NftFailed { stderr, .. } if !stderr.is_empty() => {
            format!(": {}", stderr.trim())
        }
        _ => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tortie_ipip::EncapMode;

    fn pool(cidr: &str, nat: bool) -> Pool {
        Pool {
            cidr: cidr.parse().unwrap(),
            ipip: EncapMode::Never,
            vxlan: EncapMode::Never,
            nat_outgoing: nat,
        }
    }

    #[test]
    fn rules_per_family_only_with_nat_pools() {
        let r = rules(&[
            pool("10.244.0.0/16", true),
            pool("10.96.0.0/12", false),
            pool("10.244.5.0/24", true),
            pool("fd00:244::/48", false),
        ]);
        let v4 = r.v4.unwrap();
        assert_eq!(v4.nat, vec!["10.244.0.0/16".parse::<IpNet>().unwrap()]);
        assert_eq!(v4.all.len(), 2, "{:?}", v4.all);
        assert_eq!(r.v6, None, "no IPv6 natOutgoing pool: no ip6 table");
        assert_eq!(rules(&[pool("10.244.0.0/16", false)]), NatRules::default());
    }

    #[test]
    fn canonical_matches_an_nft_listing() {
        // What `nft -j list table ip tortie` printed (nft 1.0.6), handles,
        // metainfo and element order included.
        let listing: Value = serde_json::from_str(
            r#"{"nftables":[{"metainfo":{"version":"1.0.6","json_schema_version":1}},
            {"table":{"family":"ip","name":"tortie","handle":1}},
            {"set":{"family":"ip","name":"nat-pools","table":"tortie","type":"ipv4_addr",
              "handle":2,"flags":["interval"],"elem":[{"prefix":{"addr":"10.244.0.0","len":16}}]}},
            {"set":{"family":"ip","name":"all-pools","table":"tortie","type":"ipv4_addr",
              "handle":3,"flags":["interval"],"elem":[{"prefix":{"addr":"10.96.0.0","len":12}},
              {"prefix":{"addr":"10.244.0.0","len":16}}]}},
            {"chain":{"family":"ip","table":"tortie","name":"postrouting","handle":1,
              "type":"nat","hook":"postrouting","prio":100,"policy":"accept"}},
            {"rule":{"family":"ip","table":"tortie","chain":"postrouting","handle":4,"expr":[
              {"match":{"op":"==","left":{"payload":{"protocol":"ip","field":"saddr"}},"right":"@nat-pools"}},
              {"match":{"op":"!=","left":{"payload":{"protocol":"ip","field":"daddr"}},"right":"@all-pools"}},
              {"masquerade":null}]}}]}"#,
        )
        .unwrap();
        let have = listing["nftables"].as_array().unwrap().clone();
        let r = rules(&[pool("10.244.0.0/16", true), pool("10.96.0.0/12", false)]);
        let want: Vec<Value> = table_objects(true, r.v4.as_ref().unwrap())
            .iter()
            .map(|o| serde_json::to_value(o).unwrap())
            .collect();
        assert_eq!(canonical(&have), canonical(&want));
        // A changed pool set differs.
        let r2 = rules(&[pool("10.244.0.0/16", true)]);
        let want2: Vec<Value> = table_objects(true, r2.v4.as_ref().unwrap())
            .iter()
            .map(|o| serde_json::to_value(o).unwrap())
            .collect();
        assert_ne!(canonical(&have), canonical(&want2));
    }

    #[test]
    fn host_prefix_element_is_a_bare_address() {
        let e = serde_json::to_value(element(&"10.1.2.3/32".parse().unwrap())).unwrap();
        assert_eq!(e, Value::String("10.1.2.3".into()));
        let e = serde_json::to_value(element(&"fd00::/64".parse().unwrap())).unwrap();
        assert_eq!(e["prefix"]["len"], 64);
    }
}
