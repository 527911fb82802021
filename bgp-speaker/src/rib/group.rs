//! Update groups: the peers of one export class share one Adj-RIB-Out
//! and one change log that every member reads at its own pace; a peer's
//! own view of the family ([`PeerAf`]); how members join, read and leave.

use std::sync::Arc;

use rustc_hash::{FxHashMap, FxHashSet};

use crate::route::{Afi, PathAttrs};

use super::export::ExportClass;
use super::memo::ExportRun;
use super::table::{Key, NONE};
use super::PeerId;

/// Peers of one export class, with the families each negotiated.
#[derive(Debug)]
pub(super) struct ClassGroup {
    pub class: ExportClass,
    pub members: Vec<Member>,
}

/// One member of a [`ClassGroup`].
#[derive(Debug)]
pub(super) struct Member {
    pub id: PeerId,
    pub families: Vec<Afi>,
}

/// The run's members' tables and groups, taken out of the maps, in the
/// order of the run's groups (see [`take_members`]).
pub(super) struct Taken<K> {
    /// Per group, its members' tables.
    pub members: Vec<Vec<PeerAf<K>>>,
    pub groups: Vec<Group<K>>,
}

/// One peer's view of this family.
///
/// The Adj-RIB-In of accepted routes is the peer's paths in the Loc-RIB
/// (no second table keyed by prefix); only rejected prefixes are kept here,
/// so that they count as received and their withdrawal is recognized.
#[derive(Debug)]
pub(super) struct PeerAf<K> {
    /// Prefixes announced but not accepted (import checks).
    pub rejected: FxHashSet<K>,
    /// Paths of this peer in the Loc-RIB.
    pub accepted: u64,
    /// The update group (export class) the peer is in, once it joined.
    pub group: Option<ExportClass>,
    /// Whether the peer negotiated this family (else it is told nothing).
    pub family: bool,
    /// Prefixes to send in their current state, besides the group's log:
    /// everything the group held when the peer joined, a ROUTE-REFRESH, or
    /// the unread log of a peer that fell too far behind. A list, not a
    /// set: `take_out` sends a prefix queued twice once.
    pub pending: Vec<K>,
    /// `pending` may hold a prefix twice; `take_out` then deduplicates.
    pub pending_dups: bool,
    /// How far the peer has read its group's change log (an absolute
    /// position, see `Group::log_base`).
    pub cursor: u64,
}

// ===== impl PeerAf =====

impl<K> Default for PeerAf<K> {
    fn default() -> Self {
        PeerAf {
            rejected: FxHashSet::default(),
            accepted: 0,
            group: None,
            family: false,
            pending: Vec::new(),
            pending_dups: false,
            cursor: 0,
        }
    }
}

/// An update group: the peers of one export class share its Adj-RIB-Out,
/// so a route reflected to a hundred clients is stored once. An entry is
/// the attributes sent for a prefix and the source of that best path:
/// every member but the source has been (or is about to be) told it, so
/// split horizon needs no per-member state.
///
/// What changed is appended to one change log that every member reads at
/// its own pace (a cursor each): a change costs one log entry, not one
/// queue entry per member. The log is trimmed once every member has read
/// it, and a member that falls too far behind (its session is stuck while
/// routes churn) has its unread part turned into a pending list of
/// distinct prefixes, so the log stays bounded.
#[derive(Debug)]
pub(super) struct Group<K> {
    pub adj_out: FxHashMap<K, (Arc<PathAttrs>, u32)>,
    pub members: u32,
    /// Entries per source (so that a member's count is one lookup).
    pub by_source: FxHashMap<u32, u64>,
    pub log: Vec<Change<K>>,
    /// Absolute position of `log[0]`.
    pub log_base: u64,
    /// Absolute positions where a run's changes start (ascending, only
    /// those inside the log): a prefix appears at most once per run, so a
    /// stretch of the log within one run has no duplicates.
    pub run_starts: Vec<u64>,
    /// The run that last appended to the log.
    pub last_run: u64,
}

/// One change of a group's Adj-RIB-Out entry: the prefix and the source
/// of the entry before and after ([`NONE`]: no entry). A member that is
/// neither (or only ever the source) is not affected by it.
#[derive(Clone, Copy, Debug)]
pub(super) struct Change<K> {
    key: K,
    old: u32,
    new: u32,
}

impl<K> Default for Group<K> {
    fn default() -> Self {
        Group {
            adj_out: FxHashMap::default(),
            members: 0,
            by_source: FxHashMap::default(),
            log: Vec::new(),
            log_base: 0,
            run_starts: Vec::new(),
            last_run: 0,
        }
    }
}

impl<K: Key> Group<K> {
    /// What member `id` was told of `k`.
    pub fn told(&self, id: PeerId, k: &K) -> Option<&Arc<PathAttrs>> {
        self.adj_out
            .get(k)
            .filter(|(_, source)| *source != id)
            .map(|(a, _)| a)
    }

    /// Prefixes member `id` was told.
    pub fn told_count(&self, id: PeerId) -> u64 {
        self.adj_out.len() as u64 - self.by_source.get(&id).copied().unwrap_or(0)
    }

    pub fn set(&mut self, k: K, entry: Option<(Arc<PathAttrs>, u32)>) {
        let old = match entry {
            Some(e) => {
                *self.by_source.entry(e.1).or_default() += 1;
                self.adj_out.insert(k, e)
            }
            None => self.adj_out.remove(&k),
        };
        if let Some((_, source)) = old {
            if let Some(n) = self.by_source.get_mut(&source) {
                *n -= 1;
                if *n == 0 {
                    self.by_source.remove(&source);
                }
            }
        }
    }

    /// Position after the last log entry.
    pub fn log_end(&self) -> u64 {
        self.log_base + self.log.len() as u64
    }

    /// Sets the entry of `k` and logs the change, if it is one.
    pub fn change(&mut self, k: K, entry: Option<(Arc<PathAttrs>, u32)>, run: u64) {
        let old = self.adj_out.get(&k);
        let same = match (old, &entry) {
            (None, None) => true,
            (Some((a, s)), Some((b, t))) => Arc::ptr_eq(a, b) && s == t,
            _ => false,
        };
        if same {
            return;
        }
        let old = old.map_or(NONE, |(_, s)| *s);
        let new = entry.as_ref().map_or(NONE, |(_, s)| *s);
        if self.last_run != run {
            self.last_run = run;
            self.run_starts.push(self.log_end());
        }
        self.log.push(Change { key: k, old, new });
        self.set(k, entry);
    }

    /// Whether the log stretch `from..to` may name a prefix twice (it
    /// spans more than one run).
    pub fn may_repeat(&self, from: u64, to: u64) -> bool {
        self.run_starts.iter().any(|&s| s > from && s < to)
    }

    /// Drops the log entries before `upto` (every member has read them).
    pub fn trim(&mut self, upto: u64) {
        let n = upto
            .saturating_sub(self.log_base)
            .min(self.log.len() as u64) as usize;
        if n == 0 {
            return;
        }
        if n == self.log.len() {
            self.log.clear();
            if self.log.capacity() > 4096 {
                // A burst (a full table) is over: give its memory back.
                self.log = Vec::new();
            }
        } else if n >= self.log.len() / 2 {
            self.log.drain(..n);
        } else {
            // Cheaper to wait until more of it was read.
            return;
        }
        self.log_base += n as u64;
        self.run_starts.retain(|&s| s > self.log_base);
    }
}

/// Export targets grouped by class, in the order given.
pub(super) fn group(
    targets: impl IntoIterator<Item = (PeerId, ExportClass, Vec<Afi>)>,
) -> Vec<ClassGroup> {
    let mut groups: Vec<ClassGroup> = Vec::new();
    for (id, class, families) in targets {
        let member = Member { id, families };
        match groups.iter_mut().find(|g| g.class == class) {
            Some(g) => g.members.push(member),
            None => groups.push(ClassGroup {
                class,
                members: vec![member],
            }),
        }
    }
    groups
}

/// Whether a logged change concerns member `id`: what it was told, or is
/// to be told, differs before and after (it is not its own route both
/// times, nor absent).
pub(super) fn concerns<K>(c: &Change<K>, id: PeerId) -> bool {
    let told = |s: u32| s != NONE && s != id;
    told(c.old) || told(c.new)
}

/// Reads member `id`'s log from position `from` into `take` until `take`
/// holds `max` prefixes or the log ends; returns the new position.
pub(super) fn read_log<K: Key>(
    g: &Group<K>,
    id: PeerId,
    from: u64,
    max: usize,
    take: &mut Vec<K>,
) -> u64 {
    debug_assert!(from >= g.log_base, "a member's unread log was trimmed");
    let mut at = from.max(g.log_base);
    let end = g.log_end();
    while at < end && take.len() < max {
        let c = &g.log[(at - g.log_base) as usize];
        if concerns(c, id) {
            take.push(c.key);
        }
        at += 1;
    }
    at
}

/// After a full run: drops the log entries every member has read. When
/// the log is longer than `bound`, a member that had not read what
/// earlier runs logged gets its unread part as a pending list of distinct
/// prefixes instead, so that the log stays bounded while a session is
/// stuck.
pub(super) fn trim_logs<K: Key>(taken: &mut Taken<K>, run: &ExportRun, bound: usize) {
    if run.partial {
        return;
    }
    let groups = run
        .groups
        .iter()
        .zip(taken.members.iter_mut())
        .zip(taken.groups.iter_mut());
    for ((cg, afs), g) in groups {
        let end = g.log_end();
        // Where this run's entries start: a member that had read up to
        // there is keeping up (a large run, such as a full table
        // withdrawn, is not a reason to convert).
        let this_run = match g.run_starts.last() {
            Some(&start) if g.last_run == run.seq => start,
            _ => end,
        };
        if g.log.len() > bound {
            for (m, p) in cg.members.iter().zip(afs.iter_mut()) {
                if !p.family || p.cursor >= this_run {
                    continue;
                }
                let unread = &g.log[(p.cursor - g.log_base) as usize..];
                p.pending
                    .extend(unread.iter().filter(|c| concerns(c, m.id)).map(|c| c.key));
                p.pending.sort_unstable_by_key(|k| k.prefix());
                p.pending.dedup();
                p.pending_dups = false;
                p.cursor = end;
            }
        }
        let read = afs
            .iter()
            .filter(|p| p.family)
            .map(|p| p.cursor)
            .min()
            .unwrap_or(end);
        g.trim(read);
    }
}

/// A peer leaves its update group; the group goes with its last member.
pub(super) fn leave<K>(groups: &mut FxHashMap<ExportClass, Group<K>>, class: ExportClass) {
    if let Some(g) = groups.get_mut(&class) {
        g.members -= 1;
        if g.members == 0 {
            groups.remove(&class);
        }
    }
}

/// Takes the run's members' tables and groups out of the maps, in the
/// order of `run.groups` (so that the export loop indexes them instead of
/// looking each up per prefix); a member new to its group joins it first
/// and is queued everything the group holds but its own routes.
/// [`put_members`] puts them back.
pub(super) fn take_members<K: Key>(
    peers: &mut FxHashMap<PeerId, PeerAf<K>>,
    groups: &mut FxHashMap<ExportClass, Group<K>>,
    run: &ExportRun,
) -> Taken<K> {
    for cg in run.groups.iter() {
        for Member { id, families } in &cg.members {
            let p = peers.entry(*id).or_default();
            if p.group == Some(cg.class) {
                continue;
            }
            if let Some(old) = p.group.take() {
                leave(groups, old);
            }
            let g = groups.entry(cg.class).or_default();
            g.members += 1;
            p.group = Some(cg.class);
            p.family = families.contains(&K::AFI);
            p.cursor = g.log_end();
            if p.family {
                let before = p.pending.len();
                p.pending.extend(
                    g.adj_out
                        .iter()
                        .filter(|(_, (_, source))| source != id)
                        .map(|(k, _)| *k),
                );
                p.pending_dups |= before > 0;
            }
        }
    }
    let members = run
        .groups
        .iter()
        .map(|cg| {
            cg.members
                .iter()
                .map(|m| peers.remove(&m.id).unwrap_or_default())
                .collect()
        })
        .collect();
    let gs = run
        .groups
        .iter()
        .map(|cg| groups.remove(&cg.class).unwrap_or_default())
        .collect();
    Taken {
        members,
        groups: gs,
    }
}

/// Puts back what [`take_members`] took.
pub(super) fn put_members<K>(
    peers: &mut FxHashMap<PeerId, PeerAf<K>>,
    groups: &mut FxHashMap<ExportClass, Group<K>>,
    run: &ExportRun,
    taken: Taken<K>,
) {
    let each = run.groups.iter().zip(taken.members).zip(taken.groups);
    for ((cg, afs), g) in each {
        for (m, af) in cg.members.iter().zip(afs) {
            peers.insert(m.id, af);
        }
        groups.insert(cg.class, g);
    }
}
