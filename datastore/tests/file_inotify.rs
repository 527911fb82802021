//! The file backend's watches share one inotify instance per opened
//! store: a lab runs an agent per node, each with a watch per kind, all as
//! root, and the kernel allows one user 128 instances by default. (Its own
//! test binary: it counts this process's inotify descriptors.)

mod common;

use std::time::Duration;

use common::file_store;
use tortie_config::resources::{Kind, Object, Resource};
use tortie_datastore::Datastore;

/// This process's open inotify instances.
fn inotify_fds() -> usize {
    std::fs::read_dir("/proc/self/fd")
        .unwrap()
        .filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
        .filter(|l| l.to_string_lossy().contains("inotify"))
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watches_share_one_inotify_instance_and_still_wake() {
    let (s, _dir) = file_store();
    let before = inotify_fds();
    let listing = s.list(Kind::Node).await.unwrap();
    let mut watches = Vec::new();
    for kind in Kind::ALL {
        for _ in 0..3 {
            watches.push((kind, s.watch(kind, listing.revision).await.unwrap()));
        }
    }
    assert_eq!(inotify_fds() - before, 1, "{} watches", watches.len());
    // Every Node watch sees a new Node.
    let node = Resource::Node(Object::new("n1", Default::default()));
    s.create(node).await.unwrap();
    for (kind, w) in watches.iter_mut().filter(|(k, _)| *k == Kind::Node) {
        let e = tokio::time::timeout(Duration::from_secs(5), w.next())
            .await
            .unwrap_or_else(|_| panic!("{kind} watch: no event"));
        assert_eq!(e.unwrap().unwrap().key.name, "n1");
    }
}
