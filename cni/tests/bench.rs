//! Benchmarks (ignored by default; they print a table for
//! docs/benchmarks.md, and fail if any ADD, DEL or allocation fails or an
//! address is handed out twice):
//!
//! ```text
//! cargo test --release -p tortie-cni --test bench -- --ignored --nocapture
//! ```
//!
//! - CNI ADD and DEL latency (the plugin binary, as a runtime runs it, on
//!   fresh namespaces), p50/p99, on the file backend and a real etcd.
//! - IPAM allocation throughput with 100 concurrent callers (in process).

#[path = "../../ipam/tests/common/mod.rs"]
mod common;
mod support;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{pool, Backend};
use serde_json::json;
use support::{tortie, Netns};
use tortie_ipam::{Assigned, Family, Ipam, IpamConfig, Request};

const ROUNDS: usize = 100;

fn pct(sorted: &[Duration], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i].as_secs_f64() * 1000.0
}

/// ADD then DEL `ROUNDS` times; (add p50, add p99, del p50, del p99) in ms.
fn add_del_latency(b: &Backend) -> (f64, f64, f64, f64) {
    let conf = json!({
        "cniVersion": "1.0.0", "name": "bench", "type": "tortie", "nodeName": "node-a",
        "datastore": serde_json::to_value(&b.config).unwrap(),
    });
    let (mut adds, mut dels) = (Vec::new(), Vec::new());
    for i in 0..ROUNDS {
        let ns = Netns::new();
        let path = ns.path().display().to_string();
        let cid = format!("b{}x{i}", std::process::id());
        let env = [
            ("CNI_CONTAINERID", cid.as_str()),
            ("CNI_NETNS", path.as_str()),
            ("CNI_IFNAME", "eth0"),
        ];
        let t = Instant::now();
        let out = tortie("ADD", &env, &conf);
        adds.push(t.elapsed());
        assert_eq!(out.status, 0, "{}", out.stdout);
        let t = Instant::now();
        let out = tortie("DEL", &env, &conf);
        dels.push(t.elapsed());
        assert_eq!(out.status, 0, "{}", out.stdout);
    }
    adds.sort();
    dels.sort();
    (
        pct(&adds, 0.5),
        pct(&adds, 0.99),
        pct(&dels, 0.5),
        pct(&dels, 0.99),
    )
}

/// Adds the addresses of `got` to `seen`; fails on one handed out before.
fn record_once(seen: &mut std::collections::BTreeSet<std::net::IpAddr>, got: Vec<Assigned>) {
    for a in got {
        assert!(seen.insert(a.address), "{} handed out twice", a.address);
    }
}

/// 100 concurrent callers, 10 allocations each, over 4 nodes: addresses/s.
/// Every address is handed out once.
async fn throughput(b: &Backend) -> f64 {
    let ipam = Arc::new(Ipam::new(b.store.clone(), IpamConfig::default()));
    let t = Instant::now();
    let tasks: Vec<_> = (0..100)
        .map(|c| {
            let ipam = ipam.clone();
            tokio::spawn(async move {
                let mut got = Vec::new();
                for i in 0..10 {
                    let req = Request {
                        handle_id: format!("bench.t{c}-{i}.eth0"),
                        node: format!("node-{}", c % 4),
                        pools: Vec::new(),
                        families: vec![Family::V4],
                        attributes: BTreeMap::new(),
                    };
                    got.extend(ipam.allocate(&req).await.expect("allocate"));
                }
                got
            })
        })
        .collect();
    let mut addresses = std::collections::BTreeSet::new();
    for task in tasks {
        record_once(&mut addresses, task.await.unwrap());
    }
    let rate = 1000.0 / t.elapsed().as_secs_f64();
    assert_eq!(addresses.len(), 1000);
    rate
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "benchmark: run with --ignored --nocapture (release)"]
async fn cni_and_ipam_benchmark() {
    let pools = [pool("p", "10.66.0.0/16", 26)];
    let mut rows = vec![("file", Backend::file(&pools))];
    if let Some(e) = Backend::etcd(&pools).await {
        rows.push(("etcd", e));
    }
    println!("| backend | ADD p50 | ADD p99 | DEL p50 | DEL p99 | allocations/s (100 callers) |");
    println!("|---|---|---|---|---|---|");
    for (name, b) in &rows {
        let (a50, a99, d50, d99) = add_del_latency(b);
        let tput = throughput(b).await;
        println!("| {name} | {a50:.1} ms | {a99:.1} ms | {d50:.1} ms | {d99:.1} ms | {tput:.0} |");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "benchmark: run with --ignored --nocapture (release)"]
async fn sequential_file_allocations() {
    let b = Backend::file(&[pool("p", "10.67.0.0/16", 26)]);
    let ipam = Ipam::new(b.store.clone(), IpamConfig::default());
    let t = Instant::now();
    let mut addresses = std::collections::BTreeSet::new();
    for i in 0..200 {
        let req = Request {
            handle_id: format!("seq.{i}.eth0"),
            node: "node-a".into(),
            pools: Vec::new(),
            families: vec![Family::V4],
            attributes: BTreeMap::new(),
        };
        record_once(&mut addresses, ipam.allocate(&req).await.unwrap());
    }
    let rate = 200.0 / t.elapsed().as_secs_f64();
    assert_eq!(addresses.len(), 200);
    println!("sequential: {rate:.0}/s");
}
