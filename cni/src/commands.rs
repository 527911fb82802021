//! The CNI commands: ADD, DEL, CHECK, GC, STATUS, VERSION.

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::time::Duration;

use ipnet::IpNet;
use serde_json::{json, Value};
use tortie_config::resources::{IPPoolSpec, Object};
use tortie_config::resources::{Metadata, Resource, WorkloadEndpoint, WorkloadEndpointSpec};
use tortie_datastore::{AnyStore, Datastore, StoreError, TypedStore};
use tortie_ipam::{Assigned, Ipam, IpamConfig, Request};

use crate::annotations;
use crate::config::{Env, NetConf, SUPPORTED_VERSIONS};
use crate::error::{code, CniError};
use crate::link;
use crate::plan::{self, Plan};

/// How long opening the datastore may take before we give up.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

// ===== commands =====

/// `VERSION`: what we speak.
pub fn version(stdin: &[u8]) -> Value {
    let asked = serde_json::from_slice::<Value>(stdin)
        .ok()
        .and_then(|v| v["cniVersion"].as_str().map(str::to_owned))
        .filter(|v| SUPPORTED_VERSIONS.contains(&v.as_str()))
        .unwrap_or_else(|| "1.1.0".into());
    json!({"cniVersion": asked, "supportedVersions": SUPPORTED_VERSIONS})
}

/// `ADD`: allocate, plumb, record; undo everything on failure.
pub async fn add(conf: &NetConf, env: &Env) -> Result<Value, CniError> {
    let cid = env.container_id()?;
    let ifname = env.ifname()?;
    let netns = env.netns()?;
    // Before anything is allocated: a bad netns path leaks nothing.
    let ns_file = link::open_netns(netns)?;
    let node = conf.node()?;
    let host = link::host_handle()?;
    let ipam = open_ipam(conf).await?;
    let handle_id = handle_id(conf, cid, ifname);
    let host_if = felix::endpoint::host_ifname(&handle_id);
    let req = Request {
        handle_id: handle_id.clone(),
        node: node.clone(),
        pools: Vec::new(),
        families: Vec::new(),
        attributes: env
            .args
            .iter()
            .filter(|(k, _)| k.starts_with("K8S_POD_"))
            .map(|(k, v)| (k.clone(), v.clone()))
            .chain([("node".to_string(), node.clone())])
            .collect(),
    };
    // Everything the pod asks for is checked before anything is allocated.
    let requested = conf.requested_ips(env)?;
    let pod = annotations::read(ipam.store(), env).await?;
    let pools = plan::pools_for(ipam.store(), &pod).await?;
    let families = plan::conf_families(conf);
    let chosen = Plan::new(&conf.pools, &families, &requested, &pod, &pools)?;
    let assigned = allocate(&ipam, &req, &chosen).await?;
    let addrs: Vec<IpAddr> = assigned.iter().map(|a| a.address).collect();
    let plumbed = async {
        // The endpoint first: the node agent then knows the interface
        // before it exists, so neither its route nor its interface is ever
        // taken for a leftover (the agent removes unknown workload
        // interfaces after a grace period), however long the rest takes.
        let wep = workload_endpoint(&node, env, cid, ifname, &host_if, &addrs, "");
        write_endpoint(ipam.store(), wep).await?;
        // A retried ADD: start from a clean pair.
        link::delete_link(&host, &host_if).await?;
        link::create_veth(&host, &host_if, ifname, &ns_file, conf.mtu).await?;
        let pod = link::netns_handle(netns)?;
        let pod_mac = link::setup_pod(&pod, ifname, &addrs).await?;
        let host_mac = link::setup_host(&host, &host_if, &addrs).await?;
        // Now with the pod's MAC.
        let wep = workload_endpoint(&node, env, cid, ifname, &host_if, &addrs, &pod_mac);
        write_endpoint(ipam.store(), wep).await?;
        Ok::<_, CniError>((host_mac, pod_mac))
    }
    .await;
    let (host_mac, pod_mac) = match plumbed {
        Ok(macs) => macs,
        Err(e) => {
            let _ = link::delete_link(&host, &host_if).await;
            let _ = delete_endpoints(ipam.store(), &node, |w| {
                w.container_id == cid && w.endpoint == ifname
            })
            .await;
            let _ = ipam.release(&handle_id).await;
            return Err(e);
        }
    };
    let ips: Vec<Value> = addrs
        .iter()
        .map(|a| {
            let (net, gw) = match a {
                IpAddr::V4(_) => (IpNet::from(*a), link::GATEWAY_V4.to_string()),
                IpAddr::V6(_) => (IpNet::from(*a), link::GATEWAY_V6.to_string()),
            };
            json!({"address": net.to_string(), "gateway": gw, "interface": 1})
        })
        .collect();
    let routes: Vec<Value> = addrs
        .iter()
        .map(|a| match a {
            IpAddr::V4(_) => json!({"dst": "0.0.0.0/0", "gw": link::GATEWAY_V4.to_string()}),
            IpAddr::V6(_) => json!({"dst": "::/0", "gw": link::GATEWAY_V6.to_string()}),
        })
        .collect();
    Ok(json!({
        "cniVersion": conf.cni_version,
        "interfaces": [
            {"name": host_if, "mac": host_mac},
            {"name": ifname, "mac": pod_mac, "sandbox": netns.display().to_string()},
        ],
        "ips": ips,
        "routes": routes,
        "dns": {},
    }))
}

/// `DEL`: remove the pair (works without the pod's netns), free the
/// addresses, delete the endpoint. Idempotent.
pub async fn del(conf: &NetConf, env: &Env) -> Result<(), CniError> {
    let cid = env.container_id()?;
    let ifname = env.ifname()?;
    let node = conf.node()?;
    let handle_id = handle_id(conf, cid, ifname);
    let host = link::host_handle()?;
    link::delete_link(&host, &felix::endpoint::host_ifname(&handle_id)).await?;
    let ipam = open_ipam(conf).await?;
    ipam.release(&handle_id).await.map_err(CniError::ipam)?;
    delete_endpoints(ipam.store(), &node, |w| {
        w.container_id == cid && w.endpoint == ifname
    })
    .await
}

/// `CHECK`: the addresses are still ours, both ends exist, the pod has
/// its addresses.
pub async fn check(conf: &NetConf, env: &Env) -> Result<(), CniError> {
    let cid = env.container_id()?;
    let ifname = env.ifname()?;
    let netns = env.netns()?;
    link::open_netns(netns)?;
    let handle_id = handle_id(conf, cid, ifname);
    let ipam = open_ipam(conf).await?;
    let held = ipam.held(&handle_id).await.map_err(CniError::ipam)?;
    if held.is_empty() {
        return Err(CniError::new(
            code::UNKNOWN_CONTAINER,
            format!("no address is allocated to {handle_id}; run ADD again"),
        ));
    }
    if let Some(prev) = &conf.prev_result {
        for ip in prev["ips"].as_array().into_iter().flatten() {
            let a = ip["address"].as_str().unwrap_or_default();
            let ok = a.parse::<IpNet>().is_ok_and(|n| held.contains(&n.addr()));
            if !ok {
                return Err(CniError::new(
                    code::INVALID_CONFIG,
                    format!("prevResult address {a:?} is not allocated to {handle_id} (it holds {held:?})"),
                ));
            }
        }
    }
    let host_if = felix::endpoint::host_ifname(&handle_id);
    if link::link(&link::host_handle()?, &host_if).await?.is_none() {
        return Err(CniError::new(
            code::UNKNOWN_CONTAINER,
            format!("host interface {host_if} is missing; run DEL and ADD again"),
        ));
    }
    let have = link::pod_addresses(&link::netns_handle(netns)?, ifname).await?;
    if let Some(missing) = held.iter().find(|a| !have.contains(a)) {
        return Err(CniError::new(
            code::UNKNOWN_CONTAINER,
            format!("{ifname} in the pod lacks its address {missing}; run DEL and ADD again"),
        ));
    }
    Ok(())
}

/// `GC`: free every attachment of this network that is not in
/// `cni.dev/valid-attachments`, then orphans and long-empty blocks.
pub async fn gc(conf: &NetConf) -> Result<(), CniError> {
    let node = conf.node()?;
    let valid: BTreeSet<String> = conf
        .valid_attachments
        .iter()
        .flatten()
        .map(|a| handle_id(conf, &a.container_id, &a.ifname))
        .collect();
    let ipam = open_ipam(conf).await?;
    let prefix = format!("{}.", conf.name);
    let host = link::host_handle()?;
    let stale: BTreeSet<String> = ipam
        .handles_in_use()
        .await
        .map_err(CniError::ipam)?
        .into_iter()
        .filter(|h| h.starts_with(&prefix) && !valid.contains(h))
        .collect();
    for h in &stale {
        link::delete_link(&host, &felix::endpoint::host_ifname(h)).await?;
        ipam.release(h).await.map_err(CniError::ipam)?;
    }
    delete_endpoints(ipam.store(), &node, |w| {
        !valid.contains(&handle_id(conf, &w.container_id, &w.endpoint))
    })
    .await?;
    ipam.gc().await.map_err(CniError::ipam)?;
    ipam.release_empty_blocks(Some(&node))
        .await
        .map_err(CniError::ipam)?;
    Ok(())
}

/// `STATUS`: the datastore answers and an enabled pool exists.
pub async fn status(conf: &NetConf) -> Result<(), CniError> {
    let unavailable = |e: CniError| CniError::new(code::NOT_AVAILABLE, e.msg).details(e.details);
    let ipam = open_ipam(conf).await.map_err(unavailable)?;
    let pools = ipam
        .store()
        .list_typed::<IPPoolSpec>()
        .await
        .map_err(|e| unavailable(CniError::store("listing IP pools", e)))?;
    if !pools.iter().any(|(p, _)| !p.spec.disabled) {
        return Err(CniError::new(
            code::NOT_AVAILABLE,
            "no enabled IP pool in the datastore; create an IPPool",
        ));
    }
    Ok(())
}

// ===== helpers =====

/// Allocates what `plan` says to `req`'s handle: all of it, or nothing.
async fn allocate(
    ipam: &Ipam<AnyStore>,
    req: &Request,
    plan: &Plan,
) -> Result<Vec<Assigned>, CniError> {
    let mut got = Vec::new();
    let mut failed = None;
    if plan.addresses.is_empty() {
        // One request per pool list (one, unless the pod's annotations
        // gave the families different pools).
        for (pools, families) in plan.requests() {
            let one = Request {
                pools,
                families: families.clone(),
                ..req.clone()
            };
            match ipam.allocate(&one).await {
                Ok(a) => got.extend(a),
                Err(e) => {
                    failed = Some(plan.context(&families, false, CniError::ipam(e)));
                    break;
                }
            }
        }
    } else {
        // The pod asked for its addresses: exactly those, or none.
        for addr in &plan.addresses {
            let family = annotations::family_of(addr);
            let one = Request {
                pools: plan.pools(family).to_vec(),
                ..req.clone()
            };
            match ipam.allocate_address(&one, *addr).await {
                Ok(a) => got.push(a),
                Err(e) => {
                    failed = Some(plan.context(&[family], true, CniError::ipam(e)));
                    break;
                }
            }
        }
    }
    match failed {
        None => Ok(got),
        Some(e) => {
            // A failed `allocate` gave back what it took; not what an
            // earlier call of this loop got, nor a requested address.
            if !got.is_empty() || !plan.addresses.is_empty() {
                let _ = ipam.release(&req.handle_id).await;
            }
            Err(e)
        }
    }
}

/// `<network>.<container id>.<interface>`: owner of the addresses, and the
/// workload id the host interface name is derived from.
pub fn handle_id(conf: &NetConf, cid: &str, ifname: &str) -> String {
    format!("{}.{cid}.{ifname}", conf.name)
}

async fn open_ipam(conf: &NetConf) -> Result<Ipam<AnyStore>, CniError> {
    let store = match tokio::time::timeout(CONNECT_TIMEOUT, AnyStore::open(&conf.datastore)).await {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => return Err(CniError::store("opening the datastore", e)),
        Err(_) => {
            return Err(CniError::new(
                code::TRY_AGAIN,
                format!(
                    "opening the datastore timed out after {}s; check datastore.endpoints",
                    CONNECT_TIMEOUT.as_secs()
                ),
            ))
        }
    };
    let config = IpamConfig {
        strict_affinity: conf.strict_affinity,
        ..IpamConfig::default()
    };
    Ok(Ipam::new(store, config))
}

fn workload_endpoint(
    node: &str,
    env: &Env,
    cid: &str,
    ifname: &str,
    host_if: &str,
    addrs: &[IpAddr],
    mac: &str,
) -> WorkloadEndpoint {
    let pod = env.args.get("K8S_POD_NAME").cloned();
    let metadata = Metadata {
        name: tortie_ipam::handle_name(&format!("{node}.{cid}.{ifname}")),
        namespace: env.args.get("K8S_POD_NAMESPACE").cloned(),
        ..Metadata::default()
    };
    Object {
        metadata,
        spec: WorkloadEndpointSpec {
            node: node.to_owned(),
            // podman passes K8S_POD_NAME too, but only Kubernetes a namespace.
            orchestrator: if env.args.contains_key("K8S_POD_NAMESPACE") {
                "k8s"
            } else {
                "cni"
            }
            .into(),
            pod,
            container_id: cid.to_owned(),
            endpoint: ifname.to_owned(),
            interface_name: host_if.to_owned(),
            ip_networks: addrs.iter().map(|a| IpNet::from(*a)).collect(),
            mac: (!mac.is_empty()).then(|| mac.to_owned()),
        },
    }
}

/// Creates the endpoint, or replaces it (a retried ADD).
async fn write_endpoint(store: &AnyStore, wep: WorkloadEndpoint) -> Result<(), CniError> {
    for _ in 0..100 {
        let key = wep.key();
        let result = match store.get(&key).await {
            Ok(Some(v)) => {
                store
                    .update(Resource::WorkloadEndpoint(wep.clone()), v.revision)
                    .await
            }
            Ok(None) => store.create(Resource::WorkloadEndpoint(wep.clone())).await,
            Err(e) => Err(e),
        };
        match result {
            Ok(_) => return Ok(()),
            Err(e) if e.is_conflict() => continue,
            Err(e) => return Err(CniError::store("writing the WorkloadEndpoint", e)),
        }
    }
    Err(CniError::new(
        code::TRY_AGAIN,
        "writing the WorkloadEndpoint: too many concurrent writers",
    ))
}

async fn delete_endpoints(
    store: &AnyStore,
    node: &str,
    pred: impl Fn(&WorkloadEndpointSpec) -> bool,
) -> Result<(), CniError> {
    let weps = store
        .list_typed::<WorkloadEndpointSpec>()
        .await
        .map_err(|e| CniError::store("listing WorkloadEndpoints", e))?;
    for (w, _) in weps {
        if w.spec.node == node && pred(&w.spec) {
            match store.delete(&w.key(), None).await {
                Ok(_) | Err(StoreError::NotFound { .. }) => {}
                Err(e) => return Err(CniError::store("deleting the WorkloadEndpoint", e)),
            }
        }
    }
    Ok(())
}
