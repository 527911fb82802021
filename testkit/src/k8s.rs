//! A real Kubernetes control plane for tests: etcd and kube-apiserver (the
//! binaries `scripts/k8s.sh` builds and caches, v1.20.2) on free loopback
//! ports, in a directory of its own, with a kubeconfig for an
//! administrator. Everything it started is killed, and the directory
//! removed, on drop.

use std::io::Write as _;
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// How long the API server may take to answer `/readyz` (5-7 s on two
/// idle cores; far more when the machine is busy).
const READY: Duration = Duration::from_secs(90);

/// A running etcd + kube-apiserver.
pub struct ControlPlane {
    dir: PathBuf,
    cache: PathBuf,
    etcd: Option<Child>,
    etcd_url: String,
    apiserver: Option<Child>,
    port: u16,
}

static COUNTER: AtomicUsize = AtomicUsize::new(0);

/// Where `scripts/k8s.sh` keeps what it built: `$TORTIE_K8S`, or
/// `/var/cache/tortie-k8s`.
pub fn cache() -> PathBuf {
    std::env::var_os("TORTIE_K8S")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/var/cache/tortie-k8s"))
}

// ===== impl ControlPlane =====

impl ControlPlane {
    /// Starts one for `test`, or says why it cannot (no binaries, no
    /// etcd: a failure under `CI=true`) and returns `None`.
    pub fn start(test: &str) -> Option<ControlPlane> {
        let cache = cache();
        let apiserver = cache.join("bin/kube-apiserver");
        if !apiserver.exists() || !cache.join("pki/admin.crt").exists() {
            crate::missing(
                test,
                &format!(
                    "no Kubernetes in {} (scripts/k8s.sh all builds it, ~15-20 min once)",
                    cache.display()
                ),
            );
            return None;
        }
        if Command::new("etcd").arg("--version").output().is_err() {
            crate::missing(test, "no `etcd` binary (apt-get install etcd-server)");
            return None;
        }
        let n = COUNTER.fetch_add(1, Ordering::SeqCst);
        let dir = std::env::temp_dir().join(format!("tortie-k8s-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("a directory for the control plane");
        let mut plane = ControlPlane {
            dir,
            cache,
            etcd: None,
            etcd_url: String::new(),
            apiserver: None,
            port: crate::free_port(),
        };
        plane.spawn_etcd();
        plane.spawn_apiserver();
        plane.write_kubeconfig();
        plane.wait_ready();
        Some(plane)
    }

    /// The kubeconfig of an administrator (`system:masters`).
    pub fn kubeconfig(&self) -> PathBuf {
        self.dir.join("admin.kubeconfig")
    }

    /// `https://127.0.0.1:<port>`.
    pub fn server(&self) -> String {
        format!("https://127.0.0.1:{}", self.port)
    }

    /// Runs `kubectl ARGS` as the administrator: its standard output, or
    /// its standard error when it fails.
    pub fn kubectl(&self, args: &[&str]) -> Result<String, String> {
        let out = Command::new(self.kubectl_path())
            .arg("--kubeconfig")
            .arg(self.kubeconfig())
            .args(args)
            .output()
            .map_err(|e| format!("kubectl: {e}"))?;
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).into_owned())
        } else {
            Err(format!(
                "kubectl {}: {}",
                args.join(" "),
                String::from_utf8_lossy(&out.stderr).trim()
            ))
        }
    }

    /// The API server's log, for failure messages.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("apiserver.log")).unwrap_or_default()
    }

    fn kubectl_path(&self) -> PathBuf {
        let ours = self.cache.join("bin/kubectl");
        if ours.exists() {
            ours
        } else {
            PathBuf::from("kubectl")
        }
    }

    fn pki(&self, file: &str) -> PathBuf {
        self.cache.join("pki").join(file)
    }

    fn spawn_etcd(&mut self) {
        let (client, peer) = (crate::free_port(), crate::free_port());
        let client = format!("http://127.0.0.1:{client}");
        let peer = format!("http://127.0.0.1:{peer}");
        let name = format!("k8s-{}", self.port);
        let log = std::fs::File::create(self.dir.join("etcd.log")).expect("etcd log");
        let child = Command::new("etcd")
            .args(["--name", &name])
            .arg("--data-dir")
            .arg(self.dir.join("etcd"))
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
            .args(["--initial-cluster", &format!("{name}={peer}")])
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawn etcd");
        self.etcd = Some(child);
        self.etcd_url = client;
    }

    fn spawn_apiserver(&mut self) {
        let log = std::fs::File::create(self.dir.join("apiserver.log")).expect("apiserver log");
        let pki = |f: &str| self.pki(f).display().to_string();
        let child = Command::new(self.cache.join("bin/kube-apiserver"))
            .arg(format!("--etcd-servers={}", self.etcd_url))
            .args(["--bind-address=127.0.0.1", "--advertise-address=127.0.0.1"])
            .arg(format!("--secure-port={}", self.port))
            .arg("--insecure-port=0")
            .arg(format!("--tls-cert-file={}", pki("apiserver.crt")))
            .arg(format!("--tls-private-key-file={}", pki("apiserver.key")))
            .arg(format!("--client-ca-file={}", pki("ca.crt")))
            .arg(format!("--service-account-key-file={}", pki("sa.pub")))
            .arg(format!(
                "--service-account-signing-key-file={}",
                pki("sa.key")
            ))
            .arg("--service-account-issuer=https://kubernetes.default.svc.cluster.local")
            .arg("--service-cluster-ip-range=10.96.0.0/16")
            .arg("--authorization-mode=Node,RBAC")
            .arg("--allow-privileged=true")
            .arg(format!(
                "--kubelet-client-certificate={}",
                pki("apiserver-kubelet-client.crt")
            ))
            .arg(format!(
                "--kubelet-client-key={}",
                pki("apiserver-kubelet-client.key")
            ))
            .arg("--kubelet-preferred-address-types=Hostname,InternalIP")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawn kube-apiserver");
        self.apiserver = Some(child);
    }

    fn write_kubeconfig(&self) {
        let text = format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: test\n  cluster:\n    server: {}\n    certificate-authority: {}\nusers:\n- name: admin\n  user:\n    client-certificate: {}\n    client-key: {}\ncontexts:\n- name: test\n  context:\n    cluster: test\n    user: admin\ncurrent-context: test\n",
            self.server(),
            self.pki("ca.crt").display(),
            self.pki("admin.crt").display(),
            self.pki("admin.key").display(),
        );
        let mut f = std::fs::File::create(self.kubeconfig()).expect("kubeconfig");
        f.write_all(text.as_bytes()).expect("write the kubeconfig");
    }

    fn wait_ready(&mut self) {
        let deadline = Instant::now() + READY;
        loop {
            if TcpStream::connect(("127.0.0.1", self.port)).is_ok()
                && self.kubectl(&["get", "--raw", "/readyz"]).is_ok()
            {
                return;
            }
            if let Some(Ok(Some(status))) = self.apiserver.as_mut().map(|c| c.try_wait()) {
                panic!(
                    "kube-apiserver exited ({status}); log:\n{}",
                    tail(&self.log())
                );
            }
            assert!(
                Instant::now() < deadline,
                "kube-apiserver not ready in {READY:?}; log:\n{}",
                tail(&self.log())
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Kills the API server (SIGKILL: its connections close); etcd stays.
    pub fn stop_apiserver(&mut self) {
        if let Some(mut child) = self.apiserver.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the API server again on the same port and waits until it is
    /// ready.
    pub fn start_apiserver(&mut self) {
        assert!(self.apiserver.is_none(), "the API server is running");
        self.spawn_apiserver();
        self.wait_ready();
    }

    /// Applies a manifest file and waits for its CRDs to be served.
    pub fn apply(&self, manifest: &Path) -> Result<String, String> {
        let out = self.kubectl(&["apply", "-f", &manifest.display().to_string()])?;
        self.kubectl(&[
            "wait",
            "--for=condition=Established",
            "crd",
            "--all",
            "--timeout=60s",
        ])?;
        Ok(out)
    }
}

impl Drop for ControlPlane {
    fn drop(&mut self) {
        for child in [self.apiserver.take(), self.etcd.take()]
            .into_iter()
            .flatten()
        {
            let mut child = child;
            let _ = child.kill();
            let _ = child.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The last 40 lines of a log.
fn tail(log: &str) -> String {
    let lines: Vec<&str> = log.lines().collect();
    lines[lines.len().saturating_sub(40)..].join("\n")
}
