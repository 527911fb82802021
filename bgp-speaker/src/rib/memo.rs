//! One decision run's export: the targets grouped by class, and the
//! attributes computed once per (best attributes, source kind, class,
//! export-rule verdict), so that a change costs one transform and one memo
//! lookup per class, not per peer. A class's export rules (by id in the
//! class) are run per prefix first: they see the prefix, not the
//! attributes, so the memo stays keyed by attributes.

use std::sync::Arc;

use rustc_hash::FxHashMap;

use crate::route::{Afi, PathAttrs};

use super::export::{self, ExportClass, SourceKind};
use super::group::{group, ClassGroup, Group};
use super::policy::{ExportVerdict, NO_POLICY};
use super::table::{Ctx, Key, LOCAL};
use super::{Interner, PeerId};

/// Export targets of one decision run, grouped by peer class, with the
/// attributes already computed per (best attributes, source kind, class): a
/// change costs one transform and one memo lookup per class, not per peer.
pub(super) struct ExportRun {
    /// Shared between runs while the targets stay the same.
    pub groups: Arc<Vec<ClassGroup>>,
    /// Distinguishes runs: within one run a prefix is queued at most once
    /// per peer.
    pub seq: u64,
    pub memo: Memo,
    /// The run exports to some members only (peers coming up): their
    /// groups' Adj-RIB-Out stays as the other members were told.
    pub partial: bool,
}

/// Export attributes computed in one run.
#[derive(Default)]
pub(super) struct Memo {
    #[allow(clippy::type_complexity)]
    map: FxHashMap<MemoKey, (Option<Arc<PathAttrs>>, Arc<PathAttrs>)>,
    /// The last lookup (runs of routes share attributes).
    last: Option<(MemoKey, Option<Arc<PathAttrs>>)>,
    /// The last source's kind (`None`: the source is gone).
    last_kind: Option<(u32, Option<SourceKind>)>,
}

/// What export attributes are computed from in a run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
struct MemoKey {
    /// The best path's attributes, by address (pinned by the memo).
    attrs: usize,
    kind: SourceKind,
    class: ExportClass,
    /// An export rule accepted the prefix.
    accepted: bool,
}

// ===== impl Memo =====

impl Memo {
    /// The attributes of a best path from `source` as sent to `class`
    /// (`None`: not sent), computed once per (attributes, source kind,
    /// class, `accepted`) in a run. `accepted`: an export rule of the
    /// class accepted the prefix.
    pub fn attrs_for(
        &mut self,
        source: u32,
        attrs: &Arc<PathAttrs>,
        class: &ExportClass,
        accepted: bool,
        ctx: &Ctx<'_>,
        interner: &mut Interner,
    ) -> Option<Arc<PathAttrs>> {
        let kind = match self.last_kind {
            Some((s, kind)) if s == source => kind,
            _ => {
                let kind = match source {
                    LOCAL => Some(SourceKind::Local),
                    s => ctx.peers.get(&s).map(|p| p.source_kind(ctx.local)),
                };
                self.last_kind = Some((source, kind));
                kind
            }
        }?;
        let key = MemoKey {
            attrs: Arc::as_ptr(attrs) as usize,
            kind,
            class: *class,
            accepted,
        };
        if let Some((k, o)) = &self.last {
            if *k == key {
                return o.clone();
            }
        }
        let o = match self.map.get(&key) {
            Some((o, _)) => o.clone(),
            None => {
                let o = (export::allowed(ctx.local, kind, class, accepted)
                    && export::aggregate_rule(kind, class, attrs))
                .then(|| export::transform(ctx.local, kind, class, attrs))
                .flatten()
                .map(|a| interner.intern(a));
                // The Arc kept in the memo pins the address used as key.
                self.map.insert(key, (o.clone(), attrs.clone()));
                o
            }
        };
        self.last = Some((key, o.clone()));
        o
    }
}

// ===== impl ExportRun =====

impl ExportRun {
    pub fn new(targets: Vec<(PeerId, ExportClass, Vec<Afi>)>) -> ExportRun {
        ExportRun::with_groups(Arc::new(group(targets)))
    }

    /// A run for targets already grouped (see [`group`]).
    pub fn with_groups(groups: Arc<Vec<ClassGroup>>) -> ExportRun {
        static SEQ: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
        let seq = SEQ.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        ExportRun {
            groups,
            seq,
            memo: Memo::default(),
            partial: false,
        }
    }
}

/// Recomputes the group Adj-RIB-Out entry of `k` (whose best path is
/// `best`: source and attributes) for the run's classes; a change goes to
/// the group's log, which the members read (see [`Group`]). `groups` are
/// the run's groups, in the order of `run.groups` (see [`take_members`]).
pub(super) fn export_one<K: Key>(
    groups: &mut [Group<K>],
    k: K,
    best: Option<(u32, &Arc<PathAttrs>)>,
    ctx: &Ctx<'_>,
    interner: &mut Interner,
    run: &mut ExportRun,
) {
    let source = best.map(|(s, _)| s);
    let classes = run.groups.iter().zip(groups.iter_mut());
    for (cg, g) in classes {
        let class = &cg.class;
        // The class's export rules, on the prefix and where it came from:
        // a rejected prefix is not sent, an accepted one even where the
        // class's own settings would not send it.
        let judged = || {
            let verdict = match source {
                Some(s) if class.policy != NO_POLICY => {
                    ctx.policies.export(class.policy, &k.prefix(), s != LOCAL)
                }
                _ => ExportVerdict::Default,
            };
            let best = best.filter(|_| verdict != ExportVerdict::Reject);
            (best, verdict == ExportVerdict::Accept)
        };
        if run.partial {
            // Peers coming up were queued everything the group holds when
            // they joined; a prefix the group has no entry for (nobody but
            // its source was a member) is added now, and logged for them.
            if g.adj_out.contains_key(&k) {
                continue;
            }
            let (Some((s, attrs)), accepted) = judged() else {
                continue;
            };
            let Some(new) = run.memo.attrs_for(s, attrs, class, accepted, ctx, interner) else {
                continue;
            };
            g.change(k, Some((new, s)), run.seq);
            continue;
        }
        // A class whose only member is the route's source (an ingest
        // from one peer) needs no export attributes at all.
        let only_source = cg.members.len() == 1 && source == Some(cg.members[0].id);
        let new = match judged() {
            (Some((s, attrs)), accepted) if !only_source => {
                run.memo.attrs_for(s, attrs, class, accepted, ctx, interner)
            }
            _ => None,
        };
        if new.is_none() && !g.adj_out.contains_key(&k) {
            continue;
        }
        // Kept even when no member but the source is told it: a member
        // joining later is sent it.
        g.change(k, new.zip(source), run.seq);
    }
}
