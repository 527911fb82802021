//! Test backends: the file store on a temp dir, and a real `etcd` on
//! 127.0.0.1 (random ports, temp data dir, killed on drop).

#![allow(dead_code)]

use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use tortie_config::resources::{IPPool, IPPoolSpec, Kind, Resource};
use tortie_datastore::{AnyStore, Datastore, StoreConfig};

static COUNTER: AtomicUsize = AtomicUsize::new(0);

/// A real etcd; killed and its data dir removed on drop.
pub struct Etcd {
    child: Child,
    dir: tempfile::TempDir,
    /// `http://127.0.0.1:<port>`.
    pub endpoint: String,
}

/// A store with pools in it, and what keeps it alive.
pub struct Backend {
    /// The store.
    pub store: AnyStore,
    /// How to open it again (e.g. from a plugin's network config).
    pub config: StoreConfig,
    _dir: Option<tempfile::TempDir>,
    _etcd: Option<Etcd>,
    _kube: Option<tortie_testkit::k8s::ControlPlane>,
}

impl Etcd {
    /// Starts one, or `None` if `etcd` is not installed (said on the real
    /// stderr; a failure under `CI=true`).
    pub fn start() -> Option<Etcd> {
        if Command::new("etcd").arg("--version").output().is_err() {
            tortie_testkit::missing(
                "etcd half",
                "no `etcd` binary (apt-get install etcd-server)",
            );
            return None;
        }
        let dir = tempfile::tempdir().expect("temp dir");
        let (client, peer) = (free_port(), free_port());
        let endpoint = format!("http://127.0.0.1:{client}");
        let peer_url = format!("http://127.0.0.1:{peer}");
        let name = format!(
            "ipam-{}-{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::SeqCst)
        );
        let log = std::fs::File::create(dir.path().join("etcd.log")).expect("log");
        let child = Command::new("etcd")
            .args(["--name", &name, "--data-dir"])
            .arg(dir.path().join("data"))
            .args(["--listen-client-urls", &endpoint])
            .args(["--advertise-client-urls", &endpoint])
            .args(["--listen-peer-urls", &peer_url])
            .args(["--initial-advertise-peer-urls", &peer_url])
            .args(["--initial-cluster", &format!("{name}={peer_url}")])
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawn etcd");
        let etcd = Etcd {
            child,
            dir,
            endpoint,
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        while TcpStream::connect(("127.0.0.1", client)).is_err() {
            assert!(
                Instant::now() < deadline,
                "etcd did not start: {}",
                etcd.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        Some(etcd)
    }

    /// Its log, for failure messages.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("etcd.log")).unwrap_or_default()
    }
}

impl Drop for Etcd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Backend {
    /// A file store on a temp dir whose `resources.yaml` holds `pools`.
    pub fn file(pools: &[IPPool]) -> Backend {
        let dir = tempfile::tempdir().expect("temp dir");
        let yaml: String = pools
            .iter()
            .map(|p| {
                format!(
                    "---\napiVersion: tortie.io/v1\nkind: IPPool\nmetadata:\n  name: {}\nspec:\n  cidr: {}\n  blockSize: {}\n  disabled: {}\n",
                    p.metadata.name,
                    p.spec.cidr,
                    p.spec.block_size(),
                    p.spec.disabled
                )
            })
            .collect();
        std::fs::write(dir.path().join("resources.yaml"), yaml).expect("write resources.yaml");
        let config = StoreConfig::File {
            dir: dir.path().to_path_buf(),
        };
        let store = AnyStore::File(tortie_datastore::FileStore::open(dir.path()).expect("open"));
        Backend {
            store,
            config,
            _dir: Some(dir),
            _etcd: None,
            _kube: None,
        }
    }

    /// The file store's directory (panics for etcd).
    pub fn dir(&self) -> std::path::PathBuf {
        self._dir
            .as_ref()
            .expect("a file backend")
            .path()
            .to_path_buf()
    }

    /// A real etcd holding `pools`, or `None` when etcd is not installed.
    pub async fn etcd(pools: &[IPPool]) -> Option<Backend> {
        let etcd = Etcd::start()?;
        let config = StoreConfig::Etcd {
            endpoints: vec![etcd.endpoint.clone()],
            prefix: "/tortie-test".into(),
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        let store = loop {
            match AnyStore::open(&config).await {
                Ok(s) if s.list(Kind::IPPool).await.is_ok() => break s,
                Ok(_) | Err(_) if Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(100)).await
                }
                Ok(_) => panic!("etcd not answering: {}", etcd.log()),
                Err(e) => panic!("etcd: {e}: {}", etcd.log()),
            }
        };
        add_pools(&store, pools).await;
        Some(Backend {
            store,
            config,
            _dir: None,
            _etcd: Some(etcd),
            _kube: None,
        })
    }

    /// A real Kubernetes API server (etcd + kube-apiserver, the CRDs of
    /// deploy/crds.yaml) holding `pools`, or `None` when the Kubernetes
    /// binaries are not built (said on the real stderr; a failure under
    /// `CI=true`).
    pub async fn kube(pools: &[IPPool]) -> Option<Backend> {
        let plane = tortie_testkit::k8s::ControlPlane::start("ipam on kubernetes")?;
        let crds = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/crds.yaml");
        plane.apply(&crds).unwrap_or_else(|e| panic!("{e}"));
        let config = StoreConfig::Kubernetes {
            kubeconfig: Some(plane.kubeconfig()),
        };
        let store = AnyStore::open(&config).await.expect("kubernetes store");
        add_pools(&store, pools).await;
        Some(Backend {
            store,
            config,
            _dir: None,
            _etcd: None,
            _kube: Some(plane),
        })
    }
}

/// Writes `pools` into `store`.
async fn add_pools(store: &AnyStore, pools: &[IPPool]) {
    for p in pools {
        store
            .create(Resource::IPPool(p.clone()))
            .await
            .expect("create pool");
    }
}

/// A pool named `name` of `cidr` with block size `size`.
pub fn pool(name: &str, cidr: &str, size: u8) -> IPPool {
    let mut spec = IPPoolSpec::new(cidr.parse().expect("cidr"));
    spec.block_size = Some(size);
    IPPool::new(name, spec)
}

pub use tortie_testkit::free_port;
