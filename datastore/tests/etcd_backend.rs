//! etcd backend specifics against a real etcd: a watch survives an etcd
//! restart and resumes without loss or repeats; errors while etcd is down
//! name the operation; a corrupt value names its key; compacted history is
//! reported.

mod common;

use std::time::Duration;

use common::{count, handle, EtcdServer};
use tortie_config::resources::{Key, Kind};
use tortie_datastore::{Action, Datastore, EtcdStore, StoreError, Watch, WatchEvent};

async fn next(w: &mut Watch) -> WatchEvent {
    match tokio::time::timeout(Duration::from_secs(30), w.next()).await {
        Ok(Some(Ok(e))) => e,
        other => panic!("expected a watch event, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_resumes_across_an_etcd_restart() {
    let Some(mut server) = EtcdServer::start() else {
        return;
    };
    let s = server.store().await;
    let v1 = s.create(handle("h", 1)).await.unwrap();
    let mut w = s.watch(Kind::Handle, v1.revision - 1).await.unwrap();
    assert_eq!(next(&mut w).await.revision, v1.revision);

    server.stop();
    // While etcd is down, operations fail with the operation named.
    match s.get(&Key::new(Kind::Handle, "h")).await {
        Err(e @ StoreError::Etcd { .. }) => assert!(e.to_string().contains("get Handle/h"), "{e}"),
        other => panic!("expected an etcd error, got {other:?}"),
    }
    server.spawn();

    // The same store (its client reconnects) writes after the restart;
    // retry until etcd answers again.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let v2 = loop {
        match s.update(handle("h", 2), v1.revision).await {
            Ok(v) => break v,
            Err(StoreError::Etcd { .. }) if std::time::Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(100)).await
            }
            Err(e) => panic!("update after restart: {e}; etcd log: {}", server.log()),
        }
    };
    let v3 = s.update(handle("h", 3), v2.revision).await.unwrap();
    let e2 = next(&mut w).await;
    let e3 = next(&mut w).await;
    assert_eq!(
        (e2.revision, e2.action, count(e2.resource.as_ref().unwrap())),
        (v2.revision, Action::Updated, 2)
    );
    assert_eq!(
        (e3.revision, count(e3.resource.as_ref().unwrap())),
        (v3.revision, 3)
    );
    assert!(
        tokio::time::timeout(Duration::from_millis(500), w.next())
            .await
            .is_err(),
        "no repeats"
    );
}

#[tokio::test]
async fn corrupt_value_names_its_key() {
    let Some(server) = EtcdServer::start() else {
        return;
    };
    let s = server.store().await;
    // Find our prefix from a real write, then break that key with a raw client.
    s.create(handle("x", 1)).await.unwrap();
    let mut raw = etcd_client::Client::connect([server.endpoint()], None)
        .await
        .unwrap();
    let all = raw
        .get("/", Some(etcd_client::GetOptions::new().with_prefix()))
        .await
        .unwrap();
    let key = all.kvs()[0].key_str().unwrap().to_string();
    assert!(key.ends_with("/Handle/x"), "{key}");
    raw.put(key.clone(), "{not json", None).await.unwrap();
    match s.get(&Key::new(Kind::Handle, "x")).await {
        Err(e @ StoreError::Corrupt { .. }) => {
            assert!(e.to_string().contains(&format!("etcd:{key}")), "{e}")
        }
        other => panic!("expected Corrupt, got {other:?}"),
    }
    // A listing leaves the bad record out, names it, and keeps the others.
    s.create(handle("y", 2)).await.unwrap();
    let listing = s.list(Kind::Handle).await.unwrap();
    let names: Vec<String> = listing
        .items
        .iter()
        .map(|v| v.resource.key().name)
        .collect();
    assert_eq!(names, ["y"]);
    assert_eq!(listing.rejected.len(), 1, "{:?}", listing.rejected);
    assert_eq!(listing.rejected[0].name, "x");
    assert!(
        listing.rejected[0].error.contains(&format!("etcd:{key}")),
        "{}",
        listing.rejected[0].error
    );
}

#[tokio::test]
async fn compacted_history_is_reported() {
    let Some(server) = EtcdServer::start() else {
        return;
    };
    let s: EtcdStore = server.store().await;
    let v1 = s.create(handle("c", 1)).await.unwrap();
    let v2 = s.update(handle("c", 2), v1.revision).await.unwrap();
    let v3 = s.update(handle("c", 3), v2.revision).await.unwrap();
    let mut raw = etcd_client::Client::connect([server.endpoint()], None)
        .await
        .unwrap();
    raw.compact(v3.revision as i64, None).await.unwrap();
    let mut w = s.watch(Kind::Handle, v1.revision).await.unwrap();
    match tokio::time::timeout(Duration::from_secs(10), w.next()).await {
        Ok(Some(Err(StoreError::Compacted { requested, oldest }))) => {
            assert_eq!((requested, oldest), (v1.revision, v3.revision))
        }
        other => panic!("expected Compacted, got {other:?}"),
    }
}
