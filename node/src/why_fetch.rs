//! `/explain`'s gathering: the datastore (blocks, pods, pools, the
//! BGPPeers' filters, read when asked), the agent's desired state, the
//! kernel dump, the speaker's paths and felix's last writes; then
//! [`crate::why`] builds the answer.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::time::Duration;

use axum::http::StatusCode;
use ipnet::IpNet;
use tortie_config::resources::{
    BGPFilterSpec, BGPPeerSpec, BlockSpec, IPPoolSpec, WorkloadEndpointSpec,
};
use tortie_datastore::{AnyStore, TypedStore};

use crate::admin::Shared;
use crate::why::{self, Explanation, Facts, PodView, RuleNames, StoreFacts, Target};

/// How long the speaker and felix may take to answer.
const ASK_TIMEOUT: Duration = Duration::from_secs(3);

/// The answer for `target`, or the HTTP status and why not.
pub async fn answer(shared: &Shared, target: &str) -> Result<Explanation, (StatusCode, String)> {
    let parsed = why::parse_target(target).map_err(|e| (StatusCode::BAD_REQUEST, e))?;
    let status = shared.fresh().await;
    let mut out = Explanation {
        node: status.node.clone(),
        target: target.trim().to_string(),
        ..Explanation::default()
    };
    let (facts, peers_specs, filters) = match shared.store.get() {
        Some(store) => read_store(store, &mut out.problems).await,
        None => {
            out.problems
                .push("the datastore is not connected yet: no blocks, pods or filters".into());
            Default::default()
        }
    };
    let prefixes: Vec<IpNet> = match &parsed {
        Target::Prefix(p) => {
            out.kind = "prefix".into();
            vec![*p]
        }
        Target::Address(a) => {
            out.kind = "address".into();
            vec![IpNet::from(*a)]
        }
        Target::Pod { namespace, name } => {
            out.kind = "pod".into();
            if shared.store.get().is_none() {
                return Err((
                    StatusCode::SERVICE_UNAVAILABLE,
                    "the datastore is not connected yet: pods cannot be looked up".into(),
                ));
            }
            let Some(pod) = facts
                .endpoints
                .iter()
                .find(|e| e.namespace == *namespace && e.name == *name)
            else {
                return Err((
                    StatusCode::NOT_FOUND,
                    format!(
                        "no pod {namespace}/{name}: no WorkloadEndpoint in namespace {namespace} \
                         is for pod {name} ({} WorkloadEndpoints in the datastore)",
                        facts.endpoints.len()
                    ),
                ));
            };
            out.pod = Some(pod.clone());
            pod.addresses.iter().map(|a| a.trunc()).collect()
        }
    };
    let desired = shared.desired.borrow().clone();
    if desired.is_none() {
        out.problems
            .push("no desired state yet: the agent is starting (see /status)".into());
    }
    let claims = desired.as_deref().map(felix::desired::compute);
    let installed = async {
        let links = felix::kernel::dump::links(&shared.kernel).await?;
        felix::kernel::dump::routes(&shared.kernel, &links).await
    }
    .await
    .map_err(|e| {
        (
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("kernel dump failed: {e}"),
        )
    })?;
    let names: BTreeMap<IpAddr, RuleNames> = status
        .peers
        .iter()
        .filter_map(|p| {
            let name = p.source.strip_prefix("BGPPeer/")?;
            let spec = peers_specs.get(name)?;
            Some((p.address, why::rule_names(spec, &filters)))
        })
        .collect();
    let speaker = shared.speaker.borrow().clone();
    for asked in prefixes {
        let bgp = match &speaker {
            None => Err("the BGP speaker is not running yet".to_string()),
            Some(s) => match tokio::time::timeout(ASK_TIMEOUT, s.explain(asked)).await {
                Ok(Ok(e)) => Ok(e),
                Ok(Err(e)) => Err(format!("BGP speaker: {e}")),
                Err(_) => Err(format!(
                    "the BGP speaker did not answer within {ASK_TIMEOUT:?}"
                )),
            },
        };
        let kp = why::kernel_prefix(&asked, claims.as_ref(), &installed);
        let last_write = match (kp, shared.felix.get()) {
            (Some(p), Some(q)) => {
                match tokio::time::timeout(ASK_TIMEOUT, q.last_writes(vec![p])).await {
                    Ok(Ok(w)) => w.into_iter().next().flatten(),
                    _ => {
                        out.problems
                            .push(format!("felix did not say when it last wrote {p}"));
                        None
                    }
                }
            }
            _ => None,
        };
        let f = Facts {
            desired: desired.as_deref(),
            claims: claims.as_ref(),
            installed: &installed,
            peers: &status.peers,
            bgp: bgp.as_ref().map_err(Clone::clone),
            names: &names,
            store: &facts,
            last_write,
        };
        out.prefixes.push(why::report(asked, &f));
    }
    Ok(out)
}

type PeerSpecs = BTreeMap<String, BGPPeerSpec>;
type FilterSpecs = BTreeMap<String, BGPFilterSpec>;

/// Blocks, pods, pools, BGPPeers and BGPFilters; what cannot be read is
/// said in `problems`.
async fn read_store(
    store: &AnyStore,
    problems: &mut Vec<String>,
) -> (StoreFacts, PeerSpecs, FilterSpecs) {
    let mut facts = StoreFacts::default();
    let mut fail = |what: &str, e: &dyn std::fmt::Display| {
        problems.push(format!("datastore: cannot list {what}: {e}"));
    };
    match store.list_typed::<BlockSpec>().await {
        Ok(list) => {
            facts.blocks = list
                .into_iter()
                .map(|(b, _)| {
                    let node = b
                        .spec
                        .affinity
                        .as_deref()
                        .and_then(|a| a.strip_prefix("host:"))
                        .map(String::from);
                    (b.spec.cidr, node)
                })
                .collect()
        }
        Err(e) => fail("Blocks", &e),
    }
    match store.list_typed::<WorkloadEndpointSpec>().await {
        Ok(list) => {
            facts.endpoints = list
                .into_iter()
                .map(|(w, _)| PodView {
                    namespace: w.metadata.namespace.clone().unwrap_or_default(),
                    name: w.spec.pod.clone().unwrap_or(w.metadata.name.clone()),
                    node: w.spec.node.clone(),
                    interface: w.spec.interface_name.clone(),
                    addresses: w.spec.ip_networks.clone(),
                })
                .collect()
        }
        Err(e) => fail("WorkloadEndpoints", &e),
    }
    match store.list_typed::<IPPoolSpec>().await {
        Ok(list) => {
            facts.pools = list
                .into_iter()
                .map(|(p, _)| {
                    (
                        p.metadata.name.clone(),
                        p.spec.cidr,
                        format!("{:?}", p.spec.ipip_mode),
                        format!("{:?}", p.spec.vxlan_mode),
                    )
                })
                .collect()
        }
        Err(e) => fail("IPPools", &e),
    }
    let mut peers = PeerSpecs::new();
    match store.list_typed::<BGPPeerSpec>().await {
        Ok(list) => peers.extend(list.into_iter().map(|(p, _)| (p.metadata.name, p.spec))),
        Err(e) => fail("BGPPeers", &e),
    }
    let mut filters = FilterSpecs::new();
    match store.list_typed::<BGPFilterSpec>().await {
        Ok(list) => filters.extend(list.into_iter().map(|(f, _)| (f.metadata.name, f.spec))),
        Err(e) => fail("BGPFilters", &e),
    }
    (facts, peers, filters)
}
