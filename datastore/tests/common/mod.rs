//! Test helpers: a real etcd server on loopback, and test objects.

#![allow(dead_code)]

use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use tortie_config::resources::{HandleSpec, Object, Resource};
use tortie_datastore::{EtcdStore, FileStore};

/// A real `etcd` (Debian `etcd-server`) on 127.0.0.1 with random ports
/// and a temp data dir; killed (and the dir removed) on drop.
pub struct EtcdServer {
    child: Option<Child>,
    dir: tempfile::TempDir,
    client_port: u16,
    peer_port: u16,
    name: String,
}

static COUNTER: AtomicUsize = AtomicUsize::new(0);

impl EtcdServer {
    /// Starts one, or `None` when `etcd` is not installed (said on the
    /// real stderr; a failure under `CI=true`).
    pub fn start() -> Option<EtcdServer> {
        if Command::new("etcd").arg("--version").output().is_err() {
            tortie_testkit::missing(
                "etcd backend test",
                "no `etcd` binary (apt-get install etcd-server)",
            );
            return None;
        }
        let n = COUNTER.fetch_add(1, Ordering::SeqCst);
        let mut server = EtcdServer {
            child: None,
            dir: tempfile::tempdir().expect("temp dir"),
            client_port: tortie_testkit::free_port(),
            peer_port: tortie_testkit::free_port(),
            name: format!("tortie-test-{}-{n}", std::process::id()),
        };
        server.spawn();
        Some(server)
    }

    /// `http://127.0.0.1:<port>`.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.client_port)
    }

    /// Kills the server (data stays).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts it again on the same ports and data.
    pub fn spawn(&mut self) {
        let client = self.endpoint();
        let peer = format!("http://127.0.0.1:{}", self.peer_port);
        let log = std::fs::File::create(self.dir.path().join("etcd.log")).expect("log file");
        let child = Command::new("etcd")
            .args(["--name", &self.name])
            .arg("--data-dir")
            .arg(self.dir.path().join("data"))
            .args([
                "--listen-client-urls",
                &client,
                "--advertise-client-urls",
                &client,
            ])
            .args([
                "--listen-peer-urls",
                &peer,
                "--initial-advertise-peer-urls",
                &peer,
            ])
            .args(["--initial-cluster", &format!("{}={peer}", self.name)])
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawn etcd");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(20);
        while TcpStream::connect(("127.0.0.1", self.client_port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "etcd did not listen on {client}; log: {}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The server's log, for failure messages.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("etcd.log")).unwrap_or_default()
    }

    /// A store on it under a fresh prefix, once etcd answers.
    pub async fn store(&self) -> EtcdStore {
        let prefix = format!("/test-{}", COUNTER.fetch_add(1, Ordering::SeqCst));
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            match EtcdStore::connect(&[self.endpoint()], &prefix).await {
                Ok(s) => {
                    use tortie_datastore::Datastore;
                    if s.list(tortie_config::resources::Kind::Handle).await.is_ok() {
                        return s;
                    }
                }
                Err(e) if Instant::now() > deadline => {
                    panic!("etcd not ready: {e}; log: {}", self.log())
                }
                Err(_) => {}
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

impl Drop for EtcdServer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A file store in a fresh temp dir (kept alive by the returned guard).
pub fn file_store() -> (FileStore, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = FileStore::open(dir.path()).expect("open file store");
    (store, dir)
}

/// A Handle named `name` holding `count` addresses in one block.
pub fn handle(name: &str, count: u32) -> Resource {
    Resource::Handle(Object::new(
        name,
        HandleSpec {
            handle_id: name.to_string(),
            block: [("10.244.0.0/26".to_string(), count)].into_iter().collect(),
            deleted: false,
        },
    ))
}

/// The count of a Handle made by [`handle`].
pub fn count(resource: &Resource) -> u32 {
    match resource {
        Resource::Handle(h) => h.spec.block.get("10.244.0.0/26").copied().unwrap_or(0),
        other => panic!("not a handle: {other:?}"),
    }
}

/// Where a file store keeps its state.
pub fn state_dir(dir: &tempfile::TempDir) -> PathBuf {
    dir.path().join("state")
}
