//! The plugin binary driven through the CNI protocol (env + stdin) on
//! namespaces the tests create, against the file backend and a real etcd.

#[path = "../../ipam/tests/common/mod.rs"]
mod common;
mod support;

use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use common::{pool, Backend};
use serde_json::{json, Value};
use support::{host_link_exists, tcp_ask, tortie, Netns};
use tortie_config::resources::{BlockSpec, HandleSpec, WorkloadEndpointSpec};
use tortie_datastore::{StoreConfig, TypedStore};

static IDS: AtomicUsize = AtomicUsize::new(0);

/// A container id unique to this test run.
fn cid() -> String {
    format!(
        "c{}x{}",
        std::process::id(),
        IDS.fetch_add(1, Ordering::SeqCst)
    )
}

fn conf(store: &StoreConfig, extra: Value) -> Value {
    let mut c = json!({
        "cniVersion": "1.0.0",
        "name": "tnet",
        "type": "tortie",
        "nodeName": "node-a",
        "datastore": serde_json::to_value(store).unwrap(),
    });
    for (k, v) in extra.as_object().unwrap() {
        c[k] = v.clone();
    }
    c
}

fn env<'a>(cid: &'a str, ns: &'a str) -> Vec<(&'a str, &'a str)> {
    vec![
        ("CNI_CONTAINERID", cid),
        ("CNI_NETNS", ns),
        ("CNI_IFNAME", "eth0"),
        ("CNI_ARGS", "K8S_POD_NAMESPACE=default;K8S_POD_NAME=web"),
    ]
}

fn host_if(cid: &str) -> String {
    felix::endpoint::host_ifname(&format!("tnet.{cid}.eth0"))
}

/// ADD makes the pod reachable from the host via its /32, with felix's
/// host-side settings and the WorkloadEndpoint; CHECK passes; a retried
/// ADD gets the same address; DEL removes everything and is idempotent.
///
/// Each caller gives its own pool (`prefix` is its first two octets): the
/// tests share the host's routing table and run in parallel.
async fn add_check_del(b: Backend, prefix: &str) {
    let ns = Netns::new();
    let id = cid();
    let path = ns.path().display().to_string();
    let c = conf(&b.config, json!({}));
    let out = tortie("ADD", &env(&id, &path), &c);
    assert_eq!(out.status, 0, "{}", out.stdout);
    let addr = out.json["ips"][0]["address"].as_str().unwrap().to_owned();
    assert!(
        addr.starts_with(&format!("{prefix}.")) && addr.ends_with("/32"),
        "{addr}"
    );
    assert_eq!(out.json["interfaces"][1]["sandbox"], path.as_str());
    assert_eq!(out.json["routes"][0]["gw"], "169.254.1.1");
    let ip: IpAddr = addr.trim_end_matches("/32").parse().unwrap();

    // Pod side.
    assert!(ns.ip(&["addr", "show", "eth0"]).contains(&addr));
    let routes = ns.ip(&["route"]);
    assert!(
        routes.contains("default via 169.254.1.1 dev eth0") && routes.contains("onlink"),
        "{routes}"
    );
    assert!(ns
        .ip(&["neigh"])
        .contains("169.254.1.1 dev eth0 lladdr ee:ee:ee:ee:ee:ee PERMANENT"));
    // Host side, named and set up as felix does.
    let hif = host_if(&id);
    assert_eq!(out.json["interfaces"][0]["name"], hif.as_str());
    assert_eq!(out.json["interfaces"][0]["mac"], "ee:ee:ee:ee:ee:ee");
    let sys = |k: &str| std::fs::read_to_string(format!("/proc/sys/net/{k}")).unwrap();
    assert_eq!(sys(&format!("ipv4/conf/{hif}/proxy_arp")).trim(), "1");
    assert_eq!(sys(&format!("ipv4/neigh/{hif}/proxy_delay")).trim(), "0");
    let host_route = support::run(&["ip", "route", "show", &format!("{ip}/32")]);
    assert!(
        host_route.contains(&format!("dev {hif}")) && host_route.contains("proto 116"),
        "{host_route}"
    );
    // Reachable from the host via the /32.
    let server = ns.tcp_echo(7101, "pod-says-hi");
    assert_eq!(tcp_ask(SocketAddr::new(ip, 7101)).unwrap(), "pod-says-hi");
    server.join().unwrap();
    // The endpoint.
    let weps = b.store.list_typed::<WorkloadEndpointSpec>().await.unwrap();
    let (wep, _) = weps
        .iter()
        .find(|(w, _)| w.spec.container_id == id)
        .expect("WEP");
    assert_eq!(wep.spec.interface_name, hif);
    assert_eq!(wep.spec.ip_networks[0].to_string(), addr);
    assert_eq!(wep.metadata.namespace.as_deref(), Some("default"));
    assert_eq!(wep.spec.pod.as_deref(), Some("web"));

    let mut checked = c.clone();
    checked["prevResult"] = out.json.clone();
    let chk = tortie("CHECK", &env(&id, &path), &checked);
    assert_eq!(chk.status, 0, "{}", chk.stdout);

    let again = tortie("ADD", &env(&id, &path), &c);
    assert_eq!(again.status, 0, "{}", again.stdout);
    assert_eq!(
        again.json["ips"][0]["address"],
        addr.as_str(),
        "idempotent ADD"
    );

    let del = tortie("DEL", &env(&id, &path), &c);
    assert_eq!(del.status, 0, "{}", del.stdout);
    assert!(!host_link_exists(&hif));
    assert!(!ns.ip(&["link"]).contains("eth0"));
    assert!(b.store.list_typed::<HandleSpec>().await.unwrap().is_empty());
    assert!(b
        .store
        .list_typed::<WorkloadEndpointSpec>()
        .await
        .unwrap()
        .is_empty());
    let blocks = b.store.list_typed::<BlockSpec>().await.unwrap();
    assert!(blocks
        .iter()
        .all(|(b, _)| b.spec.allocations.iter().all(Option::is_none)));
    let del2 = tortie("DEL", &env(&id, &path), &c);
    assert_eq!(del2.status, 0, "DEL is idempotent: {}", del2.stdout);
    let chk = tortie("CHECK", &env(&id, &path), &checked);
    assert_eq!(chk.json["code"], 3, "CHECK after DEL: {}", chk.stdout);
}

#[tokio::test(flavor = "multi_thread")]
async fn add_check_del_file() {
    add_check_del(Backend::file(&[pool("p", "10.60.0.0/24", 26)]), "10.60").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn add_check_del_etcd() {
    if let Some(b) = Backend::etcd(&[pool("p", "10.70.0.0/24", 26)]).await {
        add_check_del(b, "10.70").await;
    }
}

/// DEL after the runtime already deleted the namespace: the pair went with
/// it; the address and endpoint are still freed.
#[tokio::test(flavor = "multi_thread")]
async fn del_when_netns_is_gone() {
    let b = Backend::file(&[pool("p", "10.61.0.0/24", 26)]);
    let c = conf(&b.config, json!({}));
    let id = cid();
    let ns = Netns::new();
    let path = ns.path().display().to_string();
    assert_eq!(tortie("ADD", &env(&id, &path), &c).status, 0);
    drop(ns);
    let out = tortie(
        "DEL",
        &[("CNI_CONTAINERID", &id), ("CNI_IFNAME", "eth0")],
        &c,
    );
    assert_eq!(out.status, 0, "{}", out.stdout);
    assert!(!host_link_exists(&host_if(&id)));
    assert!(b.store.list_typed::<HandleSpec>().await.unwrap().is_empty());
    assert!(b
        .store
        .list_typed::<WorkloadEndpointSpec>()
        .await
        .unwrap()
        .is_empty());
}

/// Each bad input gives a CNI error with the spec's code and a message
/// naming the problem, leaks no address, leaves no veth.
#[tokio::test(flavor = "multi_thread")]
async fn bad_input_gives_clear_errors_and_leaks_nothing() {
    let b = Backend::file(&[pool("tiny", "10.62.0.0/31", 31)]);
    let ns = Netns::new();
    let path = ns.path().display().to_string();
    let c = conf(&b.config, json!({}));
    let held = |b: &Backend| {
        let store = b.store.clone();
        async move { store.list_typed::<HandleSpec>().await.unwrap().len() }
    };

    // Malformed config.
    let id = cid();
    let out = support::cni_exec(
        env!("CARGO_BIN_EXE_tortie-cni"),
        "ADD",
        &env(&id, &path),
        &json!("{not json"),
    );
    assert_eq!(
        out.json["code"], 7,
        "a JSON string is not a config: {}",
        out.stdout
    );
    let out = tortie(
        "ADD",
        &env(&id, &path),
        &conf(&b.config, json!({"mtu": 10})),
    );
    assert_eq!(out.json["code"], 7);
    assert!(
        out.json["msg"].as_str().unwrap().contains("mtu: 10"),
        "{}",
        out.stdout
    );
    let out = tortie(
        "ADD",
        &env(&id, &path),
        &conf(&b.config, json!({"poolz": ["x"]})),
    );
    assert_eq!(out.json["code"], 2, "{}", out.stdout);
    assert!(out.stdout.contains("poolz"));

    // Unknown pool.
    let out = tortie(
        "ADD",
        &env(&id, &path),
        &conf(&b.config, json!({"pools": ["nope"]})),
    );
    assert_eq!(out.json["code"], 7, "{}", out.stdout);
    assert!(
        out.stdout
            .contains("\\\"nope\\\" does not exist (pools: tiny)"),
        "{}",
        out.stdout
    );

    // Missing netns path: refused before allocating.
    let out = tortie("ADD", &env(&id, "/run/netns/does-not-exist-tcni"), &c);
    assert_eq!(out.json["code"], 4, "{}", out.stdout);
    assert!(out
        .stdout
        .contains("CNI_NETNS=/run/netns/does-not-exist-tcni"));
    assert_eq!(held(&b).await, 0);
    assert!(!host_link_exists(&host_if(&id)));

    // eth0 already in the pod: the kernel refuses the pair; the address
    // ADD took is given back and no host end is left.
    support::run(&[
        "ip", "-n", &ns.name, "link", "add", "eth0", "type", "veth", "peer", "name", "other0",
    ]);
    let out = tortie("ADD", &env(&id, &path), &c);
    assert_eq!(out.json["code"], 101, "{}", out.stdout);
    assert!(
        out.stdout.contains("does eth0 already exist in the pod"),
        "{}",
        out.stdout
    );
    assert_eq!(held(&b).await, 0, "address released");
    assert!(!host_link_exists(&host_if(&id)), "no half-made veth");
    support::run(&["ip", "-n", &ns.name, "link", "del", "eth0"]);

    // Exhausted pool (two addresses): the third ADD names the pool.
    let nss: Vec<Netns> = (0..3).map(|_| Netns::new()).collect();
    let ids: Vec<String> = (0..3).map(|_| cid()).collect();
    for i in 0..2 {
        let p = nss[i].path().display().to_string();
        assert_eq!(tortie("ADD", &env(&ids[i], &p), &c).status, 0);
    }
    let p2 = nss[2].path().display().to_string();
    let out = tortie("ADD", &env(&ids[2], &p2), &c);
    assert_eq!(out.json["code"], 100, "{}", out.stdout);
    assert!(
        out.stdout
            .contains("IP pool tiny (10.62.0.0/31) is exhausted"),
        "{}",
        out.stdout
    );
    assert_eq!(held(&b).await, 2);
    assert!(!host_link_exists(&host_if(&ids[2])));
    for i in 0..2 {
        let p = nss[i].path().display().to_string();
        assert_eq!(tortie("DEL", &env(&ids[i], &p), &c).status, 0);
    }

    // Corrupt state file: a clear error naming the file, no veth, and the
    // file is not overwritten.
    let blocks = b.dir().join("state/blocks.json");
    std::fs::write(&blocks, "{ this is not json").unwrap();
    let out = tortie("ADD", &env(&id, &path), &c);
    assert_eq!(out.json["code"], 5, "{}", out.stdout);
    assert!(out.stdout.contains("blocks.json"), "{}", out.stdout);
    assert!(!host_link_exists(&host_if(&id)));
    assert_eq!(
        std::fs::read_to_string(&blocks).unwrap(),
        "{ this is not json"
    );

    // Unreachable datastore: "try again later", quickly.
    let dead = StoreConfig::Etcd {
        endpoints: vec![format!("http://127.0.0.1:{}", common::free_port())],
        prefix: "/x".into(),
    };
    let start = Instant::now();
    let out = tortie("ADD", &env(&id, &path), &conf(&dead, json!({})));
    assert_eq!(out.json["code"], 11, "{}", out.stdout);
    assert!(out.stdout.contains("datastore"), "{}", out.stdout);
    assert!(
        start.elapsed() < Duration::from_secs(8),
        "{:?}",
        start.elapsed()
    );
    assert!(!host_link_exists(&host_if(&id)));
}

/// VERSION, STATUS (ok / no pool / unreachable), GC of attachments the
/// runtime no longer lists.
#[tokio::test(flavor = "multi_thread")]
async fn version_status_gc() {
    let out = tortie("VERSION", &[], &json!({"cniVersion": "1.1.0"}));
    assert_eq!(out.json["supportedVersions"], json!(["1.0.0", "1.1.0"]));
    let b = Backend::file(&[pool("p", "10.63.0.0/24", 26)]);
    let mut c = conf(&b.config, json!({}));
    c["cniVersion"] = "1.1.0".into();
    assert_eq!(tortie("STATUS", &[], &c).status, 0);
    let empty = Backend::file(&[]);
    let out = tortie("STATUS", &[], &conf(&empty.config, json!({})));
    assert_eq!(out.json["code"], 50, "{}", out.stdout);
    let dead = StoreConfig::Etcd {
        endpoints: vec![format!("http://127.0.0.1:{}", common::free_port())],
        prefix: "/x".into(),
    };
    assert_eq!(
        tortie("STATUS", &[], &conf(&dead, json!({}))).json["code"],
        50
    );

    let (keep, gone) = (cid(), cid());
    let (ns1, ns2) = (Netns::new(), Netns::new());
    let p1 = ns1.path().display().to_string();
    let p2 = ns2.path().display().to_string();
    assert_eq!(tortie("ADD", &env(&keep, &p1), &c).status, 0);
    assert_eq!(tortie("ADD", &env(&gone, &p2), &c).status, 0);
    c["cni.dev/valid-attachments"] = json!([{"containerID": keep, "ifname": "eth0"}]);
    let out = tortie("GC", &[], &c);
    assert_eq!(out.status, 0, "{}", out.stdout);
    assert!(host_link_exists(&host_if(&keep)));
    assert!(!host_link_exists(&host_if(&gone)));
    let handles = b.store.list_typed::<HandleSpec>().await.unwrap();
    assert_eq!(handles.len(), 1);
    assert_eq!(handles[0].0.spec.handle_id, format!("tnet.{keep}.eth0"));
    let weps = b.store.list_typed::<WorkloadEndpointSpec>().await.unwrap();
    assert_eq!(weps.len(), 1);
    assert_eq!(weps[0].0.spec.container_id, keep);
    c.as_object_mut()
        .unwrap()
        .remove("cni.dev/valid-attachments");
    assert_eq!(tortie("DEL", &env(&keep, &p1), &c).status, 0);
}

/// Dual stack: a /32 and a /128 (usable at once: no DAD), an IPv6 default
/// route via the host end's link-local address, reachable over IPv6.
#[tokio::test(flavor = "multi_thread")]
async fn dual_stack_add() {
    let b = Backend::file(&[
        pool("v4", "10.68.0.0/24", 26),
        pool("v6", "fd00:68::/64", 122),
    ]);
    let c = conf(&b.config, json!({"assignIPv6": true}));
    let ns = Netns::new();
    let path = ns.path().display().to_string();
    let id = cid();
    let out = tortie("ADD", &env(&id, &path), &c);
    assert_eq!(out.status, 0, "{}", out.stdout);
    let v6 = out.json["ips"][1]["address"].as_str().unwrap().to_owned();
    assert!(v6.starts_with("fd00:68::") && v6.ends_with("/128"), "{v6}");
    assert_eq!(out.json["routes"][1]["gw"], "fe80::ecee:eeff:feee:eeee");
    let addrs = ns.ip(&["-6", "addr", "show", "eth0"]);
    let line = addrs.lines().find(|l| l.contains(&v6)).expect("v6 address");
    assert!(!line.contains("tentative"), "{line}");
    assert!(ns
        .ip(&["-6", "route"])
        .contains("default via fe80::ecee:eeff:feee:eeee dev eth0"));
    let ip: IpAddr = v6.trim_end_matches("/128").parse().unwrap();
    let server = ns.tcp_echo(7103, "v6-hi");
    assert_eq!(tcp_ask(SocketAddr::new(ip, 7103)).unwrap(), "v6-hi");
    server.join().unwrap();
    assert_eq!(tortie("DEL", &env(&id, &path), &c).status, 0);
}

/// 20 plugin processes ADD at once on the file backend (one directory,
/// shared by flock): 20 distinct addresses; then 20 concurrent DELs free
/// them all.
#[tokio::test(flavor = "multi_thread")]
async fn concurrent_plugin_processes() {
    let b = Backend::file(&[pool("p", "10.71.0.0/24", 28)]);
    let c = conf(&b.config, json!({}));
    let nss: Vec<Netns> = (0..20).map(|_| Netns::new()).collect();
    let ids: Vec<String> = (0..20).map(|_| cid()).collect();
    let adds: Vec<_> = nss
        .iter()
        .zip(&ids)
        .map(|(ns, id)| {
            let (path, id, c) = (ns.path().display().to_string(), id.clone(), c.clone());
            std::thread::spawn(move || tortie("ADD", &env(&id, &path), &c))
        })
        .collect();
    let mut seen = std::collections::BTreeSet::new();
    for t in adds {
        let out = t.join().unwrap();
        assert_eq!(out.status, 0, "{}", out.stdout);
        let a = out.json["ips"][0]["address"].as_str().unwrap().to_owned();
        assert!(seen.insert(a.clone()), "duplicate {a}");
    }
    assert_eq!(seen.len(), 20);
    let dels: Vec<_> = ids
        .iter()
        .map(|id| {
            let (id, c) = (id.clone(), c.clone());
            std::thread::spawn(move || {
                tortie(
                    "DEL",
                    &[("CNI_CONTAINERID", &id), ("CNI_IFNAME", "eth0")],
                    &c,
                )
            })
        })
        .collect();
    for t in dels {
        assert_eq!(t.join().unwrap().status, 0);
    }
    assert!(b.store.list_typed::<HandleSpec>().await.unwrap().is_empty());
    assert!(ids.iter().all(|id| !host_link_exists(&host_if(id))));
}

/// Requested addresses: `runtimeConfig.ips` (what `podman --ip` sends) and
/// `CNI_ARGS IP=`. The node claims the block holding the address; a second
/// pod asking for the same address gets code 50 naming the holder, and
/// nothing leaks; one outside the pools gets code 7.
#[tokio::test(flavor = "multi_thread")]
async fn requested_addresses() {
    let b = Backend::file(&[pool("v4", "10.69.0.0/24", 26)]);
    let ns = Netns::new();
    let path = ns.path().display().to_string();
    let id = cid();
    let c = conf(
        &b.config,
        json!({"runtimeConfig": {"ips": ["10.69.0.77/24"]}}),
    );
    let out = tortie("ADD", &env(&id, &path), &c);
    assert_eq!(out.status, 0, "{}", out.stdout);
    assert_eq!(out.json["ips"][0]["address"], "10.69.0.77/32");
    let (block, _) = b
        .store
        .get_typed::<BlockSpec>("10-69-0-64-26")
        .await
        .unwrap()
        .expect("the block holding the address, claimed");
    assert_eq!(block.spec.affinity.as_deref(), Some("host:node-a"));
    assert!(ns.ip(&["addr", "show", "eth0"]).contains("10.69.0.77/32"));

    // Taken: a clear error, nothing left behind.
    let ns2 = Netns::new();
    let path2 = ns2.path().display().to_string();
    let id2 = cid();
    let mut e2 = env(&id2, &path2);
    e2.retain(|(k, _)| *k != "CNI_ARGS");
    e2.push(("CNI_ARGS", "IP=10.69.0.77"));
    let out = tortie("ADD", &e2, &conf(&b.config, json!({})));
    assert_eq!(out.status, 1, "{}", out.stdout);
    assert_eq!(out.json["code"], 50, "{}", out.stdout);
    let msg = out.json["msg"].as_str().unwrap_or("");
    assert!(
        msg.contains("address 10.69.0.77 is in use (held by tnet."),
        "{msg}"
    );
    assert!(!host_link_exists(&host_if(&id2)));
    // Outside the pools.
    let mut e3 = env(&id2, &path2);
    e3.retain(|(k, _)| *k != "CNI_ARGS");
    e3.push(("CNI_ARGS", "IP=192.0.2.9"));
    let out = tortie("ADD", &e3, &conf(&b.config, json!({})));
    assert_eq!(out.json["code"], 7, "{}", out.stdout);
    assert!(
        out.stdout.contains("address 192.0.2.9 is in no IP pool"),
        "{}",
        out.stdout
    );

    assert_eq!(tortie("DEL", &env(&id, &path), &c).status, 0);
    // Freed: the second pod may have it now.
    let out = tortie("ADD", &e2, &conf(&b.config, json!({})));
    assert_eq!(out.status, 0, "{}", out.stdout);
    assert_eq!(out.json["ips"][0]["address"], "10.69.0.77/32");
    assert_eq!(tortie("DEL", &e2, &conf(&b.config, json!({}))).status, 0);
}
