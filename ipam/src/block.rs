//! Pure operations on one block: address arithmetic, allocate, release.
//! No I/O: the caller reads the block, calls these, and writes it back
//! with the revision it read (compare-and-swap).

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::IpNet;
use tortie_config::resources::{AllocationAttribute, BlockSpec};

/// `secondary` key of an allocation: when it was made (Unix seconds). The
/// GC leaves orphans younger than its grace alone (their handle may be
/// about to be written).
pub const ALLOCATED_AT: &str = "allocatedAt";

/// Block annotation: when the block last became empty (Unix seconds).
/// Empty blocks are released once this is older than the grace.
pub const EMPTY_SINCE: &str = "tortie.io/empty-since";

// ===== address arithmetic =====

/// The address of slot `slot` of a block of `cidr`.
pub fn address_of(cidr: &IpNet, slot: u32) -> IpAddr {
    match cidr {
        IpNet::V4(n) => IpAddr::V4(Ipv4Addr::from(u32::from(n.network()).wrapping_add(slot))),
        IpNet::V6(n) => IpAddr::V6(Ipv6Addr::from(
            u128::from(n.network()).wrapping_add(u128::from(slot)),
        )),
    }
}

/// The slot of `addr` in a block of `cidr`, if it is inside.
pub fn slot_of(cidr: &IpNet, addr: IpAddr) -> Option<u32> {
    if !cidr.contains(&addr) {
        return None;
    }
    match (cidr, addr) {
        (IpNet::V4(n), IpAddr::V4(a)) => Some(u32::from(a) - u32::from(n.network())),
        (IpNet::V6(n), IpAddr::V6(a)) => {
            u32::try_from(u128::from(a) - u128::from(n.network())).ok()
        }
        _ => None,
    }
}

// ===== queries =====

/// The addresses `handle_id` holds in `block`.
pub fn held_by(block: &BlockSpec, handle_id: &str) -> Vec<IpAddr> {
    block
        .allocations
        .iter()
        .enumerate()
        .filter(|(_, a)| {
            a.and_then(|i| block.attributes.get(i as usize))
                .is_some_and(|attr| attr.handle_id.as_deref() == Some(handle_id))
        })
        .map(|(slot, _)| address_of(&block.cidr, slot as u32))
        .collect()
}

/// Every allocation of `block`: address, handle id, allocation time.
pub fn allocations(block: &BlockSpec) -> Vec<(IpAddr, Option<String>, Option<u64>)> {
    block
        .allocations
        .iter()
        .enumerate()
        .filter_map(|(slot, a)| {
            let attr = block.attributes.get((*a)? as usize)?;
            let at = attr
                .secondary
                .get(ALLOCATED_AT)
                .and_then(|t| t.parse().ok());
            Some((
                address_of(&block.cidr, slot as u32),
                attr.handle_id.clone(),
                at,
            ))
        })
        .collect()
}

/// Whether no address of `block` is allocated.
pub fn is_empty(block: &BlockSpec) -> bool {
    block.allocations.iter().all(Option::is_none)
}

/// Whether `block` can hand out an address now.
pub fn has_free(block: &BlockSpec) -> bool {
    !block.deleted && !block.unallocated.is_empty()
}

// ===== changes =====

/// Takes the next free address of `block` for `handle_id`; `None` when the
/// block is full or being released.
pub fn allocate(
    block: &mut BlockSpec,
    handle_id: &str,
    mut secondary: BTreeMap<String, String>,
    now: u64,
) -> Option<IpAddr> {
    if block.deleted || block.unallocated.is_empty() {
        return None;
    }
    let slot = block.unallocated.remove(0);
    secondary.insert(ALLOCATED_AT.into(), now.to_string());
    block.attributes.push(AllocationAttribute {
        handle_id: Some(handle_id.to_owned()),
        secondary,
    });
    block.allocations[slot as usize] = Some(block.attributes.len() as u32 - 1);
    Some(address_of(&block.cidr, slot))
}

/// Takes `address` of `block` for `handle_id`. `Ok(true)`: taken now;
/// `Ok(false)`: the handle already holds it; `Err(holder)`: another handle
/// (or an allocation without one) holds it, or the block is being
/// released (`Err(Some("the block being released"))`).
pub fn allocate_slot(
    block: &mut BlockSpec,
    address: IpAddr,
    handle_id: &str,
    mut secondary: BTreeMap<String, String>,
    now: u64,
) -> Result<bool, Option<String>> {
    let Some(slot) = slot_of(&block.cidr, address) else {
        return Err(Some(format!(
            "no slot: {address} is outside {}",
            block.cidr
        )));
    };
    if let Some(i) = block.allocations[slot as usize] {
        let holder = block
            .attributes
            .get(i as usize)
            .and_then(|a| a.handle_id.clone());
        return if holder.as_deref() == Some(handle_id) {
            Ok(false)
        } else {
            Err(holder)
        };
    }
    if block.deleted {
        return Err(Some("the block being released".into()));
    }
    block.unallocated.retain(|s| *s != slot);
    secondary.insert(ALLOCATED_AT.into(), now.to_string());
    block.attributes.push(AllocationAttribute {
        handle_id: Some(handle_id.to_owned()),
        secondary,
    });
    block.allocations[slot as usize] = Some(block.attributes.len() as u32 - 1);
    Ok(true)
}

/// Frees the slots whose allocation `pred` selects; returns their
/// addresses. Freed slots go to the end of the free list (an address is
/// reused as late as possible) and unused attributes are dropped.
pub fn release_where(
    block: &mut BlockSpec,
    pred: impl Fn(&AllocationAttribute) -> bool,
) -> Vec<IpAddr> {
    let mut freed = Vec::new();
    for slot in 0..block.allocations.len() {
        let Some(i) = block.allocations[slot] else {
            continue;
        };
        if block.attributes.get(i as usize).is_some_and(&pred) {
            block.allocations[slot] = None;
            block.unallocated.push(slot as u32);
            freed.push(address_of(&block.cidr, slot as u32));
        }
    }
    if !freed.is_empty() {
        compact(block);
    }
    freed
}

/// Drops attributes no slot refers to and renumbers the rest.
fn compact(block: &mut BlockSpec) {
    let mut map = vec![None; block.attributes.len()];
    let mut kept = Vec::new();
    for a in block.allocations.iter_mut().flatten() {
        let old = *a as usize;
        let new = *map[old].get_or_insert_with(|| {
            kept.push(block.attributes[old].clone());
            kept.len() as u32 - 1
        });
        *a = new;
    }
    block.attributes = kept;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(s: &str) -> IpNet {
        s.parse().unwrap()
    }

    #[test]
    fn arithmetic_both_families() {
        let v4 = net("10.1.2.64/26");
        assert_eq!(address_of(&v4, 0), "10.1.2.64".parse::<IpAddr>().unwrap());
        assert_eq!(address_of(&v4, 63), "10.1.2.127".parse::<IpAddr>().unwrap());
        assert_eq!(slot_of(&v4, "10.1.2.100".parse().unwrap()), Some(36));
        assert_eq!(slot_of(&v4, "10.1.2.128".parse().unwrap()), None);
        let v6 = net("fd00::40/122");
        assert_eq!(address_of(&v6, 1), "fd00::41".parse::<IpAddr>().unwrap());
        assert_eq!(slot_of(&v6, "fd00::7f".parse().unwrap()), Some(63));
        assert_eq!(slot_of(&v6, "10.1.2.100".parse().unwrap()), None);
    }

    #[test]
    fn allocate_until_full_then_release_reuses_last() {
        let mut b = BlockSpec::new(net("10.0.0.0/30"), Some("host:a".into()));
        let got: Vec<_> = (0..4)
            .map(|i| allocate(&mut b, &format!("h{i}"), BTreeMap::new(), 7).unwrap())
            .collect();
        assert_eq!(got[3], "10.0.0.3".parse::<IpAddr>().unwrap());
        assert!(allocate(&mut b, "h9", BTreeMap::new(), 7).is_none());
        assert_eq!(held_by(&b, "h1"), vec![got[1]]);
        let freed = release_where(&mut b, |a| a.handle_id.as_deref() == Some("h1"));
        assert_eq!(freed, vec![got[1]]);
        assert!(held_by(&b, "h1").is_empty());
        assert_eq!(b.attributes.len(), 3, "unused attribute dropped");
        // Still consistent for the resource validator.
        let mut obj = tortie_config::resources::Object::new("b", b.clone());
        obj.validate().expect("valid after compaction");
        assert_eq!(held_by(&b, "h3"), vec![got[3]]);
        assert_eq!(allocate(&mut b, "h5", BTreeMap::new(), 8), Some(got[1]));
        let all = allocations(&b);
        assert_eq!(all.len(), 4);
        assert!(all.iter().all(|(_, h, at)| h.is_some() && at.is_some()));
    }

    #[test]
    fn deleted_block_hands_out_nothing() {
        let mut b = BlockSpec::new(net("10.0.0.0/30"), None);
        b.deleted = true;
        assert!(!has_free(&b));
        assert!(allocate(&mut b, "h", BTreeMap::new(), 0).is_none());
        assert!(is_empty(&b));
    }
}
