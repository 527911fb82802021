//! When felix last wrote each route of ours, for `tortiectl explain`:
//! per prefix the wall-clock time and what the write was (add, replace,
//! delete). Recorded once per pass for the writes that succeeded, so the
//! cost follows the writes, not the table (100,000 records took 1.5-7 ms
//! in a release build on a loaded 2-core machine, where writing those
//! routes takes at least 0.45 s); read on request through
//! [`Queries::last_writes`](crate::reconciler::Queries::last_writes).
//!
//! Deletions are remembered until more than [`DELETED_MAX`] pile up;
//! then the deletion records are dropped together (a prefix that is
//! gone for good is not kept for ever).

use std::collections::BTreeSet;
use std::time::{SystemTime, UNIX_EPOCH};

use ipnet::IpNet;
use rustc_hash::FxHashMap;
use serde::{Deserialize, Serialize};

use crate::diff::Plan;
use crate::kernel::apply::{Failure, Request};

/// Deletion records kept at most.
pub const DELETED_MAX: usize = 4096;

/// What a write did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum WriteKind {
    /// `ip route add`.
    Added,
    /// `ip route replace`.
    Replaced,
    /// `ip route del`.
    Deleted,
}

/// The last write of one prefix.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LastWrite {
    /// Milliseconds since the Unix epoch.
    pub at_unix_ms: u64,
    /// What the write did.
    pub kind: WriteKind,
}

/// The last write of every prefix written.
#[derive(Debug, Default)]
pub struct WriteLog {
    last: FxHashMap<IpNet, LastWrite>,
    deleted: usize,
}

// ===== impl WriteLog =====

impl WriteLog {
    /// Records `writes` (prefix, kind) sent now, but those that `failed`.
    pub fn record(&mut self, writes: &[(IpNet, WriteKind)], failed: &[Failure]) {
        self.record_at(writes, failed, unix_ms(SystemTime::now()));
    }

    /// [`Self::record`] at a given time.
    pub fn record_at(&mut self, writes: &[(IpNet, WriteKind)], failed: &[Failure], at: u64) {
        let failed: BTreeSet<IpNet> = failed.iter().map(|f| dst(&f.request)).collect();
        // A table coming in grows the map once, not once per doubling
        // (rewrites of prefixes it holds need no room).
        self.last
            .reserve(writes.len().saturating_sub(self.last.len()));
        for (prefix, kind) in writes {
            if failed.contains(prefix) {
                continue;
            }
            let old = self.last.insert(
                *prefix,
                LastWrite {
                    at_unix_ms: at,
                    kind: *kind,
                },
            );
            let was_deleted = old.is_some_and(|w| w.kind == WriteKind::Deleted);
            match (*kind == WriteKind::Deleted, was_deleted) {
                (true, false) => self.deleted += 1,
                (false, true) => self.deleted -= 1,
                _ => {}
            }
        }
        if self.deleted > DELETED_MAX {
            self.last.retain(|_, w| w.kind != WriteKind::Deleted);
            self.deleted = 0;
        }
    }

    /// The last write of `prefix`, if felix wrote it since it started.
    pub fn get(&self, prefix: &IpNet) -> Option<LastWrite> {
        self.last.get(prefix).copied()
    }
}

/// The prefixes and kinds of `requests`, before they are sent.
pub fn kinds(requests: &[Request]) -> Vec<(IpNet, WriteKind)> {
    requests
        .iter()
        .map(|r| {
            let kind = match r {
                Request::Add(_) => WriteKind::Added,
                Request::Replace(_) => WriteKind::Replaced,
                Request::Delete(_) => WriteKind::Deleted,
            };
            (dst(r), kind)
        })
        .collect()
}

/// The prefixes and kinds of a plan's writes.
pub fn plan_kinds(plan: &Plan) -> Vec<(IpNet, WriteKind)> {
    let del = plan
        .delete
        .iter()
        .map(|r| (r.route.dst, WriteKind::Deleted));
    let rep = plan.replace.iter().map(|r| (r.dst, WriteKind::Replaced));
    let add = plan.add.iter().map(|r| (r.dst, WriteKind::Added));
    del.chain(rep).chain(add).collect()
}

fn dst(r: &Request) -> IpNet {
    match r {
        Request::Add(route) | Request::Replace(route) => route.dst,
        Request::Delete(installed) => installed.route.dst,
    }
}

fn unix_ms(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::route::{InstalledRoute, KernelRoute};

    fn net(s: &str) -> IpNet {
        s.parse().unwrap()
    }

    #[test]
    fn the_last_successful_write_is_kept() {
        let mut log = WriteLog::default();
        let a = KernelRoute::blackhole(net("10.244.0.0/26"));
        let b = KernelRoute::link(net("10.244.0.2/32"), "tort00000000001");
        let writes = kinds(&[Request::Add(a.clone()), Request::Add(b.clone())]);
        let failed = vec![Failure {
            request: Request::Add(b.clone()),
            errno: Some(19),
            message: "no such device".into(),
        }];
        log.record_at(&writes, &failed, 1000);
        assert_eq!(
            log.get(&a.dst),
            Some(LastWrite {
                at_unix_ms: 1000,
                kind: WriteKind::Added
            })
        );
        assert_eq!(log.get(&b.dst), None, "it failed: not written");
        let del = Request::Delete(InstalledRoute {
            route: a.clone(),
            metric: None,
        });
        log.record_at(&kinds(&[del, Request::Replace(b.clone())]), &[], 2000);
        assert_eq!(log.get(&a.dst).map(|w| w.kind), Some(WriteKind::Deleted));
        assert_eq!(
            log.get(&b.dst),
            Some(LastWrite {
                at_unix_ms: 2000,
                kind: WriteKind::Replaced
            })
        );
    }

    #[test]
    fn deletion_records_are_bounded() {
        let mut log = WriteLog::default();
        let kept = net("10.0.0.0/8");
        log.record_at(&[(kept, WriteKind::Added)], &[], 1);
        let gone: Vec<_> = (0..=DELETED_MAX as u32)
            .map(|i| {
                let a = std::net::Ipv4Addr::from(0x0b00_0000 + i);
                (IpNet::from(std::net::IpAddr::V4(a)), WriteKind::Deleted)
            })
            .collect();
        log.record_at(&gone[..DELETED_MAX], &[], 2);
        assert_eq!(log.last.len(), DELETED_MAX + 1, "at the limit: all kept");
        log.record_at(&gone[DELETED_MAX..], &[], 3);
        assert_eq!(log.last.len(), 1, "over it: the deletions go");
        assert_eq!(log.get(&kept).map(|w| w.at_unix_ms), Some(1));
    }
}
