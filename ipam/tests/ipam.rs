//! IPAM against the real backends: the file store on a temp dir and a real
//! etcd on loopback (every scenario), and a real Kubernetes API server
//! (the scenarios that do not check a batch's single write).

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use common::{pool, Backend};
use tortie_config::resources::{
    BlockAffinitySpec, BlockSpec, HandleSpec, IPPool, Key, Kind, Resource,
};
use tortie_datastore::{
    Action, AnyStore, Datastore, Listing, Op, StoreError, TypedStore, Versioned, Watch,
};
use tortie_ipam::{Family, Ipam, IpamConfig, IpamError, Request};

fn req(handle: &str, node: &str) -> Request {
    Request {
        handle_id: handle.into(),
        node: node.into(),
        pools: Vec::new(),
        families: vec![Family::V4],
        attributes: BTreeMap::new(),
    }
}

/// Runs `$scenario(store)` on a file backend and on etcd, with `$pools`.
macro_rules! both {
    ($file:ident, $etcd:ident, $scenario:ident, $pools:expr) => {
        #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
        async fn $file() {
            let b = Backend::file(&$pools);
            $scenario(b.store.clone()).await;
        }
        #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
        async fn $etcd() {
            let Some(b) = Backend::etcd(&$pools).await else {
                return;
            };
            $scenario(b.store.clone()).await;
        }
    };
}

/// Runs `$scenario(store)` on a real Kubernetes API server too (the
/// scenarios whose checks hold there: not those of a batch's one write,
/// which the Kubernetes API does not have).
macro_rules! on_kube {
    ($kube:ident, $scenario:ident, $pools:expr) => {
        #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
        async fn $kube() {
            let Some(b) = Backend::kube(&$pools).await else {
                return;
            };
            $scenario(b.store.clone()).await;
        }
    };
}

on_kube!(concurrent_one_node_kube, concurrent_one_node, big());
on_kube!(concurrent_many_nodes_kube, concurrent_many_nodes, big());
on_kube!(retry_and_release_kube, retry_and_release, big());
on_kube!(borrowing_kube, borrowing, tiny());
on_kube!(exhausted_kube, exhausted, tiny());
on_kube!(gc_kube, gc_and_empty_blocks, big());

fn big() -> Vec<IPPool> {
    vec![pool("big", "10.10.0.0/16", 26)]
}

fn tiny() -> Vec<IPPool> {
    vec![pool("tiny", "10.20.0.0/30", 31)]
}

/// 100 concurrent allocations on one node: 100 distinct addresses, all in
/// blocks affine to that node, no borrowing.
async fn concurrent_one_node(store: AnyStore) {
    let ipam = Arc::new(Ipam::new(store, IpamConfig::default()));
    let tasks: Vec<_> = (0..100)
        .map(|i| {
            let ipam = ipam.clone();
            tokio::spawn(async move { ipam.allocate(&req(&format!("net.c{i}.eth0"), "a")).await })
        })
        .collect();
    let mut seen = BTreeSet::new();
    for t in tasks {
        let got = t.await.unwrap().expect("allocate");
        assert_eq!(got.len(), 1);
        assert!(!got[0].borrowed, "{got:?}");
        assert!(seen.insert(got[0].address), "duplicate {}", got[0].address);
    }
    assert_eq!(seen.len(), 100);
    let blocks = ipam.store().list_typed::<BlockSpec>().await.unwrap();
    assert!(blocks.len() >= 2, "100 addresses need two /26 blocks");
    let held: usize = blocks
        .iter()
        .map(|(b, _)| b.spec.allocations.iter().flatten().count())
        .sum();
    assert_eq!(held, 100, "the blocks record exactly the 100 allocations");
    assert_eq!(ipam.handles_in_use().await.unwrap().len(), 100);
}
both!(
    concurrent_one_node_file,
    concurrent_one_node_etcd,
    concurrent_one_node,
    big()
);

/// A node's first allocation claims a block with the address already in
/// it: one block write, before the affinity.
async fn claim_in_one_write(store: AnyStore) {
    let ipam = Ipam::new(store.clone(), IpamConfig::default());
    let got = ipam.allocate(&req("net.f1.eth0", "f")).await.unwrap();
    let block = got[0].block;
    let name = BlockSpec::name_for(&block);
    let (b, block_rev) = store.get_typed::<BlockSpec>(&name).await.unwrap().unwrap();
    assert_eq!(b.spec.affinity.as_deref(), Some("host:f"));
    assert_eq!(
        tortie_ipam::block::held_by(&b.spec, "net.f1.eth0"),
        vec![got[0].address]
    );
    assert_claimed_in_one_write(&store, "f", block, block_rev).await;
}

/// The block `block` (at `block_rev`) has not changed since `node`'s
/// claim created it, and its BlockAffinity came in the same write (one
/// batch: the same revision on etcd, the next one in the file store).
async fn assert_claimed_in_one_write(
    store: &AnyStore,
    node: &str,
    block: ipnet::IpNet,
    block_rev: u64,
) {
    let affinity = store
        .get(&Key::new(
            Kind::BlockAffinity,
            tortie_ipam::affinity_name(node, &block),
        ))
        .await
        .unwrap()
        .expect("the claim's BlockAffinity");
    assert!(
        affinity.revision == block_rev
            || (matches!(store, AnyStore::File(_)) && affinity.revision == block_rev + 1),
        "block and affinity in one write (block at {block_rev}, affinity at {})",
        affinity.revision
    );
    // The block's whole history: created once, never written again.
    let name = BlockSpec::name_for(&block);
    let mut w = store.watch(Kind::Block, 0).await.unwrap();
    let mut seen = Vec::new();
    while let Ok(Some(e)) = tokio::time::timeout(Duration::from_millis(300), w.next()).await {
        let e = e.unwrap();
        if e.key.name == name {
            seen.push((e.action, e.revision));
        }
    }
    assert_eq!(
        seen,
        [(Action::Created, block_rev)],
        "block {name}: one write"
    );
}
both!(
    claim_in_one_write_file,
    claim_in_one_write_etcd,
    claim_in_one_write,
    big()
);

/// 100 concurrent allocations over 4 nodes: no duplicate, each node only
/// uses its own blocks, and each block has one owner.
async fn concurrent_many_nodes(store: AnyStore) {
    let ipam = Arc::new(Ipam::new(store, IpamConfig::default()));
    let tasks: Vec<_> = (0..100)
        .map(|i| {
            let ipam = ipam.clone();
            let node = format!("node-{}", i % 4);
            tokio::spawn(async move {
                let got = ipam.allocate(&req(&format!("net.m{i}.eth0"), &node)).await;
                (node, got)
            })
        })
        .collect();
    let mut seen = BTreeSet::new();
    for t in tasks {
        let (node, got) = t.await.unwrap();
        let got = got.expect("allocate");
        assert!(!got[0].borrowed, "{node}: {got:?}");
        assert!(seen.insert(got[0].address), "duplicate {}", got[0].address);
    }
    let blocks = ipam.store().list_typed::<BlockSpec>().await.unwrap();
    let affinities = ipam
        .store()
        .list_typed::<BlockAffinitySpec>()
        .await
        .unwrap();
    assert_eq!(blocks.len(), affinities.len(), "one affinity per block");
    for (a, _) in &affinities {
        let b = blocks
            .iter()
            .find(|(b, _)| b.spec.cidr == a.spec.cidr)
            .unwrap();
        assert_eq!(
            b.0.spec.affinity.as_deref(),
            Some(&*format!("host:{}", a.spec.node))
        );
    }
}
both!(
    concurrent_many_nodes_file,
    concurrent_many_nodes_etcd,
    concurrent_many_nodes,
    big()
);

/// A retried allocation returns the same address; release frees exactly
/// that handle and is idempotent.
async fn retry_and_release(store: AnyStore) {
    let ipam = Ipam::new(store, IpamConfig::default());
    let first = ipam.allocate(&req("net.x.eth0", "a")).await.unwrap();
    let other = ipam.allocate(&req("net.y.eth0", "a")).await.unwrap();
    let again = ipam.allocate(&req("net.x.eth0", "a")).await.unwrap();
    assert_eq!(first, again, "ADD retried gets the same address");
    let handle = ipam
        .store()
        .get_typed::<HandleSpec>("net.x.eth0")
        .await
        .unwrap()
        .expect("handle object");
    assert_eq!(
        handle.0.spec.block.keys().collect::<Vec<_>>(),
        vec![&first[0].block.to_string()]
    );
    let freed = ipam.release("net.x.eth0").await.unwrap();
    assert_eq!(freed, vec![first[0].address]);
    assert!(ipam
        .store()
        .get(&Key::new(Kind::Handle, "net.x.eth0"))
        .await
        .unwrap()
        .is_none());
    assert_eq!(
        ipam.release("net.x.eth0").await.unwrap(),
        Vec::<std::net::IpAddr>::new(),
        "idempotent"
    );
    let in_use = ipam.handles_in_use().await.unwrap();
    assert_eq!(in_use, BTreeSet::from(["net.y.eth0".to_string()]));
    assert_ne!(first[0].address, other[0].address);
}
both!(
    retry_and_release_file,
    retry_and_release_etcd,
    retry_and_release,
    big()
);

/// Two blocks of two: node a and b claim one each; c has none left and
/// borrows; with strict affinity c gets an exhausted error naming the pool.
async fn borrowing(store: AnyStore) {
    let ipam = Ipam::new(store.clone(), IpamConfig::default());
    let a = ipam.allocate(&req("net.a1.eth0", "a")).await.unwrap();
    let b = ipam.allocate(&req("net.b1.eth0", "b")).await.unwrap();
    assert_ne!(a[0].block, b[0].block);
    let strict = Ipam::new(
        store,
        IpamConfig {
            strict_affinity: true,
            ..IpamConfig::default()
        },
    );
    let e = strict.allocate(&req("net.c1.eth0", "c")).await.unwrap_err();
    assert!(
        matches!(e, IpamError::Exhausted { strict: true, .. }),
        "{e}"
    );
    assert!(e.to_string().contains("tiny (10.20.0.0/30)"), "{e}");
    assert!(e.to_string().contains("strictAffinity"), "{e}");
    assert!(
        strict.handles_in_use().await.unwrap().len() == 2,
        "nothing leaked"
    );
    let c = ipam.allocate(&req("net.c1.eth0", "c")).await.unwrap();
    assert!(c[0].borrowed, "{c:?}");
    assert!(c[0].block == a[0].block || c[0].block == b[0].block);
}
both!(borrowing_file, borrowing_etcd, borrowing, tiny());

/// The pool runs out: the error names the pool and nothing is allocated
/// for the failed request; a release makes room again.
async fn exhausted(store: AnyStore) {
    let ipam = Ipam::new(store, IpamConfig::default());
    for i in 0..4 {
        ipam.allocate(&req(&format!("net.e{i}.eth0"), "a"))
            .await
            .unwrap();
    }
    let e = ipam.allocate(&req("net.e9.eth0", "a")).await.unwrap_err();
    let text = e.to_string();
    assert!(
        text.contains("IPv4 IP pool tiny (10.20.0.0/30) is exhausted"),
        "{text}"
    );
    assert!(ipam
        .store()
        .get(&Key::new(Kind::Handle, "net.e9.eth0"))
        .await
        .unwrap()
        .is_none());
    let mut r = req("net.e9.eth0", "a");
    r.pools = vec!["nope".into()];
    let e = ipam.allocate(&r).await.unwrap_err();
    assert!(
        e.to_string()
            .contains("\"nope\" does not exist (pools: tiny)"),
        "{e}"
    );
    ipam.release("net.e2.eth0").await.unwrap();
    ipam.allocate(&req("net.e9.eth0", "a")).await.unwrap();
}
both!(exhausted_file, exhausted_etcd, exhausted, tiny());

/// GC frees an allocation whose handle object is gone (an ADD that
/// crashed between its two writes), keeps the others; empty blocks are
/// released only after the grace.
async fn gc_and_empty_blocks(store: AnyStore) {
    let cfg = IpamConfig {
        orphan_grace: Duration::ZERO,
        ..IpamConfig::default()
    };
    let ipam = Ipam::new(store.clone(), cfg.clone());
    let kept = ipam.allocate(&req("net.k.eth0", "a")).await.unwrap();
    let lost = ipam.allocate(&req("net.l.eth0", "a")).await.unwrap();
    store
        .delete(&Key::new(Kind::Handle, "net.l.eth0"), None)
        .await
        .unwrap();
    let graceful = Ipam::new(store.clone(), IpamConfig::default());
    assert!(
        graceful.gc().await.unwrap().is_empty(),
        "young orphans are left alone"
    );
    assert_eq!(ipam.gc().await.unwrap(), vec![lost[0].address]);
    assert_eq!(
        ipam.handles_in_use().await.unwrap(),
        BTreeSet::from(["net.k.eth0".to_string()])
    );
    assert!(ipam.gc().await.unwrap().is_empty());

    ipam.release("net.k.eth0").await.unwrap();
    assert_eq!(
        graceful.release_empty_blocks(None).await.unwrap(),
        vec![],
        "inside the grace"
    );
    let now = Ipam::new(
        store.clone(),
        IpamConfig {
            empty_block_grace: Duration::ZERO,
            ..cfg
        },
    );
    assert_eq!(
        now.release_empty_blocks(Some("b")).await.unwrap(),
        vec![],
        "not b's"
    );
    assert_eq!(
        now.release_empty_blocks(Some("a")).await.unwrap(),
        vec![kept[0].block]
    );
    assert!(store.list_typed::<BlockSpec>().await.unwrap().is_empty());
    assert!(store
        .list_typed::<BlockAffinitySpec>()
        .await
        .unwrap()
        .is_empty());
}
both!(gc_file, gc_etcd, gc_and_empty_blocks, big());

/// Dual stack: one address per family, from the pool of each family.
async fn dual_stack(store: AnyStore) {
    let ipam = Ipam::new(store, IpamConfig::default());
    let mut r = req("net.d.eth0", "a");
    r.families = vec![Family::V4, Family::V6];
    let got = ipam.allocate(&r).await.unwrap();
    assert_eq!(got.len(), 2);
    assert!(
        got[0].address.is_ipv4() && got[1].address.is_ipv6(),
        "{got:?}"
    );
    assert_eq!(got[1].block.prefix_len(), 122);
    assert_eq!(ipam.release("net.d.eth0").await.unwrap().len(), 2);
}
both!(dual_stack_file, dual_stack_etcd, dual_stack, {
    vec![
        pool("v4", "10.30.0.0/24", 26),
        pool("v6", "fd00:30::/64", 122),
    ]
});

/// A crash between the block write and the handle write leaves an
/// allocation without a handle: the retried ADD gets the same address back
/// and writes the missing handle.
async fn crash_between_writes(store: AnyStore) {
    let ipam = Ipam::new(store.clone(), IpamConfig::default());
    let first = ipam.allocate(&req("net.r.eth0", "a")).await.unwrap();
    store
        .delete(&Key::new(Kind::Handle, "net.r.eth0"), None)
        .await
        .unwrap();
    let again = ipam.allocate(&req("net.r.eth0", "a")).await.unwrap();
    assert_eq!(first, again);
    assert!(store
        .get(&Key::new(Kind::Handle, "net.r.eth0"))
        .await
        .unwrap()
        .is_some());
    assert_eq!(
        ipam.release("net.r.eth0").await.unwrap(),
        vec![first[0].address]
    );
}
both!(
    crash_repair_file,
    crash_repair_etcd,
    crash_between_writes,
    big()
);

/// Requested addresses: a free block is claimed for the node; an address
/// of another node's block is borrowed; an address in use names its
/// holder; one outside every pool names the pools; asking again with the
/// same handle gives the same address; a release frees it.
async fn requested(store: AnyStore) {
    let ipam = Ipam::new(store.clone(), IpamConfig::default());
    let ip = |s: &str| s.parse::<std::net::IpAddr>().unwrap();
    // 1. Nobody has 10.10.3.0/26: node a claims it.
    let a = ipam
        .allocate_address(&req("net.a1.eth0", "a"), ip("10.10.3.7"))
        .await
        .unwrap();
    assert_eq!(a.address, ip("10.10.3.7"));
    assert_eq!(a.block.to_string(), "10.10.3.0/26");
    assert!(!a.borrowed);
    let (b, _) = store
        .get_typed::<BlockSpec>("10-10-3-0-26")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(b.spec.affinity.as_deref(), Some("host:a"));
    let block_rev = store
        .get(&Key::new(Kind::Block, "10-10-3-0-26"))
        .await
        .unwrap()
        .unwrap()
        .revision;
    // The claim and the allocation are one write.
    assert_claimed_in_one_write(&store, "a", "10.10.3.0/26".parse().unwrap(), block_rev).await;
    // Idempotent.
    let again = ipam
        .allocate_address(&req("net.a1.eth0", "a"), ip("10.10.3.7"))
        .await
        .unwrap();
    assert_eq!(again, a);
    // 2. Node b asks for an address of a's block: borrowed.
    let b = ipam
        .allocate_address(&req("net.b1.eth0", "b"), ip("10.10.3.9"))
        .await
        .unwrap();
    assert!(b.borrowed, "{b:?}");
    // 3. Taken.
    let e = ipam
        .allocate_address(&req("net.c1.eth0", "c"), ip("10.10.3.7"))
        .await
        .unwrap_err();
    assert!(matches!(e, IpamError::AddressInUse { .. }), "{e}");
    assert!(e.to_string().contains("held by net.a1.eth0"), "{e}");
    // 4. Outside the pools.
    let e = ipam
        .allocate_address(&req("net.c1.eth0", "c"), ip("192.0.2.1"))
        .await
        .unwrap_err();
    assert!(
        e.to_string()
            .starts_with("address 192.0.2.1 is in no IP pool (pools: big (10.10.0.0/16))"),
        "{e}"
    );
    // 5. Released, then another handle may have it; automatic allocation
    //    never hands out a requested address twice.
    ipam.release("net.a1.eth0").await.unwrap();
    let c = ipam
        .allocate_address(&req("net.c1.eth0", "c"), ip("10.10.3.7"))
        .await
        .unwrap();
    assert!(c.borrowed);
    for i in 0..62 {
        let got = ipam
            .allocate(&req(&format!("net.x{i}.eth0"), "a"))
            .await
            .unwrap();
        assert!(got[0].address != ip("10.10.3.7") && got[0].address != ip("10.10.3.9"));
    }
}
both!(requested_file, requested_etcd, requested, big());

/// A store that counts the writes made through it (each call to create,
/// update, delete or apply is one write to the backend).
struct Counting {
    inner: AnyStore,
    writes: std::sync::atomic::AtomicUsize,
}

impl Counting {
    fn take(&self) -> usize {
        self.writes.swap(0, std::sync::atomic::Ordering::SeqCst)
    }
    fn count(&self) {
        self.writes
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    }
}

impl Datastore for Counting {
    async fn get(&self, key: &Key) -> Result<Option<Versioned>, StoreError> {
        self.inner.get(key).await
    }
    async fn list(&self, kind: Kind) -> Result<Listing, StoreError> {
        self.inner.list(kind).await
    }
    async fn create(&self, r: Resource) -> Result<Versioned, StoreError> {
        self.count();
        self.inner.create(r).await
    }
    async fn update(&self, r: Resource, rev: u64) -> Result<Versioned, StoreError> {
        self.count();
        self.inner.update(r, rev).await
    }
    async fn delete(&self, key: &Key, rev: Option<u64>) -> Result<u64, StoreError> {
        self.count();
        self.inner.delete(key, rev).await
    }
    async fn watch(&self, kind: Kind, from: u64) -> Result<Watch, StoreError> {
        self.inner.watch(kind, from).await
    }
    async fn apply(&self, ops: Vec<Op>) -> Result<u64, StoreError> {
        self.count();
        self.inner.apply(ops).await
    }
}

/// What every watcher pays for: a claim of a block for a requested
/// address (the block, its affinity, the new handle) is one write; a
/// release (the block, the handle's removal) one; the release of the
/// emptied block (the block, its affinity) one. Each leaves what the
/// separate writes did.
async fn writes_per_claim(store: AnyStore) {
    let counting = Counting {
        inner: store.clone(),
        writes: Default::default(),
    };
    let config = IpamConfig {
        empty_block_grace: Duration::ZERO,
        ..IpamConfig::default()
    };
    let ipam = Ipam::new(counting, config);
    let ip: std::net::IpAddr = "10.10.5.9".parse().unwrap();
    ipam.allocate_address(&req("net.w1.eth0", "w"), ip)
        .await
        .unwrap();
    assert_eq!(ipam.store().take(), 1, "claim with a requested address");
    let handle = Key::new(Kind::Handle, tortie_ipam::handle_name("net.w1.eth0"));
    let affinity_key = Key::new(
        Kind::BlockAffinity,
        tortie_ipam::affinity_name("w", &"10.10.5.0/26".parse().unwrap()),
    );
    assert!(
        store.get(&handle).await.unwrap().is_some(),
        "handle written"
    );
    assert!(
        store.get(&affinity_key).await.unwrap().is_some(),
        "affinity written"
    );
    // An automatic allocation that claims a block: block and affinity in
    // one write, the handle in another.
    ipam.allocate(&req("net.w2.eth0", "v")).await.unwrap();
    assert_eq!(ipam.store().take(), 2, "claim by an automatic allocation");

    assert_eq!(ipam.release("net.w1.eth0").await.unwrap(), vec![ip]);
    assert_eq!(ipam.store().take(), 1, "release");
    assert_eq!(store.get(&handle).await.unwrap(), None, "handle removed");
    // A release of nothing still removes a stray handle, in one write.
    assert!(ipam.release("net.w1.eth0").await.unwrap().is_empty());
    assert_eq!(ipam.store().take(), 1, "release of nothing");

    let released = ipam.release_empty_blocks(Some("w")).await.unwrap();
    assert_eq!(
        released,
        vec!["10.10.5.0/26".parse::<ipnet::IpNet>().unwrap()]
    );
    assert_eq!(ipam.store().take(), 1, "release of the empty block");
    assert_eq!(
        store.get(&affinity_key).await.unwrap(),
        None,
        "affinity removed"
    );
    assert!(store
        .get(&Key::new(Kind::Block, "10-10-5-0-26"))
        .await
        .unwrap()
        .is_none());
}
both!(
    writes_per_claim_file,
    writes_per_claim_etcd,
    writes_per_claim,
    big()
);
on_kube!(dual_stack_kube, dual_stack, {
    vec![
        pool("v4", "10.30.0.0/24", 26),
        pool("v6", "fd00:30::/64", 122),
    ]
});
