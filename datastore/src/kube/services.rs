//! Kubernetes Services and their Endpoints, for tortie-node's service IP
//! advertisement (the BGPConfiguration's `serviceClusterIPs`,
//! `serviceExternalIPs`, `serviceLoadBalancerIPs`).
//!
//! These are not resources of ours: nothing is written, and only what the
//! advertisement reads is kept of each object ([`ServiceInfo`],
//! [`EndpointsInfo`]). [`follow_services`] lists both kinds, then watches
//! both from the listings' `resourceVersion`s, and reports
//! [`ServiceEvent`]s: a change only when what we read changed (an
//! Endpoints object changes with every pod readiness flip anywhere; most
//! of those change no node's set). The core/v1 Endpoints are read, not
//! EndpointSlices: the oldest API server we support (1.20) has no
//! discovery/v1. A ready endpoint is one in `subsets[].addresses` (not
//! `notReadyAddresses`), placed by its `nodeName`.
//!
//! History gone (410) relists at once; any other failure is reported as
//! [`ServiceEvent::Trouble`] and retried with backoff (100 ms doubling to
//! 5 s) from a fresh listing, the receiver keeping what it had.
//!
//! The file and etcd backends have no Services: only this backend serves
//! them.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Debug;
use std::net::IpAddr;
use std::time::Duration;

use futures::{Stream, StreamExt};
use k8s_openapi::api::core::v1::{Endpoints, Service};
use kube::api::{Api, ListParams, WatchEvent as KubeEvent, WatchParams};
use serde::de::DeserializeOwned;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::KubeStore;

/// First retry delay after an error; doubles up to [`MAX_BACKOFF`].
const MIN_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(5);
/// The server ends a watch after this long; the next one starts from the
/// last `resourceVersion` seen.
const WATCH_SECONDS: u32 = 290;

/// What service advertisement reads of a Service.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ServiceInfo {
    /// `spec.type` (`ClusterIP` when unset).
    pub kind: String,
    /// `spec.clusterIPs` (or `spec.clusterIP`); empty for a headless
    /// Service (`None`) or one without.
    pub cluster_ips: Vec<IpAddr>,
    /// `spec.externalIPs`.
    pub external_ips: Vec<IpAddr>,
    /// `spec.loadBalancerIP`, the address asked for.
    pub requested_load_balancer_ip: Option<IpAddr>,
    /// `status.loadBalancer.ingress[].ip`, the addresses given.
    pub load_balancer_ips: Vec<IpAddr>,
    /// `spec.externalTrafficPolicy` is `Local`.
    pub external_local: bool,
}

/// What service advertisement reads of an Endpoints object (named as its
/// Service): the nodes that run a ready endpoint.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct EndpointsInfo {
    /// `nodeName` of every address in `subsets[].addresses`.
    pub ready_nodes: BTreeSet<String>,
}

/// What [`follow_services`] reports. Keys are `namespace/name`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ServiceEvent {
    /// Every Service and Endpoints object (replaces what the receiver had).
    Listed {
        services: BTreeMap<String, ServiceInfo>,
        endpoints: BTreeMap<String, EndpointsInfo>,
    },
    /// A Service changed (`None`: deleted).
    Service(String, Option<ServiceInfo>),
    /// An Endpoints object changed (`None`: deleted).
    Endpoints(String, Option<EndpointsInfo>),
    /// Reading failed (an RBAC denial, the API server away); the follower
    /// lists again after a pause.
    Trouble(String),
}

/// A watch's stream of events.
type Events<K> = std::pin::Pin<Box<dyn Stream<Item = kube::Result<KubeEvent<K>>> + Send>>;

/// Why one list + watch ended.
enum End {
    /// The receiver is gone.
    Done,
    /// The server no longer has the history to resume from: list again.
    Gone,
    /// A failure to report.
    Failed(String),
}

/// One kind followed: its watch stream, where it is, and what was last
/// delivered of each object.
struct Followed<K, V> {
    api: Api<K>,
    what: &'static str,
    read: fn(&K) -> V,
    version: String,
    seen: BTreeMap<String, V>,
    events: Option<Events<K>>,
}

/// Follows every Service and Endpoints object through `store`, sending to
/// `tx` (converted with `From`). Ends when the receiver is gone; aborting
/// the handle stops it.
pub fn follow_services<T>(store: KubeStore, tx: mpsc::Sender<T>) -> JoinHandle<()>
where
    T: From<ServiceEvent> + Send + 'static,
{
    tokio::spawn(async move {
        let mut backoff = MIN_BACKOFF;
        loop {
            match run(&store, &tx, &mut backoff).await {
                End::Done => return,
                End::Gone => continue,
                End::Failed(error) => {
                    tracing::warn!(%error, retry_in = ?backoff, "services");
                    if tx.send(ServiceEvent::Trouble(error).into()).await.is_err() {
                        return;
                    }
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                }
            }
        }
    })
}

/// One listing of both kinds, then their changes until something breaks.
async fn run<T: From<ServiceEvent>>(
    store: &KubeStore,
    tx: &mpsc::Sender<T>,
    backoff: &mut Duration,
) -> End {
    let mut services = Followed::new(Api::all(store.client.clone()), "services", read_service);
    let mut endpoints = Followed::new(Api::all(store.client.clone()), "endpoints", read_endpoints);
    if let Err(e) = services.list().await {
        return e;
    }
    if let Err(e) = endpoints.list().await {
        return e;
    }
    let listed = ServiceEvent::Listed {
        services: services.seen.clone(),
        endpoints: endpoints.seen.clone(),
    };
    if tx.send(listed.into()).await.is_err() {
        return End::Done;
    }
    *backoff = MIN_BACKOFF;
    loop {
        let event = tokio::select! {
            change = services.next() => change.map(|(k, v)| ServiceEvent::Service(k, v)),
            change = endpoints.next() => change.map(|(k, v)| ServiceEvent::Endpoints(k, v)),
        };
        match event {
            Ok(event) => {
                if tx.send(event.into()).await.is_err() {
                    return End::Done;
                }
            }
            Err(end) => return end,
        }
    }
}

// ===== impl Followed =====

impl<K, V> Followed<K, V>
where
    K: kube::Resource + Clone + Debug + DeserializeOwned + Send + 'static,
    V: Clone + PartialEq,
{
    fn new(api: Api<K>, what: &'static str, read: fn(&K) -> V) -> Followed<K, V> {
        Followed {
            api,
            what,
            read,
            version: String::new(),
            seen: BTreeMap::new(),
            events: None,
        }
    }

    /// Lists every object, and where to watch from.
    async fn list(&mut self) -> Result<(), End> {
        let list = self
            .api
            .list(&ListParams::default())
            .await
            .map_err(|e| End::Failed(format!("list {}: {e}", self.what)))?;
        self.version = list.metadata.resource_version.unwrap_or_default();
        self.seen = list
            .items
            .iter()
            .map(|o| (key_of(o), (self.read)(o)))
            .collect();
        self.events = None;
        Ok(())
    }

    /// The next change of what we read, opening the watch (again) as
    /// needed.
    async fn next(&mut self) -> Result<(String, Option<V>), End> {
        loop {
            let events = match &mut self.events {
                Some(events) => events,
                None => {
                    let params = WatchParams::default().timeout(WATCH_SECONDS);
                    let stream =
                        self.api
                            .watch(&params, &self.version)
                            .await
                            .map_err(|e| match e {
                                kube::Error::Api(s) if s.code == 410 => End::Gone,
                                e => End::Failed(format!("watch {}: {e}", self.what)),
                            })?;
                    self.events.insert(stream.boxed())
                }
            };
            let object = match events.next().await {
                Some(Ok(KubeEvent::Added(o) | KubeEvent::Modified(o))) => Some(o),
                Some(Ok(KubeEvent::Deleted(o))) => {
                    self.advance(&o);
                    let key = key_of(&o);
                    if self.seen.remove(&key).is_some() {
                        return Ok((key, None));
                    }
                    continue;
                }
                Some(Ok(KubeEvent::Bookmark(b))) => {
                    self.version = b.metadata.resource_version;
                    continue;
                }
                Some(Ok(KubeEvent::Error(s))) if s.code == 410 => return Err(End::Gone),
                Some(Ok(KubeEvent::Error(s))) => {
                    tracing::debug!(what = self.what, code = s.code, "watch: {}", s.message);
                    None
                }
                Some(Err(e)) => {
                    tracing::debug!(what = self.what, error = %e, "watch stream broke: resuming");
                    None
                }
                None => None,
            };
            let Some(object) = object else {
                // The stream ended: the next one starts where this one was.
                self.events = None;
                continue;
            };
            self.advance(&object);
            let key = key_of(&object);
            let now = (self.read)(&object);
            if self.seen.get(&key) != Some(&now) {
                self.seen.insert(key.clone(), now.clone());
                return Ok((key, Some(now)));
            }
        }
    }

    fn advance(&mut self, object: &K) {
        if let Some(v) = &object.meta().resource_version {
            self.version.clone_from(v);
        }
    }
}

/// `namespace/name`.
fn key_of<K: kube::Resource>(o: &K) -> String {
    let m = o.meta();
    format!(
        "{}/{}",
        m.namespace.as_deref().unwrap_or_default(),
        m.name.as_deref().unwrap_or_default()
    )
}

/// What we read of a Service (addresses that do not parse are left out:
/// the API server validates them).
pub fn read_service(s: &Service) -> ServiceInfo {
    let spec = s.spec.clone().unwrap_or_default();
    let ips = |list: Option<Vec<String>>| -> Vec<IpAddr> {
        list.unwrap_or_default()
            .iter()
            .filter_map(|a| a.parse().ok())
            .collect()
    };
    let cluster_ips = match spec.cluster_ips {
        Some(list) if !list.is_empty() => ips(Some(list)),
        _ => ips(spec.cluster_ip.map(|a| vec![a])),
    };
    let load_balancer_ips = s
        .status
        .as_ref()
        .and_then(|st| st.load_balancer.as_ref())
        .and_then(|lb| lb.ingress.as_ref())
        .map(|ingress| {
            ingress
                .iter()
                .filter_map(|i| i.ip.as_deref()?.parse().ok())
                .collect()
        })
        .unwrap_or_default();
    ServiceInfo {
        kind: spec.type_.unwrap_or_else(|| "ClusterIP".into()),
        cluster_ips,
        external_ips: ips(spec.external_ips),
        requested_load_balancer_ip: spec.load_balancer_ip.and_then(|a| a.parse().ok()),
        load_balancer_ips,
        external_local: spec.external_traffic_policy.as_deref() == Some("Local"),
    }
}

/// What we read of an Endpoints object.
pub fn read_endpoints(e: &Endpoints) -> EndpointsInfo {
    let ready_nodes = e
        .subsets
        .iter()
        .flatten()
        .flat_map(|s| s.addresses.iter().flatten())
        .filter_map(|a| a.node_name.clone())
        .collect();
    EndpointsInfo { ready_nodes }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_what_advertisement_needs() {
        let s: Service = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "web", "namespace": "shop"},
            "spec": {
                "type": "LoadBalancer",
                "clusterIP": "10.96.0.10",
                "clusterIPs": ["10.96.0.10", "fd00:96::10"],
                "externalIPs": ["203.0.113.7", "not-an-ip"],
                "loadBalancerIP": "198.51.100.9",
                "externalTrafficPolicy": "Local"
            },
            "status": {"loadBalancer": {"ingress": [{"ip": "198.51.100.9"}, {"hostname": "lb.example"}]}}
        }))
        .unwrap();
        assert_eq!(key_of(&s), "shop/web");
        let info = read_service(&s);
        assert_eq!(info.kind, "LoadBalancer");
        assert_eq!(
            info.cluster_ips,
            vec![
                "10.96.0.10".parse::<IpAddr>().unwrap(),
                "fd00:96::10".parse().unwrap()
            ]
        );
        assert_eq!(
            info.external_ips,
            vec!["203.0.113.7".parse::<IpAddr>().unwrap()]
        );
        assert_eq!(
            info.load_balancer_ips,
            vec!["198.51.100.9".parse::<IpAddr>().unwrap()]
        );
        assert!(info.external_local);

        let headless: Service = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "db", "namespace": "shop"},
            "spec": {"clusterIP": "None"}
        }))
        .unwrap();
        let info = read_service(&headless);
        assert_eq!(info.kind, "ClusterIP");
        assert!(info.cluster_ips.is_empty() && !info.external_local);

        let e: Endpoints = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "web", "namespace": "shop"},
            "subsets": [
                {"addresses": [{"ip": "10.244.1.5", "nodeName": "node1"}, {"ip": "10.244.2.5"}],
                 "notReadyAddresses": [{"ip": "10.244.3.5", "nodeName": "node3"}]},
                {"addresses": [{"ip": "10.244.2.6", "nodeName": "node2"}]}
            ]
        }))
        .unwrap();
        let ready: Vec<_> = read_endpoints(&e).ready_nodes.into_iter().collect();
        assert_eq!(ready, vec!["node1", "node2"], "ready ones with a node only");
    }
}
