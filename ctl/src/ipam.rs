//! `tortiectl ipam show`: each pool's use, and with `--show-blocks` each
//! block's owner and use (calicoctl's view).

use anyhow::Result;
use tortie_config::resources::{BlockSpec, IPPoolSpec};
use tortie_datastore::{AnyStore, TypedStore};

use crate::table;

/// The report.
pub async fn show(store: &AnyStore, blocks_too: bool) -> Result<String> {
    let pools = store.list_typed::<IPPoolSpec>().await?;
    let mut blocks = store.list_typed::<BlockSpec>().await?;
    blocks.sort_by_key(|(b, _)| b.spec.cidr);
    let usage = |b: &BlockSpec| {
        let used = b.allocations.iter().filter(|a| a.is_some()).count() as u64;
        (used, b.allocations.len() as u64)
    };
    let mut rows = Vec::new();
    for (pool, _) in &pools {
        let cidr = pool.spec.cidr;
        let size: u128 = match cidr {
            ipnet::IpNet::V4(n) => 1u128 << (32 - n.prefix_len()),
            ipnet::IpNet::V6(n) => 1u128
                .checked_shl(u32::from(128 - n.prefix_len()))
                .unwrap_or(u128::MAX),
        };
        let (mut used, mut claimed) = (0u64, 0u64);
        for (b, _) in blocks.iter().filter(|(b, _)| cidr.contains(&b.spec.cidr)) {
            let (u, total) = usage(&b.spec);
            used += u;
            claimed += total;
        }
        rows.push(vec![
            format!("IP Pool {}", pool.metadata.name),
            cidr.to_string(),
            size.to_string(),
            format!("{used} ({:.0}%)", percent(u128::from(used), size)),
            format!("{claimed} in blocks"),
        ]);
        if blocks_too {
            for (b, _) in blocks.iter().filter(|(b, _)| cidr.contains(&b.spec.cidr)) {
                let (u, total) = usage(&b.spec);
                rows.push(vec![
                    format!(
                        "  Block {}",
                        b.spec.affinity.as_deref().unwrap_or("(unclaimed)")
                    ),
                    b.spec.cidr.to_string(),
                    total.to_string(),
                    format!("{u} ({:.0}%)", percent(u128::from(u), u128::from(total))),
                    String::new(),
                ]);
            }
        }
    }
    Ok(table::render(
        &["GROUPING", "CIDR", "IPS TOTAL", "IPS IN USE", "CLAIMED"],
        &rows,
    ))
}

fn percent(part: u128, whole: u128) -> f64 {
    if whole == 0 {
        0.0
    } else {
        part as f64 * 100.0 / whole as f64
    }
}
