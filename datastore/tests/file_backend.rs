//! File backend specifics: the user's resources.yaml (read-only, ingested
//! as revisions), corrupt files, crash recovery from the journal, several
//! processes on one directory, journal compaction.

mod common;

use std::fs;
use std::process::Command;
use std::time::Duration;

use common::{count, file_store, handle, state_dir};
use tortie_config::resources::{IPPoolSpec, Key, Kind, Object, Resource};
use tortie_datastore::{Action, Datastore, FileStore, StoreError, TypedStore, Watch, WatchEvent};

async fn next(w: &mut Watch) -> WatchEvent {
    match tokio::time::timeout(Duration::from_secs(10), w.next()).await {
        Ok(Some(Ok(e))) => e,
        other => panic!("expected a watch event, got {other:?}"),
    }
}

fn pool(name: &str, cidr: &str, nat: bool) -> String {
    format!(
        "apiVersion: projectcalico.org/v3\nkind: IPPool\nmetadata:\n  name: {name}\nspec:\n  cidr: {cidr}\n  natOutgoing: {nat}\n"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn user_file_is_read_only_and_its_edits_are_revisions() {
    let (s, dir) = file_store();
    let user = dir.path().join("resources.yaml");
    fs::write(
        &user,
        format!(
            "{}---\n{}",
            pool("a", "10.244.0.0/16", false),
            pool("b", "10.245.0.0/16", false)
        ),
    )
    .unwrap();

    let pools = s.list_typed::<IPPoolSpec>().await.unwrap();
    assert_eq!(pools.len(), 2);
    assert_eq!(
        pools[0].0.spec.block_size,
        Some(26),
        "Calico default filled in"
    );
    let listing = s.list(Kind::IPPool).await.unwrap();

    match s
        .create(Resource::IPPool(Object::new(
            "c",
            IPPoolSpec::new("10.9.0.0/16".parse().unwrap()),
        )))
        .await
    {
        Err(e @ StoreError::ReadOnly { .. }) => {
            assert!(e.to_string().contains("resources.yaml"), "{e}")
        }
        other => panic!("writing a user kind: {other:?}"),
    }

    let mut w = s.watch(Kind::IPPool, listing.revision).await.unwrap();
    // Edit a, drop b, add c: three events, in file order of kinds/names.
    fs::write(
        &user,
        format!(
            "{}---\n{}",
            pool("a", "10.244.0.0/16", true),
            pool("c", "10.246.0.0/16", false)
        ),
    )
    .unwrap();
    let mut seen = Vec::new();
    for _ in 0..3 {
        let e = next(&mut w).await;
        assert!(e.revision > listing.revision);
        seen.push((e.action, e.key.name));
    }
    assert_eq!(
        seen,
        [
            (Action::Updated, "a".to_string()),
            (Action::Deleted, "b".into()),
            (Action::Created, "c".into())
        ]
    );
    let (a, _) = s.get_typed::<IPPoolSpec>("a").await.unwrap().unwrap();
    assert!(a.spec.nat_outgoing);
}

#[tokio::test]
async fn bad_user_file_names_file_and_line_and_spares_the_state() {
    let (s, dir) = file_store();
    let user = dir.path().join("resources.yaml");
    fs::write(&user, "apiVersion: tortie.io/v1\nkind: IPPool\nmetadata:\n  name: a\nspec:\n  cidr: 10.0.0.0/8\n  blockSize: 40\n").unwrap();
    let e = s.list(Kind::IPPool).await.unwrap_err().to_string();
    assert!(e.contains("resources.yaml:7: spec.blockSize: 40"), "{e}");
    // The system's own kinds still work.
    s.create(handle("h", 1)).await.unwrap();
    // A system kind in the user's file is refused by name.
    fs::write(
        &user,
        "apiVersion: tortie.io/v1\nkind: Handle\nmetadata:\n  name: x\nspec:\n  handleID: x\n",
    )
    .unwrap();
    let e = s.list(Kind::IPPool).await.unwrap_err().to_string();
    assert!(
        e.contains("Handle/x") && e.contains("written by the system"),
        "{e}"
    );
    // So is a Node: each tortie-node registers its own.
    fs::write(
        &user,
        "apiVersion: projectcalico.org/v3\nkind: Node\nmetadata:\n  name: n1\nspec: {}\n",
    )
    .unwrap();
    let e = s.list(Kind::BGPPeer).await.unwrap_err().to_string();
    assert!(
        e.contains("Node/n1: Node objects are registered by tortie-node"),
        "{e}"
    );
    // Nodes are written through the interface instead.
    s.create(tortie_config::resources::Resource::Node(
        tortie_config::resources::Object::new("n1", Default::default()),
    ))
    .await
    .unwrap();
}

#[tokio::test]
async fn corrupt_state_file_is_reported_and_never_overwritten() {
    let (s, dir) = file_store();
    s.create(handle("h", 1)).await.unwrap();
    let file = state_dir(&dir).join("handles.json");
    let good = fs::read_to_string(&file).unwrap();
    let broken = good.replacen("\"revision\"", "\"revision\" 7", 2);
    fs::write(&file, &broken).unwrap();
    for result in [
        s.get(&Key::new(Kind::Handle, "h")).await.map(|_| ()),
        s.create(handle("g", 1)).await.map(|_| ()),
    ] {
        match result {
            Err(e @ StoreError::Corrupt { .. }) => {
                let text = e.to_string();
                assert!(
                    text.contains("handles.json:") && text.contains("corrupt"),
                    "{text}"
                );
            }
            other => panic!("expected a corrupt-file error, got {other:?}"),
        }
    }
    assert_eq!(fs::read_to_string(&file).unwrap(), broken, "left as found");
    // Other kinds are unaffected.
    assert!(s.list(Kind::Block).await.unwrap().items.is_empty());
}

/// A crash after the journal append but before the state file: the next
/// operation replays the entry. A torn journal line is cut.
#[tokio::test]
async fn crash_between_writes_is_repaired_by_the_next_call() {
    let (s, dir) = file_store();
    let v = s.create(handle("h", 1)).await.unwrap();
    let journal = state_dir(&dir).join("journal.jsonl");
    let entry = serde_json::json!({
        "rev": v.revision + 1, "kind": "Handle", "name": "h", "action": "updated",
        "object": handle("h", 5).to_value(),
    });
    let mut text = fs::read_to_string(&journal).unwrap();
    text.push_str(&format!("{entry}\n"));
    // And a torn append after it (the crash happened mid-line).
    text.push_str("{\"rev\": 99, \"kind\": \"Hand");
    fs::write(&journal, &text).unwrap();

    // A fresh store (another process) sees the repaired state.
    let again = FileStore::open(dir.path()).unwrap();
    let got = again
        .get(&Key::new(Kind::Handle, "h"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!((count(&got.resource), got.revision), (5, v.revision + 1));
    let on_disk = fs::read_to_string(state_dir(&dir).join("handles.json")).unwrap();
    let want = format!("\"revision\": {}", v.revision + 1);
    assert!(
        on_disk.contains(&want),
        "replayed into the state file: {on_disk}"
    );
    assert!(
        fs::read_to_string(&journal).unwrap().ends_with('\n'),
        "torn line cut"
    );
    let next_rev = again.create(handle("g", 1)).await.unwrap().revision;
    assert_eq!(
        next_rev,
        v.revision + 2,
        "revisions continue after the replayed one"
    );
}

/// Not a test of its own: the body of one child process of
/// `processes_share_the_directory_safely` (runs only when that test sets
/// TORTIE_TEST_DIR).
#[test]
fn helper_child_incrementer() {
    let Ok(dir) = std::env::var("TORTIE_TEST_DIR") else {
        println!("helper only: runs when TORTIE_TEST_DIR is set");
        return;
    };
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(increment(FileStore::open(dir).unwrap(), 50));
}

async fn increment(s: FileStore, n: usize) {
    let mut tasks = Vec::new();
    for _ in 0..n {
        let s = s.clone();
        tasks.push(tokio::spawn(async move {
            let key = Key::new(Kind::Handle, "counter");
            loop {
                let v = s.get(&key).await.unwrap().unwrap();
                match s
                    .update(handle("counter", count(&v.resource) + 1), v.revision)
                    .await
                {
                    Ok(_) => return,
                    Err(e) if e.is_conflict() => continue,
                    Err(e) => panic!("{e}"),
                }
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
}

/// Two other processes and this one each add 50 to one counter through
/// the same directory: flock + CAS lose nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn processes_share_the_directory_safely() {
    let (s, dir) = file_store();
    s.create(handle("counter", 0)).await.unwrap();
    let exe = std::env::current_exe().unwrap();
    let children: Vec<_> = (0..2)
        .map(|_| {
            Command::new(&exe)
                .args(["--exact", "helper_child_incrementer", "--nocapture"])
                .env("TORTIE_TEST_DIR", dir.path())
                .spawn()
                .unwrap()
        })
        .collect();
    increment(s.clone(), 50).await;
    for mut c in children {
        let status = tokio::task::spawn_blocking(move || c.wait())
            .await
            .unwrap()
            .unwrap();
        assert!(status.success(), "child failed: {status}");
    }
    let v = s
        .get(&Key::new(Kind::Handle, "counter"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(count(&v.resource), 150);
}

/// Past the journal's limit, old history is dropped: a watch from before
/// it says so; the state is intact and watching from now works.
#[tokio::test]
async fn compacted_history_is_reported() {
    let (s, dir) = file_store();
    let s = s.with_journal_limits(6_000, 2_000);
    let mut v = s.create(handle("h", 0)).await.unwrap();
    let first = v.revision;
    for i in 1..=60 {
        v = s.update(handle("h", i), v.revision).await.unwrap();
    }
    match s.watch(Kind::Handle, first).await {
        Err(StoreError::Compacted { requested, oldest }) => {
            assert_eq!(requested, first);
            assert!(oldest > first + 1, "{oldest}");
        }
        other => panic!("expected Compacted, got {other:?}"),
    }
    let size = fs::metadata(state_dir(&dir).join("journal.jsonl"))
        .unwrap()
        .len();
    assert!(size <= 6_000 + 500, "journal bounded: {size} bytes");
    let mut w = s.watch(Kind::Handle, v.revision).await.unwrap();
    let v2 = s.update(handle("h", 7), v.revision).await.unwrap();
    assert_eq!(next(&mut w).await.revision, v2.revision);
    assert_eq!(
        count(
            &s.get(&Key::new(Kind::Handle, "h"))
                .await
                .unwrap()
                .unwrap()
                .resource
        ),
        7
    );
}

/// A typo in resources.yaml reaches watchers as an error naming the file
/// and line, once; the watch goes on and sees the fixed file.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_survives_a_bad_user_file() {
    let (s, dir) = file_store();
    let user = dir.path().join("resources.yaml");
    fs::write(&user, pool("a", "10.244.0.0/16", false)).unwrap();
    // From 0: the first ingest is history too.
    let mut w = s.watch(Kind::IPPool, 0).await.unwrap();
    let e = next(&mut w).await;
    assert_eq!((e.action, e.key.name.as_str()), (Action::Created, "a"));

    fs::write(&user, pool("a", "10.244.0.1/16", false)).unwrap();
    match tokio::time::timeout(Duration::from_secs(10), w.next()).await {
        Ok(Some(Err(StoreError::UserFile(m)))) => {
            assert!(m.contains("resources.yaml:6: spec.cidr"), "{m}")
        }
        other => panic!("expected the file's error, got {other:?}"),
    }
    // Reported once: nothing more while the file stays bad.
    assert!(tokio::time::timeout(Duration::from_millis(2500), w.next())
        .await
        .is_err());
    fs::write(&user, pool("a", "10.244.0.0/16", true)).unwrap();
    let e = next(&mut w).await;
    assert_eq!((e.action, e.key.name.as_str()), (Action::Updated, "a"));
}

/// The store's watches share one reader: a watch whose consumer is slow
/// (its buffer full while the reader publishes on) misses publications
/// and catches up by reading the journal itself; one that keeps up takes
/// the shared reads. Both see every change of their kind once, in order,
/// and nothing of other kinds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_and_fast_watches_see_every_change_once_in_order() {
    let (s, _dir) = file_store();
    let from = s.list(Kind::Handle).await.unwrap().revision;
    let mut slow = s.watch(Kind::Handle, from).await.unwrap();
    let fast = s.watch(Kind::Handle, from).await.unwrap();
    let mut other = s.watch(Kind::Node, from).await.unwrap();
    let consumer = tokio::spawn(take(fast, 400));
    let written = update_handle(&s, 400).await;
    // The slow one starts reading only now: its buffer (256) overflowed.
    let mut got = Vec::new();
    for _ in 0..400 {
        got.push(next(&mut slow).await.revision);
    }
    assert_eq!(got, written, "slow watch");
    assert_eq!(consumer.await.unwrap(), written, "fast watch");
    // A kind that had nothing for 400 revisions gets its next change.
    let node = s
        .create(Resource::Node(Object::new("n1", Default::default())))
        .await
        .unwrap();
    let e = next(&mut other).await;
    assert_eq!((e.revision, e.key.name.as_str()), (node.revision, "n1"));
    for w in [&mut slow, &mut other] {
        assert!(
            tokio::time::timeout(Duration::from_millis(300), w.next())
                .await
                .is_err(),
            "nothing more"
        );
    }
}

/// A watch that keeps up goes on across compactions of the journal (the
/// reader then reads the new file whole).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_watch_that_keeps_up_survives_compactions() {
    let (s, _dir) = file_store();
    let s = s.with_journal_limits(40_000, 20_000);
    let from = s.list(Kind::Handle).await.unwrap().revision;
    let w = s.watch(Kind::Handle, from).await.unwrap();
    let consumer = tokio::spawn(take(w, 400));
    let written = update_handle(&s, 400).await;
    let size = fs::metadata(s.state_dir().join("journal.jsonl"))
        .unwrap()
        .len();
    assert!(size < 40_000 + 1_000, "compacted meanwhile: {size} bytes");
    assert_eq!(consumer.await.unwrap(), written);
}

/// A watch, and the store's reader it starts, read the journal back from
/// its end to the watch's revision (not the whole journal): changes
/// written meanwhile by another opened store all reach the watch, once
/// and in order. Each round starts a new reader.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_watch_started_during_writes_misses_none_of_them() {
    let (s, dir) = file_store();
    update_handle(&s, 300).await;
    let writer = FileStore::open(dir.path()).unwrap();
    for round in 0..20 {
        let from = s.list(Kind::Handle).await.unwrap().revision;
        let w = writer.clone();
        let writes = tokio::spawn(async move {
            let mut v = w.get(&Key::new(Kind::Handle, "h")).await.unwrap().unwrap();
            let mut revs = Vec::new();
            for i in 0..4 {
                v = w
                    .update(handle("h", round * 10 + i), v.revision)
                    .await
                    .unwrap();
                revs.push(v.revision);
            }
            revs
        });
        let watch = s.watch(Kind::Handle, from).await.unwrap();
        let written = writes.await.unwrap();
        assert_eq!(take(watch, 4).await, written, "round {round}");
    }
}

/// The next `n` revisions of `w`.
async fn take(mut w: Watch, n: usize) -> Vec<u64> {
    let mut revs = Vec::new();
    for _ in 0..n {
        revs.push(next(&mut w).await.revision);
    }
    revs
}

/// Creates handle `h` and updates it until `n` revisions are written:
/// their revisions.
async fn update_handle(s: &FileStore, n: u32) -> Vec<u64> {
    let mut written = Vec::new();
    let mut v = s.create(handle("h", 0)).await.unwrap();
    written.push(v.revision);
    for i in 1..n {
        v = s.update(handle("h", i), v.revision).await.unwrap();
        written.push(v.revision);
    }
    written
}

/// The reader is woken by inotify on the journal file itself: before the
/// journal exists, and after compactions replaced it. Each change is
/// awaited before the next is written, so without inotify (a poll every
/// second, a recheck every ten) twenty of them would take ten seconds
/// or more.
#[tokio::test]
async fn inotify_follows_the_journal_through_creation_and_compactions() {
    let (s, _dir) = file_store();
    let s = s.with_journal_limits(1_200, 500);
    let journal = s.state_dir().join("journal.jsonl");
    assert!(!journal.exists(), "a fresh store has no journal yet");
    let mut w = s.watch(Kind::Handle, 0).await.unwrap();
    let started = std::time::Instant::now();
    let mut v = s.create(handle("h", 0)).await.unwrap();
    assert_eq!(next(&mut w).await.revision, v.revision);
    let ino = || {
        use std::os::unix::fs::MetadataExt;
        fs::metadata(&journal).unwrap().ino()
    };
    let first = ino();
    let mut replaced = 0;
    let mut last = first;
    for i in 1..20 {
        v = s.update(handle("h", i), v.revision).await.unwrap();
        assert_eq!(next(&mut w).await.revision, v.revision);
        if ino() != last {
            replaced += 1;
            last = ino();
        }
    }
    let took = started.elapsed();
    assert!(replaced >= 2, "the journal was compacted {replaced} times");
    assert!(
        took < Duration::from_secs(5),
        "20 changes, each awaited, took {took:?}: the reader was not woken by inotify"
    );
}
