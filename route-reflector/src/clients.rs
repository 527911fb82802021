//! Clients from the datastore (`datastoreClients` in the file): every Node
//! whose labels the selector matches, at its `spec.bgp.ipv4Address` (an
//! IPv6-only node's `ipv6Address`: the address its tortie-node peers
//! from), in our AS (a node of another AS is skipped with a warning: clients are
//! iBGP). Nodes joining and leaving become peers added and removed, as a
//! reload would; static `peers` of the file win for the same address. Two
//! replicas with one `clusterId` and the same selector serve the same
//! clients.
//!
//! ```text
//! follow(Node), follow(BGPConfiguration), probe ──▶ task ──▶ Shared::set_clients ──▶ speaker
//!                              applied config (reloads) ──┘
//! ```

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use bgp_speaker::PeerConfig;
use tokio::sync::mpsc;
use tortie_config::node::parse_datastore;
use tortie_config::resources::{Kind, Resource, Selector, DEFAULT_AS_NUMBER};
use tortie_config::DatastoreClients;
use tortie_datastore::follow::{self, Follow};
use tortie_datastore::{AnyStore, StoreConfig};
use tracing::{info, warn};

use crate::state::Shared;

/// Retry delay while the datastore cannot be opened.
const OPEN_RETRY: Duration = Duration::from_secs(2);

/// What `/status` shows of the datastore clients.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ClientsStatus {
    pub datastore: String,
    pub node_selector: String,
    /// Nodes selected and peered with.
    pub clients: usize,
    /// Current errors (datastore, skipped nodes).
    pub errors: Vec<String>,
}

/// Follows the datastore for as long as the file asks for it; restarts
/// when `datastoreClients` changes in a reload.
pub async fn run(shared: Arc<Shared>) {
    let mut applied = shared.watch_applied();
    loop {
        let wanted = applied.borrow_and_update().rr.datastore_clients.clone();
        let Some(cfg) = wanted else {
            shared.set_clients(Vec::new(), None).await;
            if applied.changed().await.is_err() {
                return;
            }
            continue;
        };
        tokio::select! {
            () = follow_one(&shared, &cfg) => return,
            changed = wait_for_change(&mut applied, &cfg) => if !changed { return },
        }
    }
}

/// Waits until the applied `datastoreClients` differs from `cfg`; `false`
/// when the sender is gone.
async fn wait_for_change(
    applied: &mut tokio::sync::watch::Receiver<Arc<crate::state::Applied>>,
    cfg: &DatastoreClients,
) -> bool {
    loop {
        if applied.changed().await.is_err() {
            return false;
        }
        if applied.borrow().rr.datastore_clients.as_ref() != Some(cfg) {
            return true;
        }
    }
}

/// One datastore, one selector: open (retried), follow, keep the peers
/// current. Runs until cancelled.
async fn follow_one(shared: &Shared, cfg: &DatastoreClients) {
    let mut status = ClientsStatus {
        datastore: cfg.datastore.clone(),
        node_selector: cfg.node_selector.clone(),
        ..ClientsStatus::default()
    };
    let Ok(selector) = Selector::parse(&cfg.node_selector) else {
        return; // validated with the file
    };
    let store_config = match parse_datastore(&cfg.datastore, &cfg.etcd_prefix) {
        Ok(setting) => StoreConfig::from(&setting),
        Err(_) => return, // validated with the file
    };
    let store = loop {
        match AnyStore::open(&store_config).await {
            Ok(s) => break s,
            Err(e) => {
                status.errors = vec![format!("datastore: {e}")];
                shared.set_clients(Vec::new(), Some(status.clone())).await;
                tokio::time::sleep(OPEN_RETRY).await;
            }
        }
    };
    let (tx, mut rx) = mpsc::channel::<Follow>(256);
    let _tasks = [
        follow::follow(store.clone(), Kind::Node, tx.clone()),
        follow::follow(store.clone(), Kind::BGPConfiguration, tx.clone()),
        follow::probe(store, tx),
    ];
    let mut nodes: BTreeMap<String, Resource> = BTreeMap::new();
    let mut default_as = DEFAULT_AS_NUMBER;
    let mut trouble: BTreeMap<String, String> = BTreeMap::new();
    let mut last: Option<Vec<PeerConfig>> = None;
    info!(datastore = %cfg.datastore, selector = %cfg.node_selector, "taking route reflector clients from the datastore");
    while let Some(event) = rx.recv().await {
        match event {
            Follow::Listed {
                kind: Kind::Node,
                items,
                rejected,
            } => {
                nodes = items.into_iter().map(|r| (r.key().name, r)).collect();
                trouble.remove("Node");
                note_rejected(&mut trouble, Kind::Node, rejected);
            }
            Follow::Listed {
                kind,
                items,
                rejected,
            } => {
                note_rejected(&mut trouble, kind, rejected);
                default_as = items
                    .iter()
                    .find_map(|r| match r {
                        Resource::BGPConfiguration(c) if c.metadata.name == "default" => {
                            Some(c.spec.as_number.0)
                        }
                        _ => None,
                    })
                    .unwrap_or(DEFAULT_AS_NUMBER);
                trouble.remove(kind.as_str());
            }
            Follow::Changed(ev) => {
                // A rejected record rewritten or deleted: no longer wrong.
                trouble.remove(&format!("{}/{}", ev.key.kind, ev.key.name));
                match (ev.key.kind, ev.resource) {
                    (Kind::Node, Some(r)) => {
                        nodes.insert(ev.key.name, r);
                    }
                    (Kind::Node, None) => {
                        nodes.remove(&ev.key.name);
                    }
                    (_, Some(Resource::BGPConfiguration(c))) if c.metadata.name == "default" => {
                        default_as = c.spec.as_number.0;
                    }
                    (_, None) if ev.key.name == "default" => default_as = DEFAULT_AS_NUMBER,
                    _ => {}
                }
            }
            Follow::Trouble { kind, error } => {
                trouble.insert(kind.as_str().to_string(), error);
            }
            Follow::Probe(Ok(())) => {
                trouble.remove("probe");
            }
            Follow::Probe(Err(e)) => {
                trouble.insert("probe".into(), format!("unreachable: {e}"));
            }
        }
        let our_as = shared.applied().rr.as_number;
        let (peers, skipped) = clients(&nodes, &selector, default_as, our_as, cfg.passive);
        status.clients = peers.len();
        status.errors = trouble
            .iter()
            .map(|(k, e)| format!("datastore: {k}: {e}"))
            .chain(skipped)
            .collect();
        if last.as_ref() != Some(&peers) {
            info!(
                clients = peers.len(),
                "route reflector clients from the datastore"
            );
            last = Some(peers.clone());
        }
        shared.set_clients(peers, Some(status.clone())).await;
    }
}

/// Records each record a listing of `kind` left out as a datastore error
/// (`Kind/name`), replacing those of the previous listing.
fn note_rejected(
    trouble: &mut BTreeMap<String, String>,
    kind: Kind,
    rejected: Vec<tortie_datastore::Rejected>,
) {
    let prefix = format!("{kind}/");
    trouble.retain(|k, _| !k.starts_with(&prefix));
    for r in rejected {
        trouble.insert(
            format!("{kind}/{}", r.name),
            format!("left out (the others apply): {}", r.error),
        );
    }
}

/// The client peers of `nodes`, and why some were skipped.
fn clients(
    nodes: &BTreeMap<String, Resource>,
    selector: &Selector,
    default_as: u32,
    our_as: u32,
    passive: bool,
) -> (Vec<PeerConfig>, Vec<String>) {
    let mut peers = Vec::new();
    let mut skipped = Vec::new();
    for (name, r) in nodes {
        let Resource::Node(n) = r else { continue };
        if !selector.matches(&n.metadata.labels) {
            continue;
        }
        let Some(bgp) = &n.spec.bgp else { continue };
        // A dual-stack node's session (both families) runs over IPv4; an
        // IPv6-only node's over IPv6 (`tortie-node`'s `peers::session_address`).
        let Some(addr) = bgp.ipv4_address.or(bgp.ipv6_address).map(|a| a.addr()) else {
            continue;
        };
        let asn = bgp.as_number.map_or(default_as, |a| a.0);
        if asn != our_as {
            let why = format!(
                "Node/{name}: AS {asn} is not ours ({our_as}): not a client (clients are iBGP)"
            );
            warn!("{why}");
            skipped.push(why);
            continue;
        }
        let mut p = PeerConfig::new(addr, asn);
        p.rr_client = true;
        p.passive = passive;
        peers.push(p);
    }
    (peers, skipped)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tortie_config::resources::{AsNumber, NodeBgpSpec, NodeSpec, Object};

    /// Node `name` at `addr` (IPv4 or IPv6), `addr6` too if given.
    fn node(name: &str, addr: &str, asn: Option<u32>, rack: &str) -> (String, Resource) {
        let (v4, v6) = match addr.split_once(',') {
            Some((v4, v6)) => (Some(v4), Some(v6)),
            None if addr.contains(':') => (None, Some(addr)),
            None => (Some(addr), None),
        };
        let mut o = Object::new(
            name,
            NodeSpec {
                bgp: Some(NodeBgpSpec {
                    ipv4_address: v4.map(|a| a.parse().unwrap()),
                    ipv6_address: v6.map(|a| a.parse().unwrap()),
                    as_number: asn.map(AsNumber),
                    ..NodeBgpSpec::default()
                }),
                ..NodeSpec::default()
            },
        );
        o.metadata.labels.insert("rack".into(), rack.into());
        (name.to_string(), Resource::Node(o))
    }

    #[test]
    fn selected_nodes_of_our_as_are_clients() {
        let nodes: BTreeMap<_, _> = [
            node("a1", "10.0.0.1/24", None, "a"),
            node("a2", "10.0.0.2/24", Some(65001), "a"),
            node("b1", "10.0.1.1/24", None, "b"),
        ]
        .into_iter()
        .collect();
        let sel = Selector::parse("rack == 'a'").unwrap();
        let (peers, skipped) = clients(&nodes, &sel, 64512, 64512, false);
        let addrs: Vec<String> = peers.iter().map(|p| p.address.to_string()).collect();
        assert_eq!(addrs, ["10.0.0.1"]);
        assert!(peers[0].rr_client && !peers[0].passive);
        assert_eq!(
            skipped,
            ["Node/a2: AS 65001 is not ours (64512): not a client (clients are iBGP)"]
        );
        let (all, _) = clients(&nodes, &Selector::all(), 64512, 64512, true);
        assert_eq!(all.len(), 2);
        assert!(all.iter().all(|p| p.rr_client && p.passive));
    }

    #[test]
    fn ipv6_only_nodes_are_clients_at_their_ipv6_address() {
        let nodes: BTreeMap<_, _> = [
            node("v4", "10.0.0.1/24", None, "a"),
            node("dual", "10.0.0.2/24,fd30:1::12/64", None, "a"),
            node("v6", "fd30:1::13/64", None, "a"),
        ]
        .into_iter()
        .collect();
        let (peers, skipped) = clients(&nodes, &Selector::all(), 64512, 64512, false);
        let addrs: Vec<String> = peers.iter().map(|p| p.address.to_string()).collect();
        // By node name; a dual-stack node at its IPv4 address, whose
        // session carries both families.
        assert_eq!(addrs, ["10.0.0.2", "10.0.0.1", "fd30:1::13"]);
        assert!(peers.iter().all(|p| p.rr_client));
        assert!(skipped.is_empty(), "{skipped:?}");
    }
}
