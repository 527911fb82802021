//! RIB benchmarks: ingest of 100,000 prefixes from one peer (Adj-RIB-In,
//! Loc-RIB, decision, Adj-RIB-Out for one RR client, taking the out batches),
//! and the bytes the RIB holds per route, counted by a global allocator.
//!
//! Run: `cargo bench -p bgp-speaker --bench rib`.

use std::alloc::{GlobalAlloc, Layout, System};
use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::atomic::{AtomicIsize, Ordering};

use bgp_speaker::rib::best_path::PeerFacts;
use bgp_speaker::rib::export::{ExportClass, LocalFacts};
use bgp_speaker::rib::{Rib, RibPeer};
use bgp_speaker::{Afi, NextHop, PathAttrs, Prefix};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use ipnet::Ipv4Net;
use tortie_config::filter::{FilterAction, FilterRule, FilterRules, MatchOperator, PrefixMatch};

/// Counts live heap bytes.
struct Counting;

static LIVE: AtomicIsize = AtomicIsize::new(0);

// SAFETY: forwards to the system allocator, only adding a counter.
#[allow(unsafe_code)]
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        LIVE.fetch_add(l.size() as isize, Ordering::Relaxed);
        unsafe { System.alloc(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        LIVE.fetch_sub(l.size() as isize, Ordering::Relaxed);
        unsafe { System.dealloc(p, l) }
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, n: usize) -> *mut u8 {
        LIVE.fetch_add(n as isize - l.size() as isize, Ordering::Relaxed);
        unsafe { System.realloc(p, l, n) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

const N: u32 = 100_000;

fn peer(last: u8, client: bool) -> RibPeer {
    RibPeer::new(
        PeerFacts {
            address: IpAddr::V4(Ipv4Addr::new(172, 30, 0, last)),
            router_id: Ipv4Addr::new(10, 0, 0, last),
            ebgp: false,
        },
        64512,
        client,
        ExportClass {
            asn: 64512,
            ebgp: false,
            rr_client: client,
            next_hop_self: false,
            keep_next_hop: false,
            local_only: false,
            aggregates: false,
            policy: bgp_speaker::rib::policy::NO_POLICY,
            local_addr: IpAddr::V4(Ipv4Addr::new(172, 30, 0, 1)),
            local_link_local: None,
        },
        vec![Afi::Ipv4, Afi::Ipv6],
    )
}

fn prefixes() -> Vec<Prefix> {
    (0..N)
        .map(|i| Prefix::V4(Ipv4Net::new(Ipv4Addr::from(0x0b00_0000 + (i << 8)), 24).unwrap()))
        .collect()
}

fn attrs() -> PathAttrs {
    PathAttrs {
        local_pref: Some(100),
        ..PathAttrs::local(NextHop::V4(Ipv4Addr::new(172, 30, 0, 2)))
    }
}

/// A BGPFilter list of `n` rules that match none of [`prefixes`]
/// (`Reject In 192.x.y.0/L`, nine cidr lengths L from /16 to /24, each
/// taking lengths up to /28): every route is tried against all of them,
/// the worst case, and then gets the default.
fn rules(n: u32) -> FilterRules {
    let v4 = (0..n)
        .map(|i| {
            let len = 16 + (i % 9) as u8;
            let cidr = Ipv4Net::new(Ipv4Addr::from(0xc000_0000 + (i << 16)), len).unwrap();
            let mut m = PrefixMatch::new(cidr.into(), MatchOperator::In);
            m.max_len = 28;
            FilterRule {
                prefix: Some(m),
                from_peers: false,
                interface: None,
                action: FilterAction::Reject,
            }
        })
        .collect();
    FilterRules { v4, v6: Vec::new() }
}

/// Which peer has `rules` (100-rule filters): none, the generator on
/// import, the client on export.
#[derive(Clone, Copy, PartialEq)]
enum Filtered {
    No,
    Import,
    Export,
}

/// Ingest as the instance does: UPDATEs of 800 prefixes, a decision run
/// every few UPDATEs, out batches taken for the client.
fn ingest(prefixes: &[Prefix], with_client: bool) -> Rib {
    ingest_filtered(prefixes, with_client, Filtered::No)
}

fn ingest_filtered(prefixes: &[Prefix], with_client: bool, filtered: Filtered) -> Rib {
    let mut rib = Rib::new(LocalFacts {
        asn: 64512,
        router_id: Ipv4Addr::new(172, 30, 0, 1),
        cluster_id: Some(Ipv4Addr::new(172, 30, 0, 1)),
    });
    let (hundred, none) = (rules(100), FilterRules::default());
    let generator = match filtered {
        Filtered::Import => peer(2, true).filtered(&hundred, &none),
        _ => peer(2, true),
    };
    rib.peer_up(2, generator);
    if with_client {
        let client = match filtered {
            Filtered::Export => peer(3, true).filtered(&none, &hundred),
            _ => peer(3, true),
        };
        rib.peer_up(3, client);
    }
    for (i, chunk) in prefixes.chunks(800).enumerate() {
        rib.update(2, attrs(), chunk).unwrap();
        if i % 8 == 7 {
            black_box(rib.decide(true));
            while rib.skip_to_pending(3) {
                black_box(rib.take_out(3, 4096));
            }
        }
    }
    black_box(rib.decide(true));
    while rib.skip_to_pending(3) {
        black_box(rib.take_out(3, 4096));
    }
    rib
}

fn bench(c: &mut Criterion) {
    let p = prefixes();
    let mut g = c.benchmark_group("rib");
    g.sample_size(10);
    g.throughput(Throughput::Elements(u64::from(N)));
    g.bench_function("ingest 100k, no clients", |b| b.iter(|| ingest(&p, false)));
    g.bench_function("ingest 100k, 1 RR client", |b| b.iter(|| ingest(&p, true)));
    // Issue 13: a 100-rule BGPFilter on the generator's imports, and on
    // the client's exports, against the same without (target: 1.3x).
    g.bench_function("ingest 100k, 100-rule import filter", |b| {
        b.iter(|| ingest_filtered(&p, false, Filtered::Import))
    });
    g.bench_function("ingest 100k, 1 RR client, 100-rule export filter", |b| {
        b.iter(|| ingest_filtered(&p, true, Filtered::Export))
    });
    g.finish();

    for with_client in [false, true] {
        let before = LIVE.load(Ordering::Relaxed);
        let rib = ingest(&p, with_client);
        let bytes = LIVE.load(Ordering::Relaxed) - before;
        println!(
            "rib memory, 100k routes, {}: {} bytes, {:.0} bytes/route",
            if with_client {
                "1 RR client (Adj-RIB-Out too)"
            } else {
                "no clients"
            },
            bytes,
            bytes as f64 / f64::from(N)
        );
        drop(rib);
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
