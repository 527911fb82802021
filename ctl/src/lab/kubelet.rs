//! The lab with real kubelets (`LabSpec::kubelets`): each lab node is a
//! Kubernetes node, as kind makes them but without a container engine
//! underneath: in the node's network namespace, in a mount namespace of
//! its own, a containerd (own root, state, socket, runc root) and a
//! kubelet (own root directory, `--node-ip` the node's address, its pods
//! in a cgroup subtree of its own). The router's namespace adds the
//! controller manager and the scheduler to the API server (`kube.rs`).
//! Nothing of Tortie runs until the caller applies `deploy/`: then the
//! kubelets run tortie-node (DaemonSet) and call tortie-cni for every pod.
//!
//! Per node, in its own mount namespace, these host paths are bind mounts
//! of directories in the lab's (so that two nodes on one machine do not
//! share them, and the host's are untouched): `/etc/cni/net.d`,
//! `/opt/cni/bin` (the DaemonSet's hostPaths; the containernetworking
//! plugins copied in), `/run/tortie` (tortie-node's restart marker),
//! `/var/lib/tortie-rr`, `/var/log/pods` and `/var/log/containers` (a
//! kubelet removes pod log directories of pods it does not know), and
//! the places containerd and the CNI leave files in (`PRIVATE_PATHS`).
//!
//! Every process of a node (kubelet, containerd, its shims, the pods) is
//! in the cgroup `/tortie-<lab>-<node>` of every cgroup v1 hierarchy (the
//! kubelet's `cgroupRoot`): `down` kills what is in it and removes it.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use super::cgroup::{kill_by_cmdline, make_cgroup, remove_cgroup};
use super::kube::{cache, APISERVER};
use super::{interrupt, net, Lab};

/// The images every node's containerd imports besides the caller's: the
/// pod sandbox (`scripts/k8s.sh images`).
const PAUSE_IMAGE: &str = "localhost/pause:tortie";
/// The apiserver's address as the pods reach it (no kube-proxy in the lab:
/// the `kubernetes` Service's cluster IP leads nowhere). deploy/ reads it
/// from the ConfigMap `kube-system/tortie-apiserver`.
const APISERVER_HOST: &str = "172.30.1.1";
const APISERVER_PORT: &str = "6443";
/// Host paths each node has of its own (see the module comment), and the
/// name of the lab directory that backs each.
const PRIVATE_PATHS: [(&str, &str); 10] = [
    ("/etc/cni/net.d", "cni-net"),
    ("/opt/cni/bin", "cni-bin"),
    ("/run/tortie", "run-tortie"),
    ("/var/lib/tortie-rr", "tortie-rr"),
    ("/var/log/pods", "log-pods"),
    ("/var/log/containers", "log-containers"),
    // The pods' network namespaces (containerd's CRI), the CNI result
    // cache, containerd's shim sockets and its `opt` plugin: files a
    // killed node would otherwise leave on the host.
    ("/run/netns", "netns"),
    ("/var/lib/cni", "cni-cache"),
    ("/run/containerd", "run-containerd"),
    ("/opt/containerd", "opt-containerd"),
];
/// Where the host has the containernetworking plugins (Debian's
/// containernetworking-plugins): copied into each node's /opt/cni/bin
/// (containerd runs `loopback` itself; the conflist chains `portmap`).
const HOST_CNI_PLUGINS: &str = "/usr/lib/cni";

// ===== impl Lab: kubelets =====

impl Lab {
    /// The directory of node `i`'s kubelet and containerd.
    fn kubelet_dir(&self, i: usize) -> PathBuf {
        self.spec.dir.join(format!("k8s-{}", self.nodes[i].name))
    }

    /// The cgroup (in every v1 hierarchy) of node `i`'s processes.
    fn node_cgroup(&self, i: usize) -> String {
        format!("tortie-{}-{}", self.spec.name, self.nodes[i].name)
    }

    /// Starts the controller manager and the scheduler in the router's
    /// namespace, and publishes the API server's address for pods
    /// (ConfigMap `kube-system/tortie-apiserver`).
    pub(super) fn start_controllers(&mut self) -> Result<()> {
        let pki = cache().join("pki");
        let dir = self.spec.dir.clone();
        let p = |f: &str| pki.join(f).display().to_string();
        for (who, cert) in [
            ("controller-manager", "controller-manager"),
            ("scheduler", "scheduler"),
        ] {
            self.write_kubeconfig(
                &dir.join(format!("{who}.kubeconfig")),
                &pki.join(format!("{cert}.crt")),
                &pki.join(format!("{cert}.key")),
            )?;
        }
        let cm = [
            format!(
                "--kubeconfig={}",
                dir.join("controller-manager.kubeconfig").display()
            ),
            "--bind-address=127.0.0.1".into(),
            "--secure-port=10257".into(),
            "--port=0".into(),
            format!("--service-account-private-key-file={}", p("sa.key")),
            format!("--root-ca-file={}", p("ca.crt")),
            "--use-service-account-credentials=true".into(),
            format!("--cluster-signing-cert-file={}", p("ca.crt")),
            format!("--cluster-signing-key-file={}", p("ca.key")),
            "--leader-elect=false".into(),
            // Tortie assigns pod addresses: no node CIDRs.
            "--controllers=*,-nodeipam".into(),
        ];
        self.spawn_in_router("kube-controller-manager", &cm)?;
        let sched = [
            format!(
                "--kubeconfig={}",
                dir.join("scheduler.kubeconfig").display()
            ),
            "--bind-address=127.0.0.1".into(),
            "--secure-port=10259".into(),
            "--port=0".into(),
            "--leader-elect=false".into(),
        ];
        self.spawn_in_router("kube-scheduler", &sched)?;
        // kube-system exists once the API server has made it.
        let start = Instant::now();
        while let Err(e) = self.kubectl(&[
            "-n",
            "kube-system",
            "create",
            "configmap",
            "tortie-apiserver",
            &format!("--from-literal=KUBERNETES_SERVICE_HOST={APISERVER_HOST}"),
            &format!("--from-literal=KUBERNETES_SERVICE_PORT={APISERVER_PORT}"),
        ]) {
            interrupt::check()?;
            if start.elapsed() > Duration::from_secs(30) {
                return Err(e.context("creating ConfigMap kube-system/tortie-apiserver"));
            }
            std::thread::sleep(Duration::from_millis(500));
        }
        Ok(())
    }

    fn spawn_in_router(&mut self, program: &str, args: &[String]) -> Result<()> {
        let log = File::create(self.spec.dir.join(format!("{program}.log")))?;
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.router])
            .arg(cache().join("bin").join(program))
            .args(args)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log);
        std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
        let child = cmd.spawn().with_context(|| format!("starting {program}"))?;
        self.children.push(child);
        Ok(())
    }

    /// Starts node `i`'s containerd and kubelet (see the module comment)
    /// with `images` (docker-archive tarballs) imported.
    pub(super) fn start_kubelet(&mut self, i: usize, images: &[PathBuf]) -> Result<()> {
        let kdir = self.kubelet_dir(i);
        let node = self.nodes[i].clone();
        let pki = cache().join("pki");
        let cgroup = self.node_cgroup(i);
        std::fs::create_dir_all(&kdir)?;
        for (_, name) in PRIVATE_PATHS {
            std::fs::create_dir_all(kdir.join(name))?;
        }
        for entry in std::fs::read_dir(HOST_CNI_PLUGINS)
            .with_context(|| format!("reading {HOST_CNI_PLUGINS} (containernetworking-plugins)"))?
        {
            let entry = entry?;
            std::fs::copy(entry.path(), kdir.join("cni-bin").join(entry.file_name()))?;
        }
        // The kubelet's identity: system:node:<name> (the Node authorizer).
        let (crt, key) = self.sign(
            &format!("node-{}", node.name),
            &format!("/O=system:nodes/CN=system:node:{}", node.name),
            "clientAuth",
            None,
        )?;
        self.write_kubeconfig(&kdir.join("kubeconfig"), &crt, &key)?;
        let d = kdir.display();
        std::fs::write(
            kdir.join("containerd.toml"),
            format!(
                r#"version = 2
root = "{d}/containerd/root"
state = "{d}/containerd/state"
[grpc]
  address = "{d}/containerd.sock"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "{PAUSE_IMAGE}"
  # Without CAP_SYS_RESOURCE (some VMs drop it), runc cannot set the pause
  # container's oom_score_adj below the caller's.
  restrict_oom_score_adj = true
  stream_server_address = "127.0.0.1"
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/opt/cni/bin"
    conf_dir = "/etc/cni/net.d"
  [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
    runtime_type = "io.containerd.runc.v2"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
      Root = "{d}/runc"
"#
            ),
        )?;
        std::fs::write(
            kdir.join("kubelet.yaml"),
            format!(
                r#"apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
address: {addr}
port: 10250
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
cgroupDriver: cgroupfs
cgroupRoot: /{cgroup}
failSwapOn: false
authentication:
  anonymous: {{enabled: false}}
  webhook: {{enabled: true}}
  x509: {{clientCAFile: {ca}}}
authorization: {{mode: Webhook}}
clusterDomain: cluster.local
evictionHard: {{memory.available: "100Mi", nodefs.available: "1%", imagefs.available: "1%"}}
imageGCHighThresholdPercent: 100
"#,
                addr = node.address,
                ca = pki.join("ca.crt").display(),
            ),
        )?;
        make_cgroup(&cgroup)?;
        let mut script = String::from("set -e\n");
        // First into the node's cgroup: everything started below inherits it.
        script.push_str(&format!(
            "for c in /sys/fs/cgroup/*/; do [ -e \"$c{cgroup}/cgroup.procs\" ] && echo $$ > \"$c{cgroup}/cgroup.procs\"; done\n"
        ));
        for (path, name) in PRIVATE_PATHS {
            script.push_str(&format!(
                "mkdir -p {path}\nmount --bind {d}/{name} {path}\n"
            ));
        }
        script.push_str(&format!(
            "containerd --config {d}/containerd.toml >> {d}/containerd.log 2>&1 &\n\
             n=0; until ctr --address {d}/containerd.sock version >/dev/null 2>&1; do \
               n=$((n+1)); [ $n -lt 300 ] || {{ echo 'containerd did not start' >&2; exit 1; }}; sleep 0.1; done\n"
        ));
        let pause = cache().join("images/pause.tar");
        for image in std::iter::once(&pause).chain(images) {
            script.push_str(&format!(
                "ctr --address {d}/containerd.sock -n k8s.io images import {} >/dev/null\n",
                image.display()
            ));
        }
        script.push_str(&format!(
            "exec {kubelet} --config={d}/kubelet.yaml --kubeconfig={d}/kubeconfig --root-dir={d}/kubelet \
             --container-runtime=remote --container-runtime-endpoint=unix://{d}/containerd.sock \
             --hostname-override={name} --node-ip={addr} --v=1\n",
            kubelet = cache().join("bin/kubelet").display(),
            name = node.name,
            addr = node.address,
        ));
        std::fs::write(kdir.join("start.sh"), &script)?;
        let log = File::create(kdir.join("kubelet.log"))?;
        let mut cmd = Command::new("nsenter");
        cmd.arg(format!("--net=/run/netns/{}", node.ns))
            .args(["--", "unshare", "--mount", "--propagation", "private", "--"])
            .arg("sh")
            .arg(kdir.join("start.sh"))
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log);
        std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
        let child = cmd.spawn().context("starting containerd and the kubelet")?;
        self.nodes[i].pid = Some(child.id());
        self.children.push(child);
        self.save()
    }

    /// Waits until every node's kubelet has registered its Node.
    pub(super) fn wait_kubelets(&self, within: Duration) -> Result<()> {
        let start = Instant::now();
        for (i, node) in self.nodes.iter().enumerate() {
            while self.kubectl(&["get", "node", &node.name]).is_err() {
                interrupt::check()?;
                if start.elapsed() > within {
                    let log = self.kubelet_dir(i).join("kubelet.log");
                    let text = std::fs::read_to_string(&log).unwrap_or_default();
                    let tail: Vec<&str> = text.lines().rev().take(15).collect();
                    bail!(
                        "the kubelet of {} did not register within {} s; {}:\n{}",
                        node.name,
                        within.as_secs(),
                        log.display(),
                        tail.into_iter().rev().collect::<Vec<_>>().join("\n")
                    );
                }
                std::thread::sleep(Duration::from_millis(500));
            }
        }
        Ok(())
    }

    /// Kills every process of the lab's kubelet nodes and removes their
    /// cgroups (also for a lab read back from `lab.json`).
    pub(super) fn stop_kubelets(&mut self) {
        for i in 0..self.nodes.len() {
            // The shims first (outside the node's cgroup), then the
            // cgroup, then a shim that containerd started meanwhile.
            let sock = self.kubelet_dir(i).join("containerd.sock");
            let sock = sock.display().to_string();
            kill_by_cmdline(&sock);
            remove_cgroup(&self.node_cgroup(i));
            kill_by_cmdline(&sock);
        }
    }

    /// A kubeconfig for the lab's API server with this client certificate.
    pub(super) fn write_kubeconfig(&self, path: &Path, crt: &Path, key: &Path) -> Result<()> {
        let ca = cache().join("pki/ca.crt");
        std::fs::write(
            path,
            format!(
                "apiVersion: v1\nkind: Config\nclusters:\n- name: lab\n  cluster:\n    server: {APISERVER}\n    certificate-authority: {}\nusers:\n- name: user\n  user:\n    client-certificate: {}\n    client-key: {}\ncontexts:\n- name: lab\n  context:\n    cluster: lab\n    user: user\ncurrent-context: lab\n",
                ca.display(),
                crt.display(),
                key.display(),
            ),
        )
        .with_context(|| format!("writing {}", path.display()))
    }

    /// A key and a certificate `NAME.key`, `NAME.crt` in the lab's
    /// directory, signed by the test CA.
    pub(super) fn sign(
        &self,
        name: &str,
        subject: &str,
        usage: &str,
        alt_names: Option<&str>,
    ) -> Result<(PathBuf, PathBuf)> {
        let pki = cache().join("pki");
        let dir = &self.spec.dir;
        let (key, crt) = (
            dir.join(format!("{name}.key")),
            dir.join(format!("{name}.crt")),
        );
        let csr = dir.join(format!("{name}.csr"));
        let ext = dir.join(format!("{name}.ext"));
        let s = |p: &Path| p.display().to_string();
        net::run(
            "openssl",
            &[
                "req",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-subj",
                subject,
                "-keyout",
                &s(&key),
                "-out",
                &s(&csr),
            ],
        )?;
        let mut extensions = format!(
            "basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage={usage}\n"
        );
        if let Some(alt) = alt_names {
            extensions.push_str(&format!("subjectAltName={alt}\n"));
        }
        std::fs::write(&ext, extensions)?;
        net::run(
            "openssl",
            &[
                "x509",
                "-req",
                "-days",
                "30",
                "-in",
                &s(&csr),
                "-CA",
                &s(&pki.join("ca.crt")),
                "-CAkey",
                &s(&pki.join("ca.key")),
                "-CAcreateserial",
                "-CAserial",
                &s(&dir.join("ca.srl")),
                "-out",
                &s(&crt),
                "-extfile",
                &s(&ext),
            ],
        )?;
        let _ = std::fs::remove_file(&csr);
        let _ = std::fs::remove_file(&ext);
        Ok((crt, key))
    }
}

/// The images a kubelet lab needs, built into `out`: Tortie's
/// (`scripts/image.sh` of the repository `repo`, from the binaries in
/// `bin_dir`) and `localhost/busybox:test` (busybox with `sh`, `sleep`,
/// `ping`, `kill`, `pidof`, `cat`, `tail`, `ip`) for test pods.
pub fn build_images(repo: &Path, bin_dir: &Path, out: &Path) -> Result<Vec<PathBuf>> {
    let s = |p: &Path| p.display().to_string();
    net::run(
        &s(&repo.join("scripts/image.sh")),
        &["--bin-dir", &s(bin_dir), "--out", &s(&out.join("tortie"))],
    )?;
    let root = out.join("busybox/root");
    let _ = std::fs::remove_dir_all(&root);
    for dir in ["bin", "tmp", "etc"] {
        std::fs::create_dir_all(root.join(dir))?;
    }
    let busybox = net::run("sh", &["-c", "command -v busybox"])
        .context("no busybox (apt-get install busybox-static)")?;
    std::fs::copy(busybox.trim(), root.join("bin/busybox"))?;
    for applet in ["sh", "sleep", "ping", "kill", "pidof", "cat", "tail", "ip"] {
        std::os::unix::fs::symlink("busybox", root.join("bin").join(applet))?;
    }
    std::fs::write(root.join("etc/passwd"), "root:x:0:0:root:/:/bin/sh\n")?;
    let tar = out.join("busybox/busybox.tar");
    net::run(
        "python3",
        &[
            &s(&repo.join("scripts/mkimage.py")),
            &s(&tar),
            BUSYBOX_IMAGE,
            &s(&root),
        ],
    )?;
    Ok(vec![out.join("tortie/tortie.tar"), tar])
}

/// The test pods' image ([`build_images`]).
pub const BUSYBOX_IMAGE: &str = "localhost/busybox:test";

/// A pod of [`BUSYBOX_IMAGE`] on `node` that sleeps (JSON, for `kubectl
/// apply`).
pub fn sleeping_pod(name: &str, node: &str) -> String {
    serde_json::json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {
            "nodeName": node,
            "terminationGracePeriodSeconds": 0,
            "containers": [{
                "name": "c", "image": BUSYBOX_IMAGE, "imagePullPolicy": "Never",
                "command": ["sleep", "3600"],
            }],
        },
    })
    .to_string()
}

// ===== impl Lab: installing deploy/ =====

impl Lab {
    /// What the cluster and the kubelets say (nodes, pods, tortie-node's
    /// log, each kubelet's last lines), for a failure message.
    pub fn kube_diagnosis(&self) -> String {
        let mut out = String::new();
        for args in [
            &["get", "nodes", "-o", "wide"][..],
            &["get", "pods", "-A", "-o", "wide"],
            &["-n", "kube-system", "describe", "pods"],
            &[
                "-n",
                "kube-system",
                "logs",
                "ds/tortie-node",
                "-c",
                "tortie-node",
                "--tail=30",
            ],
        ] {
            out.push_str(&format!("$ kubectl {}\n", args.join(" ")));
            out.push_str(&self.kubectl(args).unwrap_or_else(|e| format!("{e:#}")));
            out.push('\n');
        }
        for n in &self.nodes {
            let log = self.spec.dir.join(format!("k8s-{}/kubelet.log", n.name));
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            let tail: Vec<&str> = text.lines().rev().take(20).collect();
            out.push_str(&format!("--- {} (last lines)\n", log.display()));
            out.push_str(&tail.into_iter().rev().collect::<Vec<_>>().join("\n"));
            out.push('\n');
        }
        out
    }

    /// Retries `kubectl ARGS` until it succeeds or `within` has passed.
    pub fn kubectl_until(&self, args: &[&str], within: Duration) -> Result<String> {
        let start = Instant::now();
        loop {
            interrupt::check()?;
            match self.kubectl(args) {
                Ok(out) => return Ok(out),
                Err(e) if start.elapsed() > within => return Err(e),
                Err(_) => std::thread::sleep(Duration::from_secs(1)),
            }
        }
    }

    /// Waits (up to 4 min) until `kube-system/<what>` (`ds/tortie-node`,
    /// `deploy/tortie-rr`) has rolled out.
    pub fn rollout_done(&self, what: &str) -> Result<()> {
        self.kubectl_until(
            &[
                "-n",
                "kube-system",
                "rollout",
                "status",
                what,
                "--timeout=10s",
            ],
            Duration::from_secs(240),
        )
        .map(|_| ())
    }

    /// Installs Tortie from the manifests directory `deploy` as
    /// docs/kubernetes.md tells a user (the CRDs first, established, then
    /// the whole directory), after labelling the nodes `reflectors` for
    /// tortie-rr; waits until tortie-node runs on every node and the
    /// nodes are Ready; returns how long that took after the apply.
    pub fn install_deploy(&self, deploy: &Path, reflectors: &[&str]) -> Result<Duration> {
        for n in reflectors {
            self.kubectl(&["label", "node", n, "tortie.io/route-reflector=true"])?;
        }
        self.apply_crds(&deploy.join("crds.yaml"))?;
        self.kubectl(&["apply", "-f", &deploy.display().to_string()])?;
        let applied = Instant::now();
        self.rollout_done("ds/tortie-node")?;
        self.kubectl(&[
            "wait",
            "--for=condition=Ready",
            "node",
            "--all",
            "--timeout=120s",
        ])?;
        Ok(applied.elapsed())
    }
}
