//! A requested address (a pod asks for `10.244.0.50`: the CNI `ips`
//! capability, `CNI_ARGS` `IP=`): the node claims the block holding it if
//! nobody has, else takes the address from whoever's block it is in
//! (borrowed), else says who holds it.

use std::net::IpAddr;

use tortie_config::resources::{BlockSpec, IPPoolSpec, Key, Kind, NodeSpec, Object, Spec};
use tortie_datastore::{Datastore, Op, StoreError, TypedStore};

use crate::{
    affinity, affinity_of, assigned, backoff, block, handle_name, new_handle, now, Assigned, Ipam,
    IpamError, Request,
};

// ===== impl Ipam: requested addresses =====

impl<S: Datastore> Ipam<S> {
    /// Allocates exactly `address` for `req.handle_id` on `req.node` (the
    /// pool is the enabled pool containing it that selects the node, among
    /// `req.pools` when given). Idempotent for the same handle.
    pub async fn allocate_address(
        &self,
        req: &Request,
        address: IpAddr,
    ) -> Result<Assigned, IpamError> {
        if req.handle_id.is_empty() {
            return Err(IpamError::BadHandle(req.handle_id.clone()));
        }
        let pools = self.store.list_typed::<IPPoolSpec>().await?;
        let labels = match self.store.get_typed::<NodeSpec>(&req.node).await? {
            Some((n, _)) => n.metadata.labels,
            None => Default::default(),
        };
        let pool = pools
            .iter()
            .map(|(p, _)| p)
            .filter(|p| p.spec.cidr.contains(&address))
            .filter(|p| req.pools.is_empty() || req.pools.contains(&p.metadata.name))
            .max_by_key(|p| p.spec.cidr.prefix_len())
            .ok_or_else(|| IpamError::NotInPool {
                address,
                pools: pools
                    .iter()
                    .map(|(p, _)| format!("{} ({})", p.metadata.name, p.spec.cidr))
                    .collect(),
            })?;
        if pool.spec.disabled {
            return Err(IpamError::PoolDisabled {
                name: pool.metadata.name.clone(),
            });
        }
        if !pool.spec.node_selector.matches(&labels) {
            return Err(IpamError::NoPool {
                family: crate::Family::of(&pool.spec.cidr),
                node: req.node.clone(),
                asked: vec![pool.metadata.name.clone()],
            });
        }
        let cidr = ipnet::IpNet::new(address, pool.spec.block_size())
            .map_err(|_| IpamError::NotInPool {
                address,
                pools: vec![],
            })?
            .trunc();
        let name = BlockSpec::name_for(&cidr);
        let host = affinity_of(&req.node);
        for attempt in 0..self.config.max_attempts {
            let Some((mut b, rev)) = self.store.get_typed::<BlockSpec>(&name).await? else {
                // Nobody has the block: claim it for this node with the
                // address already taken, in one write (the create is the
                // compare-and-swap of the claim), so the block's owner and
                // every other watcher see one change, not two.
                let mut fresh = Object::new(&name, BlockSpec::new(cidr, Some(host.clone())));
                if let Err(why) = block::allocate_slot(
                    &mut fresh.spec,
                    address,
                    &req.handle_id,
                    req.attributes.clone(),
                    now(),
                ) {
                    // Cannot happen for a fresh block of this address;
                    // say so rather than loop.
                    return Err(IpamError::AddressInUse {
                        address,
                        holder: why.unwrap_or_else(|| "(no handle)".into()),
                    });
                }
                let got = assigned(address, &fresh, &pool.metadata.name, &host);
                let claim = vec![
                    Op::Create(BlockSpec::wrap(fresh)),
                    Op::Put(affinity(&req.node, cidr)),
                ];
                // The block, its affinity and a new handle in one write;
                // a handle that exists (it holds an address of the other
                // family) is then updated on its own.
                let mut with_handle = claim.clone();
                with_handle.push(Op::Create(new_handle(
                    &req.handle_id,
                    std::slice::from_ref(&got),
                )));
                let handle_key = Key::new(Kind::Handle, handle_name(&req.handle_id));
                let result = match self.store.apply(with_handle).await {
                    Err(StoreError::AlreadyExists { key, .. }) if key == handle_key => {
                        self.store.apply(claim).await.map(|_| false)
                    }
                    other => other.map(|_| true),
                };
                match result {
                    Ok(handled) => {
                        tracing::info!(%cidr, node = req.node, %address, "claimed IPAM block for a requested address");
                        if !handled {
                            self.record_handle(&req.handle_id, std::slice::from_ref(&got))
                                .await?;
                        }
                        return Ok(got);
                    }
                    Err(e) if e.is_conflict() => {}
                    Err(e) => return Err(e.into()),
                }
                continue;
            };
            match block::allocate_slot(
                &mut b.spec,
                address,
                &req.handle_id,
                req.attributes.clone(),
                now(),
            ) {
                Ok(false) => return Ok(assigned(address, &b, &pool.metadata.name, &host)),
                Ok(true) => {}
                Err(holder) => {
                    return Err(IpamError::AddressInUse {
                        address,
                        holder: holder.unwrap_or_else(|| "(no handle)".into()),
                    })
                }
            }
            b.metadata.annotations.remove(block::EMPTY_SINCE);
            match self.store.update(BlockSpec::wrap(b.clone()), rev).await {
                Ok(_) => {
                    let got = assigned(address, &b, &pool.metadata.name, &host);
                    self.record_handle(&req.handle_id, std::slice::from_ref(&got))
                        .await?;
                    return Ok(got);
                }
                Err(e) if e.is_conflict() => backoff(attempt).await,
                Err(StoreError::NotFound { .. }) => {}
                Err(e) => return Err(e.into()),
            }
        }
        Err(IpamError::Contention {
            what: format!("address {address} for {}", req.handle_id),
            attempts: self.config.max_attempts,
        })
    }
}
