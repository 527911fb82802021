//! One conformance suite, run against the three backends: the file backend
//! on a temp dir, a real etcd server on loopback, and a real Kubernetes
//! API server (one watch check differs: see `watch_from_zero_*`). Each
//! check is a generic async function over `Datastore`; the macro at the
//! bottom instantiates all of them for file and etcd, and `kube` runs
//! them in turn on one control plane.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{count, handle};
use tortie_config::resources::{
    AllocationAttribute, BgpStatus, BlockSpec, CalicoNodeStatusSpec, DaemonState, Key, Kind,
    NodeStatusReport, Object, PeerStatus, PeerType, Resource, SessionState,
};
use tortie_datastore::{
    Action, Datastore, Only, Op, StoreError, TypedStore, Versioned, Watch, WatchEvent,
};

/// Next event, or fail after a deadline (a watch that stalls is a bug).
async fn next(w: &mut Watch) -> WatchEvent {
    match tokio::time::timeout(Duration::from_secs(10), w.next()).await {
        Ok(Some(Ok(e))) => e,
        Ok(Some(Err(e))) => panic!("watch error: {e}"),
        Ok(None) => panic!("watch ended"),
        Err(_) => panic!("no watch event within 10 s"),
    }
}

/// Create, get, update with the right and a stale revision, delete.
async fn crud<S: Datastore>(s: &S) {
    let key = Key::new(Kind::Handle, "h1");
    assert_eq!(s.get(&key).await.unwrap(), None);

    let v1 = s.create(handle("h1", 1)).await.unwrap();
    assert!(v1.revision > 0);
    let got = s.get(&key).await.unwrap().expect("created object");
    assert_eq!(got, v1);

    match s.create(handle("h1", 9)).await {
        Err(StoreError::AlreadyExists { revision, .. }) => assert_eq!(revision, v1.revision),
        other => panic!("create twice: {other:?}"),
    }

    let v2 = s.update(handle("h1", 2), v1.revision).await.unwrap();
    assert!(v2.revision > v1.revision);
    assert_eq!(count(&s.get(&key).await.unwrap().unwrap().resource), 2);

    match s.update(handle("h1", 3), v1.revision).await {
        Err(StoreError::Conflict {
            expected, current, ..
        }) => {
            assert_eq!((expected, current), (v1.revision, Some(v2.revision)))
        }
        other => panic!("stale update: {other:?}"),
    }
    assert_eq!(
        count(&s.get(&key).await.unwrap().unwrap().resource),
        2,
        "a failed CAS changes nothing"
    );

    match s.delete(&key, Some(v1.revision)).await {
        Err(StoreError::Conflict { .. }) => {}
        other => panic!("stale delete: {other:?}"),
    }
    let rd = s.delete(&key, Some(v2.revision)).await.unwrap();
    assert!(rd > v2.revision);
    assert_eq!(s.get(&key).await.unwrap(), None);
    assert!(matches!(
        s.update(handle("h1", 4), v2.revision).await,
        Err(StoreError::NotFound { .. })
    ));
    assert!(matches!(
        s.delete(&key, None).await,
        Err(StoreError::NotFound { .. })
    ));

    // Deleted then created again: a fresh object with a newer revision.
    let v3 = s.create(handle("h1", 5)).await.unwrap();
    assert!(v3.revision > rd);
    assert!(s.delete(&key, None).await.unwrap() > v3.revision);

    // Objects are validated before they are stored.
    let mut bad = BlockSpec::new("10.0.0.0/30".parse().unwrap(), None);
    bad.unallocated.clear();
    match s.create(Resource::Block(Object::new("bad", bad))).await {
        Err(StoreError::Invalid { source, .. }) => {
            assert_eq!(source.field(), Some("spec.unallocated"))
        }
        other => panic!("invalid block: {other:?}"),
    }
}

/// A `CalicoNodeStatus` with `peers` (address, state) written `at`.
fn node_status(name: &str, at: &str, peers: &[(&str, SessionState)]) -> Resource {
    let mut spec = CalicoNodeStatusSpec::for_node(name);
    let mut status = NodeStatusReport {
        last_updated: Some(at.into()),
        bgp: BgpStatus::of(
            peers
                .iter()
                .map(|(ip, state)| PeerStatus {
                    peer_ip: ip.parse().unwrap(),
                    kind: Some(PeerType::NodeMesh),
                    state: Some(*state),
                    since: Some(at.into()),
                })
                .collect(),
        ),
        ..NodeStatusReport::default()
    };
    status.agent.bird_v4.state = Some(DaemonState::Ready);
    spec.status = Some(status);
    Resource::CalicoNodeStatus(Object::new(name, spec))
}

/// `CalicoNodeStatus`, the kind with a top-level status: created bare (as
/// a user would), its status written by compare-and-swap as the node
/// agent does, read back and watched with it, a stale write refused.
async fn node_status_kind<S: Datastore>(s: &S) {
    let key = Key::new(Kind::CalicoNodeStatus, "n1");
    let start = s.list(Kind::CalicoNodeStatus).await.unwrap().revision;
    let mut w = s.watch(Kind::CalicoNodeStatus, start).await.unwrap();
    let bare = Resource::CalicoNodeStatus(Object::new("n1", CalicoNodeStatusSpec::for_node("n1")));
    let v0 = s.create(bare.clone()).await.unwrap();
    assert_eq!(s.get(&key).await.unwrap().unwrap().resource, bare);

    let up = node_status(
        "n1",
        "2026-01-02T03:04:05Z",
        &[
            ("10.0.0.2", SessionState::Established),
            ("fd00::2", SessionState::Active),
        ],
    );
    let v1 = s.update(up.clone(), v0.revision).await.unwrap();
    assert!(v1.revision > v0.revision);
    let got = s.get(&key).await.unwrap().unwrap();
    assert_eq!(got, v1);
    assert_eq!(got.resource, up, "the status is stored with the object");

    let down = node_status(
        "n1",
        "2026-01-02T03:05:00Z",
        &[("10.0.0.2", SessionState::Idle)],
    );
    let v2 = s.update(down.clone(), v1.revision).await.unwrap();
    match s.update(up.clone(), v1.revision).await {
        Err(StoreError::Conflict { current, .. }) => assert_eq!(current, Some(v2.revision)),
        other => panic!("stale status write: {other:?}"),
    }
    let listed = s.list(Kind::CalicoNodeStatus).await.unwrap();
    assert_eq!(listed.items, std::slice::from_ref(&v2));

    // The watch sees each write, status included (the last one as written).
    let mut last = None;
    while last.as_ref().map(|e: &WatchEvent| e.revision) != Some(v2.revision) {
        let e = next(&mut w).await;
        assert_eq!(e.key, key);
        last = Some(e);
    }
    assert_eq!(last.unwrap().resource, Some(down));
    s.delete(&key, Some(v2.revision)).await.unwrap();
    assert_eq!(s.get(&key).await.unwrap(), None);
}

/// Typed helpers: a Block read, changed and written back with its
/// revision (the IPAM pattern); a stale write of it conflicts.
async fn typed_block_cas<S: Datastore>(s: &S) {
    let cidr = "10.244.3.0/26".parse().unwrap();
    let name = BlockSpec::name_for(&cidr);
    let r0 = s
        .create_typed(Object::new(
            name.clone(),
            BlockSpec::new(cidr, Some("host:n1".into())),
        ))
        .await
        .unwrap();
    let (mut block, r) = s.get_typed::<BlockSpec>(&name).await.unwrap().unwrap();
    assert_eq!(r, r0);
    let slot = block.spec.unallocated.remove(0);
    block.spec.allocations[slot as usize] = Some(0);
    block.spec.attributes.push(AllocationAttribute {
        handle_id: Some("net.c1.eth0".into()),
        secondary: Default::default(),
    });
    let r1 = s.update_typed(block.clone(), r).await.unwrap();
    assert!(r1 > r);
    assert!(s.update_typed(block, r).await.unwrap_err().is_conflict());
    let all = s.list_typed::<BlockSpec>().await.unwrap();
    assert_eq!(all.len(), 1);
    assert_eq!((all[0].0.spec.allocations[0], all[0].1), (Some(0), r1));
}

/// List returns one kind, sorted by name, and a revision to watch from.
async fn list<S: Datastore>(s: &S) {
    let empty = s.list(Kind::Handle).await.unwrap();
    assert!(empty.items.is_empty());
    for name in ["c", "a", "b"] {
        s.create(handle(name, 1)).await.unwrap();
    }
    let cidr = "10.244.1.0/26".parse().unwrap();
    let block = s
        .create(Resource::Block(Object::new(
            BlockSpec::name_for(&cidr),
            BlockSpec::new(cidr, None),
        )))
        .await
        .unwrap();
    let l = s.list(Kind::Handle).await.unwrap();
    let names: Vec<String> = l.items.iter().map(|v| v.resource.key().name).collect();
    assert_eq!(names, ["a", "b", "c"]);
    assert!(l.items.iter().all(|v| v.resource.kind() == Kind::Handle));
    assert!(
        l.revision >= block.revision,
        "listing revision is the store's"
    );
    let blocks = s.list(Kind::Block).await.unwrap();
    assert_eq!(blocks.items.len(), 1);
    assert_eq!(blocks.items[0], block);
}

/// A watch from the listing's revision sees create, update, delete in
/// order, and nothing of other kinds.
async fn watch_order<S: Datastore>(s: &S) {
    let start = s.list(Kind::Handle).await.unwrap().revision;
    let mut w = s.watch(Kind::Handle, start).await.unwrap();
    let a1 = s.create(handle("a", 1)).await.unwrap();
    let cidr = "10.244.2.0/26".parse().unwrap();
    s.create(Resource::Block(Object::new(
        BlockSpec::name_for(&cidr),
        BlockSpec::new(cidr, None),
    )))
    .await
    .unwrap();
    let a2 = s.update(handle("a", 2), a1.revision).await.unwrap();
    let gone = s
        .delete(&Key::new(Kind::Handle, "a"), Some(a2.revision))
        .await
        .unwrap();
    let b = s.create(handle("b", 7)).await.unwrap();

    let want = [
        (a1.revision, Action::Created, "a", Some(1)),
        (a2.revision, Action::Updated, "a", Some(2)),
        (gone, Action::Deleted, "a", None),
        (b.revision, Action::Created, "b", Some(7)),
    ];
    for (revision, action, name, c) in want {
        let e = next(&mut w).await;
        assert_eq!(
            (e.revision, e.action, e.key.name.as_str()),
            (revision, action, name),
            "{e:?}"
        );
        assert_eq!(e.key.kind, Kind::Handle);
        assert_eq!(e.resource.as_ref().map(count), c);
    }
    // Nothing else (the Block change is another kind).
    assert!(tokio::time::timeout(Duration::from_millis(300), w.next())
        .await
        .is_err());
}

/// A batch: every check passes and every write is made, or nothing is
/// written and the error names the first op that failed; watches see the
/// batch's changes in order.
async fn batch<S: Datastore>(s: &S) {
    let start = s.list(Kind::Handle).await.unwrap().revision;
    let mut w = s.watch(Kind::Handle, start).await.unwrap();
    let a = s.create(handle("a", 1)).await.unwrap();
    let d = s.create(handle("d", 1)).await.unwrap();
    let cidr = "10.244.9.0/26".parse().unwrap();
    let block = Resource::Block(Object::new(
        BlockSpec::name_for(&cidr),
        BlockSpec::new(cidr, None),
    ));
    let b_key = Key::new(Kind::Handle, "b");
    let block_key = block.key();

    // A stale update last: nothing of the batch is written.
    let ops = vec![
        Op::Create(block.clone()),
        Op::Create(handle("b", 1)),
        Op::Update(handle("a", 5), a.revision - 1),
    ];
    match s.apply(ops).await {
        Err(StoreError::Conflict {
            key,
            expected,
            current,
        }) => {
            assert_eq!(
                (key.name.as_str(), expected, current),
                ("a", a.revision - 1, Some(a.revision))
            )
        }
        other => panic!("stale update in a batch: {other:?}"),
    }
    unchanged(s, &block_key, &a, "stale update").await;
    // A create of a key that exists; a delete of one that does not.
    match s
        .apply(vec![Op::Create(block.clone()), Op::Create(handle("a", 2))])
        .await
    {
        Err(StoreError::AlreadyExists { key, revision }) => {
            assert_eq!((key.name.as_str(), revision), ("a", a.revision))
        }
        other => panic!("create of an existing key in a batch: {other:?}"),
    }
    unchanged(s, &block_key, &a, "existing key").await;
    match s
        .apply(vec![
            Op::Create(handle("b", 1)),
            Op::Delete(Key::new(Kind::Handle, "zz"), None),
        ])
        .await
    {
        Err(StoreError::NotFound { key }) => assert_eq!(key.name, "zz"),
        other => panic!("delete of nothing in a batch: {other:?}"),
    }
    unchanged(s, &block_key, &a, "missing key").await;
    // A key twice; an invalid object.
    match s
        .apply(vec![Op::Put(handle("b", 1)), Op::Remove(b_key.clone())])
        .await
    {
        Err(StoreError::Repeated { key }) => assert_eq!(key, b_key),
        other => panic!("a key twice: {other:?}"),
    }
    let mut bad = BlockSpec::new("10.0.0.0/30".parse().unwrap(), None);
    bad.unallocated.clear();
    match s
        .apply(vec![
            Op::Create(handle("b", 1)),
            Op::Create(Resource::Block(Object::new("bad", bad))),
        ])
        .await
    {
        Err(StoreError::Invalid { key, .. }) => assert_eq!(key.name, "bad"),
        other => panic!("invalid object in a batch: {other:?}"),
    }
    unchanged(s, &block_key, &a, "invalid object").await;
    assert_eq!(
        s.apply(Vec::new()).await.unwrap(),
        0,
        "an empty batch writes nothing"
    );

    // All checks pass: every write is made.
    let r = s
        .apply(vec![
            Op::Create(block.clone()),
            Op::Create(handle("b", 1)),
            Op::Update(handle("a", 2), a.revision),
            Op::Delete(Key::new(Kind::Handle, "d"), Some(d.revision)),
            Op::Remove(Key::new(Kind::Handle, "never-was")),
            Op::Put(handle("c", 3)),
        ])
        .await
        .unwrap();
    assert!(r > d.revision);
    assert!(s.get(&block_key).await.unwrap().is_some());
    let got_a = s.get(&Key::new(Kind::Handle, "a")).await.unwrap().unwrap();
    assert_eq!(count(&got_a.resource), 2);
    assert!(got_a.revision > d.revision && got_a.revision <= r);
    assert_eq!(s.get(&Key::new(Kind::Handle, "d")).await.unwrap(), None);
    // Put replaces what is there.
    s.apply(vec![
        Op::Put(handle("c", 4)),
        Op::Remove(Key::new(Kind::Handle, "b")),
    ])
    .await
    .unwrap();
    assert_eq!(
        count(
            &s.get(&Key::new(Kind::Handle, "c"))
                .await
                .unwrap()
                .unwrap()
                .resource
        ),
        4
    );
    assert_eq!(s.get(&b_key).await.unwrap(), None);

    // The watch: the single writes, then each batch's changes in order.
    let want = [
        (Action::Created, "a", Some(1)),
        (Action::Created, "d", Some(1)),
        (Action::Created, "b", Some(1)),
        (Action::Updated, "a", Some(2)),
        (Action::Deleted, "d", None),
        (Action::Created, "c", Some(3)),
        (Action::Updated, "c", Some(4)),
        (Action::Deleted, "b", None),
    ];
    let mut last = start;
    for (action, name, c) in want {
        let e = next(&mut w).await;
        assert_eq!((e.action, e.key.name.as_str()), (action, name), "{e:?}");
        assert_eq!(e.resource.as_ref().map(count), c);
        assert!(e.revision >= last, "revisions never go back: {e:?}");
        last = e.revision;
    }
    assert!(tokio::time::timeout(Duration::from_millis(300), w.next())
        .await
        .is_err());
}

/// A filtered watch: only the objects whose text holds the marker, then
/// every later change of those (a hand-over to another node once, its
/// deletion only if still held); the rest never reach the caller.
async fn watch_only<S: Datastore>(s: &S) {
    let block = |n: u8, node: &str| {
        let cidr = format!("10.244.{n}.0/26").parse().unwrap();
        Resource::Block(Object::new(
            BlockSpec::name_for(&cidr),
            BlockSpec::new(cidr, Some(format!("host:{node}"))),
        ))
    };
    let start = s.list(Kind::Block).await.unwrap().revision;
    let mut w = s
        .watch_only(Kind::Block, start, Only::containing("\"host:n1\""))
        .await
        .unwrap();
    let theirs = s.create(block(21, "n2")).await.unwrap();
    s.create(block(22, "n10")).await.unwrap();
    let ours = s.create(block(23, "n1")).await.unwrap();
    s.update(block(21, "n2"), theirs.revision).await.unwrap();
    let given = s.update(block(23, "n2"), ours.revision).await.unwrap();
    // Not ours any more: its later changes are not ours either.
    let again = s.update(block(23, "n3"), given.revision).await.unwrap();
    s.delete(&block(23, "n3").key(), Some(again.revision))
        .await
        .unwrap();
    let mine = s.create(block(24, "n1")).await.unwrap();
    s.delete(&block(24, "n1").key(), Some(mine.revision))
        .await
        .unwrap();
    s.delete(&block(21, "n2").key(), None).await.unwrap();
    let want = [
        (Action::Created, "10-244-23-0-26"),
        (Action::Updated, "10-244-23-0-26"),
        (Action::Created, "10-244-24-0-26"),
        (Action::Deleted, "10-244-24-0-26"),
    ];
    for (action, name) in want {
        let e = next(&mut w).await;
        assert_eq!((e.action, e.key.name.as_str()), (action, name), "{e:?}");
    }
    assert!(tokio::time::timeout(Duration::from_millis(300), w.next())
        .await
        .is_err());
}

/// What a failed batch must leave as it was.
async fn unchanged<S: Datastore>(s: &S, block_key: &Key, a: &Versioned, what: &str) {
    assert_eq!(s.get(block_key).await.unwrap(), None, "{what}: no block");
    let b = Key::new(Kind::Handle, "b");
    assert_eq!(s.get(&b).await.unwrap(), None, "{what}: no b");
    let got = s.get(&Key::new(Kind::Handle, "a")).await.unwrap();
    assert_eq!(got.as_ref(), Some(a), "{what}: a as it was");
}

/// A watch from an old revision replays what happened after it, then
/// continues live.
async fn watch_resume<S: Datastore>(s: &S) {
    let v1 = s.create(handle("r", 1)).await.unwrap();
    let v2 = s.update(handle("r", 2), v1.revision).await.unwrap();
    let v3 = s.update(handle("r", 3), v2.revision).await.unwrap();
    let mut w = s.watch(Kind::Handle, v1.revision).await.unwrap();
    let e = next(&mut w).await;
    assert_eq!((e.revision, e.action), (v2.revision, Action::Updated));
    assert_eq!(e.resource.as_ref().map(count), Some(2));
    let e = next(&mut w).await;
    assert_eq!(
        (e.revision, count(e.resource.as_ref().unwrap())),
        (v3.revision, 3)
    );
    let gone = s.delete(&Key::new(Kind::Handle, "r"), None).await.unwrap();
    let e = next(&mut w).await;
    assert_eq!((e.revision, e.action), (gone, Action::Deleted));
}

/// From 0, the file and etcd backends replay the whole history of the
/// kind they keep.
async fn watch_history_from_zero<S: Datastore>(s: &S) {
    let v1 = s.create(handle("r", 1)).await.unwrap();
    let v2 = s.update(handle("r", 2), v1.revision).await.unwrap();
    let v3 = s.update(handle("r", 3), v2.revision).await.unwrap();
    let gone = s.delete(&Key::new(Kind::Handle, "r"), None).await.unwrap();
    let mut all = s.watch(Kind::Handle, 0).await.unwrap();
    let revisions: Vec<u64> = [
        next(&mut all).await,
        next(&mut all).await,
        next(&mut all).await,
        next(&mut all).await,
    ]
    .iter()
    .map(|e| e.revision)
    .collect();
    assert_eq!(revisions, [v1.revision, v2.revision, v3.revision, gone]);
}

/// From 0, the Kubernetes backend starts with the objects there are now,
/// as creations in revision order (the API server keeps no history
/// beyond its watch cache), then the changes that follow.
async fn watch_from_zero_starts_with_the_present<S: Datastore>(s: &S) {
    let a = s.create(handle("p", 1)).await.unwrap();
    let gone = s.create(handle("q", 1)).await.unwrap();
    s.delete(&gone.resource.key(), None).await.unwrap();
    let b = s.update(handle("p", 2), a.revision).await.unwrap();
    let mut all = s.watch(Kind::Handle, 0).await.unwrap();
    let e = next(&mut all).await;
    assert_eq!(
        (e.action, e.key.name.as_str(), e.revision),
        (Action::Created, "p", b.revision)
    );
    let c = s.create(handle("r", 1)).await.unwrap();
    let e = next(&mut all).await;
    assert_eq!(
        (e.action, e.key.name.as_str(), e.revision),
        (Action::Created, "r", c.revision)
    );
}

/// 100 tasks each add 1 to one counter by read-modify-CAS, retrying on
/// conflict: the result is exactly 100 (no lost update), and revisions
/// seen by the winners are all distinct.
async fn cas_increments<S: Datastore + 'static>(s: Arc<S>) {
    s.create(handle("counter", 0)).await.unwrap();
    let key = Key::new(Kind::Handle, "counter");
    let mut tasks = Vec::new();
    for _ in 0..100 {
        let s = s.clone();
        let key = key.clone();
        tasks.push(tokio::spawn(async move {
            let mut conflicts = 0u32;
            loop {
                let v = s.get(&key).await.unwrap().unwrap();
                let n = count(&v.resource);
                match s.update(handle("counter", n + 1), v.revision).await {
                    Ok(new) => return (new.revision, conflicts),
                    Err(e) if e.is_conflict() => conflicts += 1,
                    Err(e) => panic!("update: {e}"),
                }
            }
        }));
    }
    let mut revisions = Vec::new();
    let mut conflicts = 0;
    for t in tasks {
        let (r, c) = t.await.unwrap();
        revisions.push(r);
        conflicts += c;
    }
    revisions.sort_unstable();
    revisions.dedup();
    assert_eq!(revisions.len(), 100, "every winner got its own revision");
    let end = s.get(&key).await.unwrap().unwrap();
    assert_eq!(count(&end.resource), 100, "no lost update");
    println!("100 CAS increments: {conflicts} conflicts retried");
}

macro_rules! suite {
    ($backend:ident, $setup:expr) => {
        mod $backend {
            use super::*;

            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn crud() {
                let Some((s, _guard)) = ($setup) else { return };
                super::crud(&s).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn typed_block_cas() {
                let Some((s, _guard)) = ($setup) else { return };
                super::typed_block_cas(&s).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn list() {
                let Some((s, _guard)) = ($setup) else { return };
                super::list(&s).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn watch_order() {
                let Some((s, _guard)) = ($setup) else { return };
                super::watch_order(&s).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn batch() {
                let Some((s, _guard)) = ($setup) else { return };
                super::batch(&s).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn watch_only() {
                let Some((s, _guard)) = ($setup) else { return };
                super::watch_only(&s).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn watch_resume() {
                let Some((s, _guard)) = ($setup) else { return };
                super::watch_resume(&s).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn watch_history_from_zero() {
                let Some((s, _guard)) = ($setup) else { return };
                super::watch_history_from_zero(&s).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn node_status_kind() {
                let Some((s, _guard)) = ($setup) else { return };
                super::node_status_kind(&s).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn cas_increments() {
                let Some((s, _guard)) = ($setup) else { return };
                super::cas_increments(Arc::new(s)).await;
            }
        }
    };
}

suite!(file, Some(common::file_store()));
suite!(etcd, {
    match common::EtcdServer::start() {
        Some(server) => Some((server.store().await, server)),
        None => None,
    }
});

/// The Kubernetes backend against a real API server (v1.20.2, with etcd)
/// and the CRDs of `deploy/crds.yaml`, applied with kubectl. One control
/// plane for the whole suite (starting one takes seconds): the checks run
/// one after the other, each on an empty store.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn kube() {
    let Some(plane) =
        tortie_testkit::k8s::ControlPlane::start("datastore conformance (kubernetes)")
    else {
        return;
    };
    let crds = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/crds.yaml");
    plane.apply(&crds).unwrap_or_else(|e| panic!("{e}"));
    let s = Arc::new(
        tortie_datastore::KubeStore::connect(Some(&plane.kubeconfig()))
            .await
            .unwrap(),
    );
    let empty = |s: Arc<tortie_datastore::KubeStore>| async move {
        for kind in [Kind::Block, Kind::BlockAffinity, Kind::Handle] {
            for v in s.list(kind).await.unwrap().items {
                s.delete(&v.resource.key(), None).await.unwrap();
            }
        }
    };
    crud(&*s).await;
    empty(s.clone()).await;
    typed_block_cas(&*s).await;
    empty(s.clone()).await;
    list(&*s).await;
    empty(s.clone()).await;
    watch_order(&*s).await;
    empty(s.clone()).await;
    batch(&*s).await;
    empty(s.clone()).await;
    watch_only(&*s).await;
    empty(s.clone()).await;
    watch_resume(&*s).await;
    empty(s.clone()).await;
    watch_from_zero_starts_with_the_present(&*s).await;
    empty(s.clone()).await;
    node_status_kind(&*s).await;
    empty(s.clone()).await;
    cas_increments(s.clone()).await;
    drop(plane);
}
