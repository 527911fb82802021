//! `tortiectl get | apply -f | delete`: resources in the datastore, with
//! calicoctl's verbs.
//!
//! The user kinds (BGPConfiguration, BGPPeer, BGPFilter, IPPool) of the file backend
//! live in its `resources.yaml`: `apply` and `delete` edit that file (one
//! document replaced, added or removed, the rest of the text kept; written
//! to a temporary file and renamed over), and the datastore ingests it as
//! usual. Everything else goes through the datastore, each write a
//! compare-and-swap retried on conflict.

use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context, Result};
use serde_json::Value;
use tortie_config::node::DatastoreSetting;
use tortie_config::resources::{load_documents, Key, Kind, Resource};
use tortie_datastore::{AnyStore, Datastore, StoreConfig};

use crate::{table, yaml_out};

/// How `get` prints.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Output {
    /// A table of the main fields.
    Table,
    /// The objects as YAML documents (what `apply -f` reads).
    Yaml,
    /// The objects as a JSON list.
    Json,
}

/// Attempts of one compare-and-swap write.
const ATTEMPTS: usize = 20;

/// Opens the datastore a setting names.
pub async fn open(setting: &DatastoreSetting) -> Result<AnyStore> {
    AnyStore::open(&StoreConfig::from(setting))
        .await
        .map_err(|e| anyhow!("datastore: {e}"))
}

/// Parses a kind as users type it: `node`, `nodes`, `bgppeer`,
/// `BGPPeers`, `ippool`, `wep`, `caliconodestatuses`, ...
pub fn parse_kind(text: &str) -> Result<Kind> {
    let t = text.to_ascii_lowercase();
    if matches!(t.as_str(), "caliconodestatus" | "caliconodestatuses") {
        return Ok(Kind::CalicoNodeStatus);
    }
    let t = t.strip_suffix('s').unwrap_or(&t);
    Ok(match t {
        "node" => Kind::Node,
        "bgppeer" => Kind::BGPPeer,
        "bgpfilter" => Kind::BGPFilter,
        "ippool" | "pool" => Kind::IPPool,
        "bgpconfiguration" | "bgpconfig" => Kind::BGPConfiguration,
        "workloadendpoint" | "wep" => Kind::WorkloadEndpoint,
        "block" => Kind::Block,
        "blockaffinitie" | "blockaffinity" => Kind::BlockAffinity,
        "handle" => Kind::Handle,
        _ => bail!(
            "{text:?} is not a resource kind: use node, bgppeer, bgpfilter, ippool, \
             bgpconfiguration, workloadendpoint, block, blockaffinity, handle or caliconodestatus"
        ),
    })
}

/// `get KIND [NAME]`.
pub async fn get(
    store: &AnyStore,
    kind: Kind,
    name: Option<&str>,
    output: Output,
) -> Result<String> {
    let items: Vec<Resource> = match name {
        Some(n) => match store.get(&Key::new(kind, n)).await? {
            Some(v) => vec![v.resource],
            None => bail!("{kind}/{n} not found"),
        },
        None => store
            .list(kind)
            .await?
            .items
            .into_iter()
            .map(|v| v.resource)
            .collect(),
    };
    Ok(match output {
        Output::Json => {
            let values: Vec<Value> = items.iter().map(Resource::to_value).collect();
            serde_json::to_string_pretty(&values)? + "\n"
        }
        Output::Yaml => items
            .iter()
            .map(|r| yaml_out::to_string(&r.to_value()))
            .collect::<Vec<_>>()
            .join("---\n"),
        Output::Table => {
            let (header, row) = columns(kind);
            let rows: Vec<Vec<String>> = items.iter().map(|r| row(&r.to_value())).collect();
            table::render(&header, &rows)
        }
    })
}

/// `apply -f FILE`: creates or replaces every resource of the file.
/// Returns one line per resource.
pub async fn apply(
    store: &AnyStore,
    setting: &DatastoreSetting,
    text: &str,
) -> Result<Vec<String>> {
    let loaded = load_documents(text).map_err(|e| anyhow!("{e}"))?;
    let mut done = Vec::new();
    for resource in loaded.resources {
        let key = resource.key();
        if let (true, DatastoreSetting::File(dir)) = (key.kind.is_user_kind(), setting) {
            edit_user_file(dir, &key, Some(&resource))?;
            // Ingest now, so that errors show here.
            store
                .list(key.kind)
                .await
                .with_context(|| format!("{key}: written to the file, but"))?;
            done.push(format!("{key}: applied (in {})", user_file(dir).display()));
            continue;
        }
        upsert(store, resource).await?;
        done.push(format!("{key}: applied"));
    }
    Ok(done)
}

/// `delete KIND NAME`.
pub async fn delete(store: &AnyStore, setting: &DatastoreSetting, key: &Key) -> Result<String> {
    if let (true, DatastoreSetting::File(dir)) = (key.kind.is_user_kind(), setting) {
        if !edit_user_file(dir, key, None)? {
            bail!("{key} not found in {}", user_file(dir).display());
        }
        store.list(key.kind).await?;
        return Ok(format!(
            "{key}: deleted (from {})",
            user_file(dir).display()
        ));
    }
    match store.delete(key, None).await {
        Ok(_) => Ok(format!("{key}: deleted")),
        Err(e) => Err(anyhow!("{e}")),
    }
}

/// Create, or replace at the revision read (retried on conflict). A
/// `CalicoNodeStatus` applied without a status keeps the one its node
/// wrote (as with Kubernetes, where the status is a subresource).
async fn upsert(store: &AnyStore, resource: Resource) -> Result<()> {
    let key = resource.key();
    for _ in 0..ATTEMPTS {
        let result = match store.get(&key).await? {
            None => store.create(resource.clone()).await.map(|_| ()),
            Some(v) => {
                let mut new = resource.clone();
                if let (Resource::CalicoNodeStatus(n), Resource::CalicoNodeStatus(old)) =
                    (&mut new, v.resource)
                {
                    if n.spec.status.is_none() {
                        n.spec.status = old.spec.status;
                    }
                }
                store.update(new, v.revision).await.map(|_| ())
            }
        };
        match result {
            Ok(()) => return Ok(()),
            Err(e) if e.is_conflict() => continue,
            Err(e) => return Err(anyhow!("{e}")),
        }
    }
    bail!("{key}: still conflicting after {ATTEMPTS} attempts")
}

fn user_file(dir: &Path) -> PathBuf {
    dir.join("resources.yaml")
}

/// Replaces (or adds, or with `None` removes) the document of `key` in the
/// file backend's `resources.yaml`. Returns whether the key was there.
fn edit_user_file(dir: &Path, key: &Key, new: Option<&Resource>) -> Result<bool> {
    let path = user_file(dir);
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
    };
    let mut chunks: Vec<String> = Vec::new();
    let mut current = String::new();
    for line in text.lines() {
        if line.trim_end() == "---" {
            chunks.push(std::mem::take(&mut current));
        } else {
            current.push_str(line);
            current.push('\n');
        }
    }
    chunks.push(current);
    let mut found = false;
    let mut out: Vec<String> = Vec::new();
    for chunk in chunks {
        let loaded = load_documents(&chunk)
            .map_err(|e| anyhow!("{}: {e}; fix the file first", path.display()))?;
        if loaded.resources.iter().any(|r| r.key() == *key) {
            found = true;
            if let Some(r) = new {
                out.push(yaml_out::to_string(&r.to_value()));
            }
        } else if !chunk.trim().is_empty() {
            out.push(chunk);
        }
    }
    if !found {
        if let Some(r) = new {
            out.push(yaml_out::to_string(&r.to_value()));
        }
    }
    let joined = out.join("---\n");
    let tmp = path.with_extension("yaml.tmp");
    std::fs::write(&tmp, joined).with_context(|| format!("cannot write {}", tmp.display()))?;
    std::fs::rename(&tmp, &path).with_context(|| format!("cannot replace {}", path.display()))?;
    Ok(found)
}

/// A row of the table of one kind.
type Row = fn(&Value) -> Vec<String>;

/// The table's header and row function of `kind`.
fn columns(kind: Kind) -> (Vec<&'static str>, Row) {
    match kind {
        Kind::Node => (
            vec!["NAME", "ADDRESSES", "AS", "RR CLUSTER ID", "LABELS"],
            |v| {
                let bgp = &v["spec"]["bgp"];
                // A dual-stack node's two, an IPv6-only node's one.
                let addresses: Vec<String> = [&bgp["ipv4Address"], &bgp["ipv6Address"]]
                    .into_iter()
                    .map(s)
                    .filter(|a| !a.is_empty())
                    .collect();
                vec![
                    s(&v["metadata"]["name"]),
                    addresses.join(","),
                    s(&v["spec"]["bgp"]["asNumber"]),
                    s(&v["spec"]["bgp"]["routeReflectorClusterID"]),
                    labels(&v["metadata"]["labels"]),
                ]
            },
        ),
        Kind::BGPPeer => (vec!["NAME", "PEER", "AS", "NODES"], |v| {
            let spec = &v["spec"];
            let peer = match (spec["peerIP"].as_str(), spec["peerSelector"].as_str()) {
                (Some(ip), _) => ip.to_string(),
                (None, Some(sel)) => format!("nodes: {sel}"),
                _ => String::new(),
            };
            let nodes = match (spec["node"].as_str(), spec["nodeSelector"].as_str()) {
                (Some(n), _) => n.to_string(),
                (None, Some(sel)) => sel.to_string(),
                _ => "all()".into(),
            };
            vec![s(&v["metadata"]["name"]), peer, s(&spec["asNumber"]), nodes]
        }),
        Kind::IPPool => (
            vec![
                "NAME",
                "CIDR",
                "BLOCK SIZE",
                "IPIP",
                "VXLAN",
                "NAT",
                "DISABLED",
            ],
            |v| {
                let spec = &v["spec"];
                vec![
                    s(&v["metadata"]["name"]),
                    s(&spec["cidr"]),
                    s(&spec["blockSize"]),
                    s(&spec["ipipMode"]),
                    s(&spec["vxlanMode"]),
                    s(&spec["natOutgoing"]),
                    s(&spec["disabled"]),
                ]
            },
        ),
        Kind::BGPFilter => (
            vec!["NAME", "EXPORTV4", "IMPORTV4", "EXPORTV6", "IMPORTV6"],
            |v| {
                let rules = |list: &str| {
                    let n = v["spec"][list].as_array().map_or(0, Vec::len);
                    format!("{n} rules")
                };
                vec![
                    s(&v["metadata"]["name"]),
                    rules("exportV4"),
                    rules("importV4"),
                    rules("exportV6"),
                    rules("importV6"),
                ]
            },
        ),
        Kind::BGPConfiguration => (vec!["NAME", "AS", "MESH", "PORT"], |v| {
            let spec = &v["spec"];
            vec![
                s(&v["metadata"]["name"]),
                s(&spec["asNumber"]),
                s(&spec["nodeToNodeMeshEnabled"]),
                s(&spec["listenPort"]),
            ]
        }),
        Kind::WorkloadEndpoint => (vec!["NAME", "NODE", "INTERFACE", "ADDRESSES"], |v| {
            let spec = &v["spec"];
            let name = match v["metadata"]["namespace"].as_str() {
                Some(ns) => format!("{ns}/{}", s(&v["metadata"]["name"])),
                None => s(&v["metadata"]["name"]),
            };
            vec![
                name,
                s(&spec["node"]),
                s(&spec["interfaceName"]),
                list(&spec["ipNetworks"]),
            ]
        }),
        Kind::Block => (vec!["CIDR", "AFFINITY", "IN USE"], |v| {
            let spec = &v["spec"];
            let total = spec["allocations"].as_array().map_or(0, Vec::len);
            let used = spec["allocations"]
                .as_array()
                .map_or(0, |a| a.iter().filter(|x| !x.is_null()).count());
            vec![
                s(&spec["cidr"]),
                s(&spec["affinity"]),
                format!("{used}/{total}"),
            ]
        }),
        Kind::BlockAffinity => (vec!["NAME", "NODE", "CIDR", "STATE"], |v| {
            let spec = &v["spec"];
            vec![
                s(&v["metadata"]["name"]),
                s(&spec["node"]),
                s(&spec["cidr"]),
                s(&spec["state"]),
            ]
        }),
        Kind::Handle => (vec!["NAME", "BLOCKS"], |v| {
            let blocks = v["spec"]["block"]
                .as_object()
                .map(|m| m.keys().cloned().collect::<Vec<_>>().join(", "))
                .unwrap_or_default();
            vec![s(&v["metadata"]["name"]), blocks]
        }),
        Kind::CalicoNodeStatus => (
            vec![
                "NAME",
                "NODE",
                "CLASSES",
                "PERIOD",
                "ESTABLISHED",
                "UPDATED",
            ],
            |v| {
                let bgp = &v["status"]["bgp"];
                let up = bgp["numberEstablishedV4"].as_u64().unwrap_or(0)
                    + bgp["numberEstablishedV6"].as_u64().unwrap_or(0);
                let down = bgp["numberNotEstablishedV4"].as_u64().unwrap_or(0)
                    + bgp["numberNotEstablishedV6"].as_u64().unwrap_or(0);
                vec![
                    s(&v["metadata"]["name"]),
                    s(&v["spec"]["node"]),
                    list(&v["spec"]["classes"]),
                    s(&v["spec"]["updatePeriodSeconds"]),
                    format!("{up}/{}", up + down),
                    s(&v["status"]["lastUpdated"]),
                ]
            },
        ),
    }
}

fn s(v: &Value) -> String {
    match v {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn list(v: &Value) -> String {
    v.as_array()
        .map(|a| a.iter().map(s).collect::<Vec<_>>().join(", "))
        .unwrap_or_default()
}

fn labels(v: &Value) -> String {
    v.as_object()
        .map(|m| {
            m.iter()
                .map(|(k, v)| format!("{k}={}", s(v)))
                .collect::<Vec<_>>()
                .join(",")
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use tortie_datastore::FileStore;

    const POOL: &str = "apiVersion: projectcalico.org/v3\nkind: IPPool\nmetadata:\n  name: p1\nspec:\n  cidr: 10.244.0.0/16\n";

    #[tokio::test]
    async fn apply_get_delete_on_the_file_backend() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("resources.yaml"),
            format!("# my pools\n{POOL}"),
        )
        .unwrap();
        let store = AnyStore::File(FileStore::open(dir.path()).unwrap());
        let setting = DatastoreSetting::File(dir.path().to_path_buf());
        let text = "apiVersion: projectcalico.org/v3\nkind: BGPPeer\nmetadata:\n  name: tor\nspec:\n  peerIP: 192.168.1.254\n  asNumber: 65000\n---\n\
                    apiVersion: projectcalico.org/v3\nkind: Node\nmetadata:\n  name: n1\n  labels:\n    rr: \"true\"\nspec:\n  bgp:\n    ipv4Address: 192.168.1.11/24\n    routeReflectorClusterID: 1.1.1.1\n";
        let done = apply(&store, &setting, text).await.unwrap();
        assert_eq!(done.len(), 2);
        assert!(done[0].starts_with("BGPPeer/tor: applied (in "), "{done:?}");
        assert_eq!(done[1], "Node/n1: applied");
        // The user's file kept its pool and comment, and gained the peer.
        let file = std::fs::read_to_string(dir.path().join("resources.yaml")).unwrap();
        assert!(file.starts_with("# my pools\n"), "{file}");
        assert!(file.contains("peerIP: 192.168.1.254"), "{file}");
        let table = get(&store, Kind::BGPPeer, None, Output::Table)
            .await
            .unwrap();
        assert!(
            table.contains("| tor  | 192.168.1.254 | 65000 | all() |"),
            "{table}"
        );
        let yaml = get(&store, Kind::Node, Some("n1"), Output::Yaml)
            .await
            .unwrap();
        assert!(yaml.contains("routeReflectorClusterID: 1.1.1.1"), "{yaml}");
        // Applying again replaces (no duplicate document).
        apply(&store, &setting, text).await.unwrap();
        assert_eq!(store.list(Kind::BGPPeer).await.unwrap().items.len(), 1);

        delete(&store, &setting, &Key::new(Kind::BGPPeer, "tor"))
            .await
            .unwrap();
        assert!(store.list(Kind::BGPPeer).await.unwrap().items.is_empty());
        assert_eq!(store.list(Kind::IPPool).await.unwrap().items.len(), 1);
        delete(&store, &setting, &Key::new(Kind::Node, "n1"))
            .await
            .unwrap();
        let e = delete(&store, &setting, &Key::new(Kind::BGPPeer, "tor"))
            .await
            .unwrap_err();
        assert!(e.to_string().contains("BGPPeer/tor not found"), "{e}");

        // A bad document is refused, naming the field; nothing is written.
        let before = std::fs::read_to_string(dir.path().join("resources.yaml")).unwrap();
        let e = apply(
            &store,
            &setting,
            &POOL.replace("10.244.0.0/16", "10.244.0.0/40"),
        )
        .await
        .unwrap_err();
        assert!(e.to_string().contains("spec.cidr"), "{e}");
        assert_eq!(
            std::fs::read_to_string(dir.path().join("resources.yaml")).unwrap(),
            before
        );
    }

    /// A BGPFilter goes into the user's file like the other user kinds,
    /// and `get` tables its lists.
    #[tokio::test]
    async fn a_bgp_filter_applies_and_gets() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("resources.yaml"), POOL).unwrap();
        let store = AnyStore::File(FileStore::open(dir.path()).unwrap());
        let setting = DatastoreSetting::File(dir.path().to_path_buf());
        let text = "apiVersion: projectcalico.org/v3\nkind: BGPFilter\nmetadata:\n  name: edge\nspec:\n  exportV4:\n    - {action: Reject, matchOperator: Equal, cidr: 10.244.1.0/26}\n  importV4:\n    - {action: Accept}\n    - {action: Reject}\n";
        let done = apply(&store, &setting, text).await.unwrap();
        assert!(
            done[0].starts_with("BGPFilter/edge: applied (in "),
            "{done:?}"
        );
        let file = std::fs::read_to_string(dir.path().join("resources.yaml")).unwrap();
        assert!(file.contains("kind: BGPFilter"), "{file}");
        let table = get(&store, Kind::BGPFilter, None, Output::Table)
            .await
            .unwrap();
        assert!(
            table.contains("| edge | 1 rules  | 2 rules  | 0 rules  | 0 rules  |"),
            "{table}"
        );
        let bad = text.replace("10.244.1.0/26", "10.244.1.0/33");
        let e = apply(&store, &setting, &bad).await.unwrap_err();
        assert!(
            e.to_string()
                .contains("BGPFilter/edge exportV4 rule 0: not a CIDR"),
            "{e}"
        );
    }

    /// The Node table shows an IPv6 address beside the IPv4 one, and an
    /// IPv6-only node's alone.
    #[tokio::test]
    async fn node_table_shows_both_families() {
        let dir = tempfile::tempdir().unwrap();
        let store = AnyStore::File(FileStore::open(dir.path()).unwrap());
        let setting = DatastoreSetting::File(dir.path().to_path_buf());
        let node = |name: &str, bgp: &str| {
            format!("apiVersion: projectcalico.org/v3\nkind: Node\nmetadata:\n  name: {name}\nspec:\n  bgp: {{{bgp}}}\n")
        };
        let text = [
            node("v4", "ipv4Address: 192.168.1.11/24"),
            node(
                "dual",
                "ipv4Address: 192.168.1.12/24, ipv6Address: 'fd30:1::12/64'",
            ),
            node("v6", "ipv6Address: 'fd30:1::13/64'"),
        ]
        .join("---\n");
        apply(&store, &setting, &text).await.unwrap();
        let table = get(&store, Kind::Node, None, Output::Table).await.unwrap();
        for row in [
            "| v4   | 192.168.1.11/24               |",
            "| dual | 192.168.1.12/24,fd30:1::12/64 |",
            "| v6   | fd30:1::13/64                 |",
        ] {
            assert!(table.contains(row), "{row} in\n{table}");
        }
    }

    #[test]
    fn kinds_as_users_type_them() {
        assert_eq!(parse_kind("Nodes").unwrap(), Kind::Node);
        assert_eq!(parse_kind("bgppeers").unwrap(), Kind::BGPPeer);
        assert_eq!(parse_kind("wep").unwrap(), Kind::WorkloadEndpoint);
        assert_eq!(parse_kind("BGPFilters").unwrap(), Kind::BGPFilter);
        assert_eq!(parse_kind("bgpfilter").unwrap(), Kind::BGPFilter);
        assert!(parse_kind("pods")
            .unwrap_err()
            .to_string()
            .contains("not a resource kind"));
    }
}
