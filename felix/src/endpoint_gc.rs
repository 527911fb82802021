//! Stale workload interfaces: a `tort*` interface whose workload the agent
//! does not know is removed, but only after a grace period. The CNI plugin
//! creates the interface before the agent hears of the workload (through
//! the datastore), so a fresh unknown interface is normal and must be left
//! alone; one still unknown after the grace period is a leftover of a pod
//! whose CNI DEL never ran. Interfaces without our prefix are never touched.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use futures::TryStreamExt;
use rtnetlink::packet_route::link::LinkAttribute;
use rtnetlink::Handle;

use crate::endpoint::IFNAME_PREFIX;

/// Default grace period for an interface the agent does not know yet.
pub const DEFAULT_GRACE: Duration = Duration::from_secs(10);

/// Remembers when each unknown workload interface was first seen.
#[derive(Debug, Default)]
pub struct StaleTracker {
    first_seen: HashMap<String, Instant>,
}

/// Why a sweep failed.
#[derive(Debug, thiserror::Error)]
pub enum GcError {
    /// Listing links failed.
    #[error("listing interfaces failed: {0}")]
    List(rtnetlink::Error),
}

// ===== impl StaleTracker =====

impl StaleTracker {
    /// Given the workload interfaces present now and the names the agent
    /// knows, returns those to delete: unknown for longer than `grace`.
    /// Pure: the caller lists and deletes.
    pub fn observe(
        &mut self,
        present: &[String],
        known: &HashSet<String>,
        now: Instant,
        grace: Duration,
    ) -> Vec<String> {
        let ours: Vec<&String> = present
            .iter()
            .filter(|n| n.starts_with(IFNAME_PREFIX))
            .collect();
        // Forget names that vanished or became known.
        self.first_seen
            .retain(|name, _| ours.contains(&name) && !known.contains(name));
        let mut stale = Vec::new();
        for name in ours {
            if known.contains(name) {
                continue;
            }
            let seen = *self.first_seen.entry(name.clone()).or_insert(now);
            if now.duration_since(seen) >= grace {
                stale.push(name.clone());
            }
        }
        stale.sort();
        stale
    }

    /// Unknown interfaces currently in their grace period.
    pub fn waiting(&self) -> usize {
        self.first_seen.len()
    }
}

/// Names of all interfaces in the handle's namespace (`ip -o link`).
pub async fn list_links(handle: &Handle) -> Result<Vec<String>, GcError> {
    let mut links = handle.link().get().execute();
    let mut names = Vec::new();
    while let Some(msg) = links.try_next().await.map_err(GcError::List)? {
        for attr in msg.attributes {
            if let LinkAttribute::IfName(name) = attr {
                names.push(name);
            }
        }
    }
    Ok(names)
}

/// One sweep: lists interfaces, deletes the stale workload ones
/// (`ip link del NAME`; the veth peer in the pod goes with it). Returns
/// the names deleted; a failed delete is logged and retried next sweep.
pub async fn sweep(
    handle: &Handle,
    tracker: &mut StaleTracker,
    known: &HashSet<String>,
    grace: Duration,
) -> Result<Vec<String>, GcError> {
    let present = list_links(handle).await?;
    let stale = tracker.observe(&present, known, Instant::now(), grace);
    let mut deleted = Vec::new();
    for name in stale {
        let idx = handle
            .link()
            .get()
            .match_name(name.clone())
            .execute()
            .try_next()
            .await;
        let Ok(Some(link)) = idx else { continue };
        match handle.link().del(link.header.index).execute().await {
            Ok(()) => {
                tracing::info!(ifname = %name, "removed a workload interface no workload owns");
                deleted.push(name);
            }
            Err(e) => {
                tracing::warn!(ifname = %name, error = %e, "cannot remove a stale workload interface")
            }
        }
    }
    Ok(deleted)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn unknown_interfaces_go_only_after_the_grace_period() {
        let mut t = StaleTracker::default();
        let t0 = Instant::now();
        let grace = Duration::from_secs(10);
        let known: HashSet<String> = names(&["tortaaaaaaaaaaa"]).into_iter().collect();
        let present = names(&["eth0", "tortaaaaaaaaaaa", "tortbbbbbbbbbbb", "cali12345"]);
        // First seen now: nothing is stale yet.
        assert!(t.observe(&present, &known, t0, grace).is_empty());
        assert_eq!(t.waiting(), 1);
        assert!(t
            .observe(&present, &known, t0 + Duration::from_secs(9), grace)
            .is_empty());
        // After the grace period the unknown one (only ours) is stale.
        assert_eq!(
            t.observe(&present, &known, t0 + grace, grace),
            names(&["tortbbbbbbbbbbb"])
        );
    }

    #[test]
    fn becoming_known_or_vanishing_resets_the_clock() {
        let mut t = StaleTracker::default();
        let t0 = Instant::now();
        let grace = Duration::from_secs(10);
        let present = names(&["tortccccccccccc"]);
        assert!(t.observe(&present, &HashSet::new(), t0, grace).is_empty());
        // The agent learns of it: never stale.
        let known: HashSet<String> = present.iter().cloned().collect();
        assert!(t
            .observe(&present, &known, t0 + Duration::from_secs(20), grace)
            .is_empty());
        assert_eq!(t.waiting(), 0);
        // Unknown again (workload deleted, CNI DEL lost): a fresh grace period.
        assert!(t
            .observe(
                &present,
                &HashSet::new(),
                t0 + Duration::from_secs(21),
                grace
            )
            .is_empty());
        assert_eq!(
            t.observe(
                &present,
                &HashSet::new(),
                t0 + Duration::from_secs(31),
                grace
            ),
            present
        );
        // Gone from the kernel: forgotten.
        assert!(t
            .observe(&[], &HashSet::new(), t0 + Duration::from_secs(32), grace)
            .is_empty());
        assert_eq!(t.waiting(), 0);
    }
}
