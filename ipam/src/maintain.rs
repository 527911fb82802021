//! Giving addresses back: release by handle (CNI DEL), the GC of
//! allocations whose handle is gone, and the release of blocks that stayed
//! empty longer than the grace.

use std::collections::BTreeSet;
use std::net::IpAddr;

use ipnet::IpNet;
use tortie_config::resources::{
    AllocationAttribute, Block, BlockSpec, HandleSpec, Key, Kind, Spec,
};
use tortie_datastore::{Datastore, Op, Revision, StoreError, TypedStore};

use crate::{affinity_name, backoff, block, handle_name, now, Ipam, IpamError};

// ===== impl Ipam =====

impl<S: Datastore> Ipam<S> {
    /// Frees every address `handle_id` holds and deletes its handle.
    /// Idempotent: an unknown handle frees nothing. Returns the addresses
    /// freed.
    pub async fn release(&self, handle_id: &str) -> Result<Vec<IpAddr>, IpamError> {
        let handle = Key::new(Kind::Handle, handle_name(handle_id));
        let holding: Vec<_> = self
            .store
            .list_typed::<BlockSpec>()
            .await?
            .into_iter()
            .filter(|(b, _)| !block::held_by(&b.spec, handle_id).is_empty())
            .collect();
        let mut freed = Vec::new();
        let mut handle_gone = false;
        let n = holding.len();
        for (i, (b, rev)) in holding.into_iter().enumerate() {
            // The last block's write also removes the handle: one write
            // for the common release (one address, one block).
            let with = if i + 1 == n {
                vec![Op::Remove(handle.clone())]
            } else {
                Vec::new()
            };
            let got = self
                .release_in(b, rev, |a| a.handle_id.as_deref() == Some(handle_id), with)
                .await?;
            handle_gone = !got.is_empty() && i + 1 == n;
            freed.extend(got);
        }
        if !handle_gone {
            self.store.apply(vec![Op::Remove(handle)]).await?;
        }
        Ok(freed)
    }

    /// The addresses `handle_id` holds, from the blocks.
    pub async fn held(&self, handle_id: &str) -> Result<Vec<IpAddr>, IpamError> {
        let mut out = Vec::new();
        for (b, _) in self.store.list_typed::<BlockSpec>().await? {
            out.extend(block::held_by(&b.spec, handle_id));
        }
        Ok(out)
    }

    /// Every handle id that holds an address, from the blocks.
    pub async fn handles_in_use(&self) -> Result<BTreeSet<String>, IpamError> {
        let mut out = BTreeSet::new();
        for (b, _) in self.store.list_typed::<BlockSpec>().await? {
            out.extend(
                block::allocations(&b.spec)
                    .into_iter()
                    .filter_map(|(_, h, _)| h),
            );
        }
        Ok(out)
    }

    /// Frees allocations whose `Handle` object does not exist and that are
    /// older than [`crate::IpamConfig::orphan_grace`] (an ADD that crashed
    /// between its block write and its handle write). Returns the freed
    /// addresses.
    pub async fn gc(&self) -> Result<Vec<IpAddr>, IpamError> {
        let handles: BTreeSet<String> = self
            .store
            .list_typed::<HandleSpec>()
            .await?
            .into_iter()
            .map(|(h, _)| h.spec.handle_id)
            .collect();
        let cutoff = now().saturating_sub(self.config.orphan_grace.as_secs());
        let orphan = |a: &AllocationAttribute| {
            let old = a
                .secondary
                .get(block::ALLOCATED_AT)
                .and_then(|t| t.parse::<u64>().ok())
                .is_none_or(|t| t <= cutoff);
            old && a.handle_id.as_ref().is_none_or(|h| !handles.contains(h))
        };
        let mut freed = Vec::new();
        for (b, rev) in self.store.list_typed::<BlockSpec>().await? {
            let has_orphan = b
                .spec
                .allocations
                .iter()
                .flatten()
                .any(|i| b.spec.attributes.get(*i as usize).is_some_and(orphan));
            if has_orphan {
                let got = self.release_in(b, rev, orphan, Vec::new()).await?;
                for a in &got {
                    tracing::warn!(address = %a, "IPAM GC freed an allocation without a handle");
                }
                freed.extend(got);
            }
        }
        Ok(freed)
    }

    /// Deletes blocks of `node` (all nodes for `None`) that have been empty
    /// for longer than [`crate::IpamConfig::empty_block_grace`], with their
    /// affinities. Returns the released block CIDRs.
    pub async fn release_empty_blocks(&self, node: Option<&str>) -> Result<Vec<IpNet>, IpamError> {
        let cutoff = now().saturating_sub(self.config.empty_block_grace.as_secs());
        let mut released = Vec::new();
        for (b, rev) in self.store.list_typed::<BlockSpec>().await? {
            let Some(owner) = b
                .spec
                .affinity
                .as_deref()
                .and_then(|a| a.strip_prefix("host:"))
            else {
                continue;
            };
            if node.is_some_and(|n| n != owner) || !block::is_empty(&b.spec) {
                continue;
            }
            let since = b
                .metadata
                .annotations
                .get(block::EMPTY_SINCE)
                .and_then(|t| t.parse::<u64>().ok());
            if since.is_none_or(|t| t > cutoff) {
                continue;
            }
            // The revision check makes this safe against a concurrent
            // allocation: it bumped the revision, so the batch fails and
            // writes nothing. The affinity goes in the same write.
            let affinity = Key::new(Kind::BlockAffinity, affinity_name(owner, &b.spec.cidr));
            let ops = vec![Op::Delete(b.key(), Some(rev)), Op::Remove(affinity)];
            match self.store.apply(ops).await {
                Ok(_) => {}
                Err(e) if e.is_conflict() => continue,
                Err(StoreError::NotFound { .. }) => continue,
                Err(e) => return Err(e.into()),
            }
            tracing::info!(cidr = %b.spec.cidr, node = owner, "released empty IPAM block");
            released.push(b.spec.cidr);
        }
        Ok(released)
    }

    /// Frees the allocations of block `b` that `pred` selects, by
    /// compare-and-swap, re-reading on conflict; `with` goes in the same
    /// write (made only when something is freed). Marks the block's
    /// empty-since time when it becomes empty.
    async fn release_in(
        &self,
        mut b: Block,
        mut rev: Revision,
        pred: impl Fn(&AllocationAttribute) -> bool,
        with: Vec<Op>,
    ) -> Result<Vec<IpAddr>, IpamError> {
        for attempt in 0..self.config.max_attempts {
            let freed = block::release_where(&mut b.spec, &pred);
            if freed.is_empty() {
                return Ok(freed);
            }
            if block::is_empty(&b.spec) {
                b.metadata
                    .annotations
                    .insert(block::EMPTY_SINCE.into(), now().to_string());
            }
            let mut ops = vec![Op::Update(BlockSpec::wrap(b.clone()), rev)];
            ops.extend(with.iter().cloned());
            match self.store.apply(ops).await {
                Ok(_) => return Ok(freed),
                Err(e) if e.is_conflict() => {}
                Err(StoreError::NotFound { .. }) => return Ok(Vec::new()),
                Err(e) => return Err(e.into()),
            }
            backoff(attempt).await;
            match self.store.get_typed::<BlockSpec>(&b.metadata.name).await? {
                Some((fresh, r)) => (b, rev) = (fresh, r),
                None => return Ok(Vec::new()),
            }
        }
        Err(IpamError::Contention {
            what: format!("block {}", b.spec.cidr),
            attempts: self.config.max_attempts,
        })
    }
}
