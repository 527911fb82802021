//! The lab on the Kubernetes datastore: etcd and a kube-apiserver (v1.20,
//! built by `scripts/k8s.sh`) in the router's namespace at 172.30.1.1, the
//! CRDs applied, and the Kubernetes objects kubelets would make: a Node
//! per lab node before its agent starts, a Pod per lab pod before its CNI
//! ADD (with the pod's namespace and name in `CNI_ARGS`, as a kubelet
//! passes them). No kubelet runs: the lab plays its part.

use std::fs::File;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use super::{interrupt, net, Lab, ETCD};

/// The API server, in the router's namespace.
pub const APISERVER: &str = "https://172.30.1.1:6443";
/// The namespace the lab's pods are in.
pub const POD_NAMESPACE: &str = "default";
/// Tortie's CRDs, as `deploy/crds.yaml` has them.
const CRDS: &str = include_str!("../../../deploy/crds.yaml");

/// Where `scripts/k8s.sh` keeps the Kubernetes binaries and the test PKI:
/// `$TORTIE_K8S`, or `/var/cache/tortie-k8s`.
pub fn cache() -> PathBuf {
    std::env::var_os("TORTIE_K8S")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/var/cache/tortie-k8s"))
}

// ===== impl Lab: kubernetes =====

impl Lab {
    /// The kubeconfig every node, tortie-cni and tortiectl use (the test
    /// PKI's administrator).
    pub fn kubeconfig(&self) -> PathBuf {
        self.spec.dir.join("kubeconfig")
    }

    /// Starts the API server on the lab's etcd, writes the kubeconfig and
    /// applies the CRDs.
    pub(super) fn start_kubernetes(&mut self) -> Result<()> {
        let cache = cache();
        let apiserver = cache.join("bin/kube-apiserver");
        let pki = cache.join("pki");
        if !apiserver.exists() || !pki.join("ca.key").exists() {
            bail!(
                "no Kubernetes in {}: scripts/k8s.sh all builds it (once, ~5-20 min)",
                cache.display()
            );
        }
        let dir = self.spec.dir.clone();
        // A serving certificate for the router's address, from the test CA.
        self.sign(
            "apiserver",
            "/CN=kube-apiserver",
            "serverAuth",
            Some("IP:172.30.1.1,IP:127.0.0.1,DNS:localhost"),
        )?;
        self.write_kubeconfig(
            &self.kubeconfig(),
            &pki.join("admin.crt"),
            &pki.join("admin.key"),
        )?;
        self.start_apiserver()?;
        let crds = dir.join("crds.yaml");
        std::fs::write(&crds, CRDS)?;
        self.apply_crds(&crds)?;
        // No controller manager: the pods' service account by hand.
        let _ = self.kubectl(&["create", "serviceaccount", "default", "-n", POD_NAMESPACE]);
        Ok(())
    }

    /// Starts the API server (on the lab's etcd, with the certificate
    /// `start_kubernetes` made) and waits until it is ready.
    pub fn start_apiserver(&mut self) -> Result<()> {
        let cache = cache();
        let pki = cache.join("pki");
        let dir = self.spec.dir.clone();
        let p = |f: &str| pki.join(f).display().to_string();
        let log = File::create(dir.join("apiserver.log"))?;
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.router])
            .arg(cache.join("bin/kube-apiserver"))
            .arg(format!("--etcd-servers={ETCD}"))
            .args([
                "--bind-address=172.30.1.1",
                "--advertise-address=172.30.1.1",
            ])
            .args(["--secure-port=6443", "--insecure-port=0"])
            .arg(format!(
                "--tls-cert-file={}",
                dir.join("apiserver.crt").display()
            ))
            .arg(format!(
                "--tls-private-key-file={}",
                dir.join("apiserver.key").display()
            ))
            .arg(format!("--client-ca-file={}", p("ca.crt")))
            .arg(format!("--service-account-key-file={}", p("sa.pub")))
            .arg(format!(
                "--service-account-signing-key-file={}",
                p("sa.key")
            ))
            .arg("--service-account-issuer=https://kubernetes.default.svc.cluster.local")
            .arg("--service-cluster-ip-range=10.96.0.0/16")
            .arg("--authorization-mode=Node,RBAC")
            // kubectl exec and logs: the API server calls the kubelets
            // (with kubelets: `kubelet.rs`) at their node address.
            .arg(format!(
                "--kubelet-client-certificate={}",
                p("apiserver-kubelet-client.crt")
            ))
            .arg(format!(
                "--kubelet-client-key={}",
                p("apiserver-kubelet-client.key")
            ))
            .arg("--kubelet-preferred-address-types=InternalIP,Hostname")
            .args(&self.spec.apiserver_args)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log);
        std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
        let child = cmd.spawn().context("starting kube-apiserver")?;
        self.children.push(child);
        let addr: SocketAddr = "172.30.1.1:6443".parse()?;
        let start = Instant::now();
        while net::connect_in(&self.router, addr, Duration::from_millis(500)).is_err()
            || self.kubectl(&["get", "--raw", "/readyz"]).is_err()
        {
            interrupt::check()?;
            if start.elapsed() > Duration::from_secs(90) {
                bail!(
                    "kube-apiserver not ready at {APISERVER} within 90 s; see {}",
                    dir.join("apiserver.log").display()
                );
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        Ok(())
    }

    /// Stops the API server (SIGKILL): the datastore is unreachable until
    /// [`Self::start_apiserver`].
    pub fn stop_apiserver(&mut self) -> Result<()> {
        if !self.kill_child("kube-apiserver") {
            bail!("no kube-apiserver of this lab is running");
        }
        Ok(())
    }

    /// Applies the CRDs of `file` and waits until they are established
    /// (objects of their kinds are refused until then).
    pub fn apply_crds(&self, file: &Path) -> Result<()> {
        self.kubectl(&["apply", "-f", &file.display().to_string()])?;
        self.kubectl(&[
            "wait",
            "--for=condition=Established",
            "crd",
            "--all",
            "--timeout=60s",
        ])?;
        Ok(())
    }

    /// `kubectl ARGS` as the administrator, in the router's namespace.
    pub fn kubectl(&self, args: &[&str]) -> Result<String> {
        let kubeconfig = self.kubeconfig().display().to_string();
        let kubectl = {
            let ours = cache().join("bin/kubectl");
            if ours.exists() {
                ours.display().to_string()
            } else {
                "kubectl".to_string()
            }
        };
        let mut argv = vec![kubectl.as_str(), "--kubeconfig", &kubeconfig];
        argv.extend_from_slice(args);
        net::exec_in(&self.router, &argv)
    }

    /// Creates `manifest` (JSON) with kubectl.
    fn kube_create(&self, what: &str, manifest: serde_json::Value) -> Result<()> {
        let file = self.spec.dir.join(format!("{what}.json"));
        std::fs::write(&file, manifest.to_string())?;
        self.kubectl(&["create", "-f", &file.display().to_string()])
            .with_context(|| format!("creating the Kubernetes {what}"))?;
        Ok(())
    }

    /// The Kubernetes Node a kubelet would register for lab node `i`.
    pub(super) fn register_kube_node(&self, i: usize) -> Result<()> {
        let node = &self.nodes[i];
        if self.kubectl(&["get", "node", &node.name]).is_ok() {
            return Ok(());
        }
        self.kube_create(
            &format!("node-{}", node.name),
            serde_json::json!({
                "apiVersion": "v1", "kind": "Node",
                "metadata": {"name": node.name, "labels": {"kubernetes.io/hostname": node.name}},
                "status": {"addresses": [{"type": "InternalIP", "address": node.address.to_string()}]},
            }),
        )
    }

    /// The Pod a kubelet would run for lab pod `name` on `node`.
    pub(super) fn create_kube_pod(&self, name: &str, node: &str) -> Result<()> {
        self.kube_create(
            &format!("pod-{name}"),
            serde_json::json!({
                "apiVersion": "v1", "kind": "Pod",
                "metadata": {"name": name, "namespace": POD_NAMESPACE},
                "spec": {
                    "nodeName": node,
                    "automountServiceAccountToken": false,
                    "containers": [{"name": "c", "image": "localhost/none:0"}],
                },
            }),
        )
    }
}
