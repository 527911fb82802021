//! Tortie's IP address management: pools cut into blocks that nodes claim.
//!
//! An `IPPool` (e.g. `10.244.0.0/16`, block size 26) is cut into blocks
//! (`10.244.0.0/26`, `10.244.0.64/26`, ...). A node claims a whole block
//! (a `Block` object whose `affinity` is `host:<node>`, plus a
//! `BlockAffinity`), and hands out its addresses. An allocation comes from
//! the node's own blocks first, then from a newly claimed block, then,
//! unless [`IpamConfig::strict_affinity`], from a free address of another
//! node's block (borrowed: that node routes the block, the owner routes the
//! /32). Every allocation is owned by a handle (`<network>.<container
//! id>.<interface>`), recorded in the block and in a `Handle` object, so a
//! retried ADD finds what it got before and DEL frees exactly it.
//!
//! Every change to a block is a compare-and-swap on its revision through
//! [`Datastore::update`] (or a create for a claim), retried with jitter on
//! conflict, so concurrent callers on one or many nodes never hand out one
//! address twice. Writes that belong together go in one batch
//! ([`Datastore::apply`]: all or nothing), so each watcher reads them once:
//! a claimed block with its affinity (and, for a requested address, its new
//! handle), a release with the handle's removal, an empty block's deletion
//! with its affinity's. Where the handle is written on its own (an
//! allocation from a block the node already has), the block is written
//! first: a crash in between leaves an allocation whose handle does not
//! exist, which a retried ADD finds (it scans blocks for its handle id) and
//! [`Ipam::gc`] frees once older than its grace.
//!
//! # Layout
//!
//! - `lib.rs`: [`Ipam`], [`IpamConfig`], [`Request`], [`Assigned`],
//!   allocation.
//! - `maintain.rs`: release by handle, GC of orphans, release of empty
//!   blocks.
//! - `specific.rs`: a requested address (claim its block, or borrow it).
//! - `block.rs`: pure operations on one block.
//! - `error.rs`: [`IpamError`].
//!
//! The design notes are in `docs/ipam.md`.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::net::IpAddr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use ipnet::IpNet;
use tortie_config::resources::{
    AffinityState, Block, BlockAffinitySpec, BlockSpec, Handle, HandleSpec, IPPool, IPPoolSpec,
    NodeSpec, Object, Resource, Spec,
};
use tortie_datastore::{Datastore, Op, Revision, StoreError, TypedStore};

pub mod block;
mod error;
mod maintain;
mod specific;

pub use error::IpamError;

/// How the IPAM behaves.
#[derive(Clone, Debug)]
pub struct IpamConfig {
    /// Never borrow addresses from other nodes' blocks.
    pub strict_affinity: bool,
    /// An empty block is released once it has been empty this long.
    pub empty_block_grace: Duration,
    /// The GC frees an allocation without a handle once it is this old
    /// (a younger one may be an ADD between its two writes).
    pub orphan_grace: Duration,
    /// Compare-and-swap attempts on one object before giving up.
    pub max_attempts: u32,
}

/// An address family.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Family {
    /// IPv4.
    V4,
    /// IPv6.
    V6,
}

/// What to allocate.
#[derive(Clone, Debug)]
pub struct Request {
    /// Owner of the allocation: `<network>.<container id>.<interface>`.
    pub handle_id: String,
    /// The node the workload runs on.
    pub node: String,
    /// Pools to use, by name; empty = every enabled pool that selects the
    /// node.
    pub pools: Vec<String>,
    /// One address of each of these families.
    pub families: Vec<Family>,
    /// Extra facts stored with the allocation (namespace, pod).
    pub attributes: BTreeMap<String, String>,
}

/// One assigned address.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Assigned {
    /// The address.
    pub address: IpAddr,
    /// The block it came from.
    pub block: IpNet,
    /// The pool the block belongs to.
    pub pool: String,
    /// Whether the block belongs to another node.
    pub borrowed: bool,
}

/// The IPAM over a datastore `S`.
#[derive(Clone, Debug)]
pub struct Ipam<S> {
    store: S,
    config: IpamConfig,
}

/// An IPPool usable for one request.
#[derive(Debug)]
struct Pool {
    name: String,
    spec: IPPoolSpec,
}

/// How a block claim went.
enum Claim {
    /// We own a new block, created with the request's address in it.
    Claimed(Assigned),
    /// Someone else took it first: look again.
    Lost,
    /// The pools have no block left.
    NoneLeft,
}

// ===== impl IpamConfig =====

impl Default for IpamConfig {
    fn default() -> Self {
        IpamConfig {
            strict_affinity: false,
            empty_block_grace: Duration::from_secs(300),
            orphan_grace: Duration::from_secs(60),
            max_attempts: 1000,
        }
    }
}

// ===== impl Family =====

impl Family {
    /// The family of `net`.
    pub fn of(net: &IpNet) -> Family {
        match net {
            IpNet::V4(_) => Family::V4,
            IpNet::V6(_) => Family::V6,
        }
    }
}

impl fmt::Display for Family {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Family::V4 => "IPv4",
            Family::V6 => "IPv6",
        })
    }
}

// ===== impl Ipam =====

impl<S: Datastore> Ipam<S> {
    /// The IPAM over `store`.
    pub fn new(store: S, config: IpamConfig) -> Ipam<S> {
        Ipam { store, config }
    }

    /// The datastore.
    pub fn store(&self) -> &S {
        &self.store
    }

    /// The configuration.
    pub fn config(&self) -> &IpamConfig {
        &self.config
    }

    /// One address per family of `req`. Idempotent: if the handle already
    /// holds an address of a family in the chosen pools, that address is
    /// returned. On failure nothing this call allocated stays allocated.
    pub async fn allocate(&self, req: &Request) -> Result<Vec<Assigned>, IpamError> {
        if req.handle_id.is_empty() {
            return Err(IpamError::BadHandle(req.handle_id.clone()));
        }
        let all_pools = self.store.list_typed::<IPPoolSpec>().await?;
        let labels = match self.store.get_typed::<NodeSpec>(&req.node).await {
            Ok(Some((node, _))) => node.metadata.labels,
            Ok(None) => BTreeMap::new(),
            Err(e) => return Err(e.into()),
        };
        let mut out = Vec::new();
        for family in &req.families {
            let pools = select_pools(&all_pools, req, *family, &labels)?;
            match self.allocate_family(req, *family, &pools).await {
                Ok(a) => out.push(a),
                Err(e) => {
                    if !out.is_empty() {
                        // Give back what the other family got.
                        let _ = self.release(&req.handle_id).await;
                    }
                    return Err(e);
                }
            }
        }
        if let Err(e) = self.record_handle(&req.handle_id, &out).await {
            let _ = self.release(&req.handle_id).await;
            return Err(e);
        }
        Ok(out)
    }

    /// One address of `family` from `pools`.
    async fn allocate_family(
        &self,
        req: &Request,
        family: Family,
        pools: &[Pool],
    ) -> Result<Assigned, IpamError> {
        let host = affinity_of(&req.node);
        for _ in 0..self.config.max_attempts {
            let blocks = self.store.list_typed::<BlockSpec>().await?;
            let in_pools: Vec<_> = blocks
                .iter()
                .filter_map(|(b, rev)| Some((b, *rev, pool_of(pools, &b.spec.cidr)?)))
                .collect();
            // A retried ADD: the handle already holds one.
            for (b, _, pool) in &in_pools {
                if let Some(address) = block::held_by(&b.spec, &req.handle_id).first() {
                    return Ok(assigned(*address, b, pool, &host));
                }
            }
            // 1. The node's own blocks.
            for (b, rev, pool) in &in_pools {
                if b.spec.affinity.as_deref() == Some(&host) && block::has_free(&b.spec) {
                    if let Some(a) = self
                        .allocate_in((*b).clone(), *rev, pool, req, &host)
                        .await?
                    {
                        return Ok(a);
                    }
                }
            }
            // 2. A new block.
            let taken: BTreeSet<IpNet> = blocks.iter().map(|(b, _)| b.spec.cidr).collect();
            match self.claim_block(req, pools, &taken).await? {
                Claim::Claimed(a) => return Ok(a),
                Claim::Lost => continue,
                Claim::NoneLeft => {}
            }
            // 3. Borrow.
            if !self.config.strict_affinity {
                for (b, rev, pool) in &in_pools {
                    if b.spec.affinity.as_deref() != Some(&host) && block::has_free(&b.spec) {
                        if let Some(a) = self
                            .allocate_in((*b).clone(), *rev, pool, req, &host)
                            .await?
                        {
                            return Ok(a);
                        }
                    }
                }
            }
            // Exhausted, unless a concurrent release freed something since
            // the listing: the listing is the truth at its revision.
            return Err(IpamError::Exhausted {
                family,
                pools: pools
                    .iter()
                    .map(|p| format!("{} ({})", p.name, p.spec.cidr))
                    .collect(),
                strict: self.config.strict_affinity,
            });
        }
        Err(IpamError::Contention {
            what: format!("{family} allocation for {}", req.handle_id),
            attempts: self.config.max_attempts,
        })
    }

    /// Takes an address of block `b` (read at `rev`) by compare-and-swap,
    /// re-reading it on conflict. `None` once it is full or gone.
    async fn allocate_in(
        &self,
        mut b: Block,
        mut rev: Revision,
        pool: &str,
        req: &Request,
        host: &str,
    ) -> Result<Option<Assigned>, IpamError> {
        for attempt in 0..self.config.max_attempts {
            let Some(address) =
                block::allocate(&mut b.spec, &req.handle_id, req.attributes.clone(), now())
            else {
                return Ok(None);
            };
            b.metadata.annotations.remove(block::EMPTY_SINCE);
            match self.store.update(BlockSpec::wrap(b.clone()), rev).await {
                Ok(_) => return Ok(Some(assigned(address, &b, pool, host))),
                Err(e) if e.is_conflict() => {}
                Err(StoreError::NotFound { .. }) => return Ok(None),
                Err(e) => return Err(e.into()),
            }
            backoff(attempt).await;
            match self.store.get_typed::<BlockSpec>(&b.metadata.name).await? {
                Some((fresh, r)) => (b, rev) = (fresh, r),
                None => return Ok(None),
            }
        }
        Err(IpamError::Contention {
            what: format!("block {}", b.spec.cidr),
            attempts: self.config.max_attempts,
        })
    }

    /// Claims the first free block of the first pool that has one for
    /// `req.node`: creates the `Block` with the request's address already
    /// in it and its `BlockAffinity`, in one batch (the block's create is
    /// the compare-and-swap: a concurrent claim of the same block gets
    /// AlreadyExists and writes nothing; one write, so every watcher reads
    /// the claim once).
    async fn claim_block(
        &self,
        req: &Request,
        pools: &[Pool],
        taken: &BTreeSet<IpNet>,
    ) -> Result<Claim, IpamError> {
        let node = req.node.as_str();
        for pool in pools {
            let Ok(subnets) = pool.spec.cidr.subnets(pool.spec.block_size()) else {
                continue;
            };
            let Some(cidr) = subnets.into_iter().find(|c| !taken.contains(c)) else {
                continue;
            };
            let host = affinity_of(node);
            let mut block = Object::new(
                BlockSpec::name_for(&cidr),
                BlockSpec::new(cidr, Some(host.clone())),
            );
            let Some(address) = block::allocate(
                &mut block.spec,
                &req.handle_id,
                req.attributes.clone(),
                now(),
            ) else {
                // A block too small to hold an address (a pool whose block
                // size leaves none): try the next pool.
                continue;
            };
            let got = assigned(address, &block, &pool.name, &host);
            let claim = vec![
                Op::Create(BlockSpec::wrap(block)),
                Op::Put(affinity(node, cidr)),
            ];
            match self.store.apply(claim).await {
                Ok(_) => {}
                Err(e) if e.is_conflict() => {
                    backoff(0).await;
                    return Ok(Claim::Lost);
                }
                Err(e) => return Err(e.into()),
            }
            tracing::info!(%cidr, node, pool = pool.name, "claimed IPAM block");
            return Ok(Claim::Claimed(got));
        }
        Ok(Claim::NoneLeft)
    }

    /// Creates or updates the handle object to name the blocks of `got`.
    async fn record_handle(&self, handle_id: &str, got: &[Assigned]) -> Result<(), IpamError> {
        let name = handle_name(handle_id);
        let blocks = |mut spec: HandleSpec| {
            for a in got {
                spec.block.insert(a.block.to_string(), 1);
            }
            spec
        };
        // The common case, a new handle: one write, no read.
        match self.store.create(new_handle(handle_id, got)).await {
            Ok(_) => return Ok(()),
            Err(StoreError::AlreadyExists { .. }) => {}
            Err(e) => return Err(e.into()),
        }
        for attempt in 0..self.config.max_attempts {
            let result = match self.store.get_typed::<HandleSpec>(&name).await? {
                Some((h, rev)) => {
                    let spec = blocks(h.spec.clone());
                    if h.spec == spec {
                        return Ok(());
                    }
                    self.store
                        .update(Resource::Handle(Handle::new(&name, spec)), rev)
                        .await
                        .map(drop)
                }
                None => self
                    .store
                    .create(Resource::Handle(Handle::new(
                        &name,
                        blocks(HandleSpec {
                            handle_id: handle_id.to_owned(),
                            block: BTreeMap::new(),
                            deleted: false,
                        }),
                    )))
                    .await
                    .map(drop),
            };
            match result {
                Ok(()) => return Ok(()),
                Err(e) if e.is_conflict() => backoff(attempt).await,
                Err(e) => return Err(e.into()),
            }
        }
        Err(IpamError::Contention {
            what: format!("handle {handle_id}"),
            attempts: self.config.max_attempts,
        })
    }
}

// ===== helpers =====

/// `node`'s claim of the block `cidr`: its `BlockAffinity`, written in the
/// same batch as the block.
fn affinity(node: &str, cidr: IpNet) -> Resource {
    Resource::BlockAffinity(Object::new(
        affinity_name(node, &cidr),
        BlockAffinitySpec {
            node: node.to_owned(),
            cidr,
            state: AffinityState::Confirmed,
            deleted: false,
        },
    ))
}

/// A new handle object naming the blocks of `got`.
fn new_handle(handle_id: &str, got: &[Assigned]) -> Resource {
    let block = got.iter().map(|a| (a.block.to_string(), 1)).collect();
    Resource::Handle(Handle::new(
        handle_name(handle_id),
        HandleSpec {
            handle_id: handle_id.to_owned(),
            block,
            deleted: false,
        },
    ))
}

/// The pools of `family` a request may use, in order.
fn select_pools(
    all: &[(IPPool, Revision)],
    req: &Request,
    family: Family,
    labels: &BTreeMap<String, String>,
) -> Result<Vec<Pool>, IpamError> {
    let mut out = Vec::new();
    if req.pools.is_empty() {
        for (p, _) in all {
            if Family::of(&p.spec.cidr) == family
                && !p.spec.disabled
                && p.spec.node_selector.matches(labels)
            {
                out.push(Pool {
                    name: p.metadata.name.clone(),
                    spec: p.spec.clone(),
                });
            }
        }
    } else {
        for name in &req.pools {
            let Some((p, _)) = all.iter().find(|(p, _)| &p.metadata.name == name) else {
                return Err(IpamError::UnknownPool {
                    name: name.clone(),
                    known: all.iter().map(|(p, _)| p.metadata.name.clone()).collect(),
                });
            };
            if Family::of(&p.spec.cidr) != family {
                continue;
            }
            if p.spec.disabled {
                return Err(IpamError::PoolDisabled { name: name.clone() });
            }
            out.push(Pool {
                name: name.clone(),
                spec: p.spec.clone(),
            });
        }
    }
    if out.is_empty() {
        return Err(IpamError::NoPool {
            family,
            node: req.node.clone(),
            asked: req.pools.clone(),
        });
    }
    Ok(out)
}

/// The name of the pool containing block `cidr`.
fn pool_of<'a>(pools: &'a [Pool], cidr: &IpNet) -> Option<&'a str> {
    pools
        .iter()
        .find(|p| p.spec.cidr.contains(cidr))
        .map(|p| p.name.as_str())
}

fn assigned(address: IpAddr, b: &Block, pool: &str, host: &str) -> Assigned {
    Assigned {
        address,
        block: b.spec.cidr,
        pool: pool.to_owned(),
        borrowed: b.spec.affinity.as_deref() != Some(host),
    }
}

/// `host:<node>`, as written in `Block.spec.affinity`.
pub fn affinity_of(node: &str) -> String {
    format!("host:{node}")
}

/// The `BlockAffinity` object name of `node`'s claim on `cidr`.
pub fn affinity_name(node: &str, cidr: &IpNet) -> String {
    object_name(&format!("{node}.{}", BlockSpec::name_for(cidr)))
}

/// The `Handle` object name for `handle_id`: the id itself when it is a
/// valid object name, otherwise a cleaned-up form plus a hash of the id.
pub fn handle_name(handle_id: &str) -> String {
    object_name(handle_id)
}

/// A valid object name for `text` (lowercase letters, digits, `-`, `.`),
/// unique per `text`.
fn object_name(text: &str) -> String {
    let clean: String = text
        .chars()
        .map(|c| match c {
            'a'..='z' | '0'..='9' | '-' | '.' => c,
            'A'..='Z' => c.to_ascii_lowercase(),
            _ => '-',
        })
        .take(200)
        .collect();
    let clean = clean.trim_matches(|c: char| !c.is_ascii_alphanumeric());
    if clean == text && !clean.is_empty() {
        return clean.to_owned();
    }
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in text.as_bytes() {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    if clean.is_empty() {
        format!("h-{h:016x}")
    } else {
        format!("{clean}-{h:016x}")
    }
}

/// Now, in Unix seconds.
pub(crate) fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Sleeps a random 0..2^attempt ms (capped at 64 ms), so racing callers
/// spread out and a crowd on one block stops re-reading it in lockstep.
pub(crate) async fn backoff(attempt: u32) {
    let cap = 1u64 << attempt.min(6);
    tokio::time::sleep(Duration::from_micros(fastrand::u64(0..cap * 1000))).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn object_names_are_valid_and_distinct() {
        assert_eq!(handle_name("net.abc123.eth0"), "net.abc123.eth0");
        let a = handle_name("Net_A.ABC.eth0");
        let b = handle_name("net_a.abc.eth0");
        assert_ne!(a, b);
        assert!(a.starts_with("net-a.abc.eth0-"), "{a}");
        assert!(handle_name("__").starts_with("h-"));
        let mut h = Handle::new(
            handle_name("Weird/ID with spaces"),
            HandleSpec {
                handle_id: "x".into(),
                block: BTreeMap::new(),
                deleted: false,
            },
        );
        h.validate().expect("a valid name");
    }

    #[test]
    fn pool_selection_names_unknown_and_disabled() {
        let mut p = IPPool::new("a", IPPoolSpec::new("10.0.0.0/24".parse().unwrap()));
        let v6 = IPPool::new("b6", IPPoolSpec::new("fd00::/120".parse().unwrap()));
        let mut req = Request {
            handle_id: "h".into(),
            node: "n".into(),
            pools: vec!["nope".into()],
            families: vec![Family::V4],
            attributes: BTreeMap::new(),
        };
        let all = vec![(p.clone(), 1), (v6.clone(), 2)];
        let e = select_pools(&all, &req, Family::V4, &BTreeMap::new()).unwrap_err();
        assert!(
            e.to_string()
                .contains("\"nope\" does not exist (pools: a, b6)"),
            "{e}"
        );
        req.pools = vec!["a".into(), "b6".into()];
        let got = select_pools(&all, &req, Family::V6, &BTreeMap::new()).unwrap();
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].name, "b6");
        p.spec.disabled = true;
        let all = vec![(p, 1), (v6, 2)];
        let e = select_pools(&all, &req, Family::V4, &BTreeMap::new()).unwrap_err();
        assert!(matches!(e, IpamError::PoolDisabled { .. }), "{e}");
        req.pools.clear();
        let e = select_pools(&all, &req, Family::V4, &BTreeMap::new()).unwrap_err();
        assert!(e.to_string().contains("no enabled IPv4 IP pool"), "{e}");
    }
}
