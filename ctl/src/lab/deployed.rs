//! The lab as a Kubernetes cluster with Tortie installed from `deploy/`
//! (`tortiectl lab up | demo --kubernetes --kubelets`): the kubelet nodes
//! of `kubelet.rs`, brought up as `tests/tests/k8s_cluster.rs` brings them
//! up, and the pods the lab makes on its own, as real pods.
//!
//! 1. What it needs is there ([`require`]), else an error naming
//!    `scripts/k8s.sh all`.
//! 2. The images ([`build_images`]: Tortie's from the lab's binaries, and
//!    busybox) in the lab's directory.
//! 3. [`Lab::up`] with kubelets: etcd, the API server, the controller
//!    manager and the scheduler; a containerd and a kubelet per node.
//! 4. The CNI's MTU for the lab's encapsulation (`CNI_MTU` in the
//!    ConfigMap `kube-system/tortie-apiserver`, which `install-cni`
//!    reads); [`Lab::install_deploy`] (`kubectl apply -f deploy/`,
//!    tortie-node rolled out, nodes Ready); the pool's encapsulation set
//!    to the lab's (`deploy/defaults.yaml` says IPIP CrossSubnet; a kernel
//!    without `ipip` gets VXLAN, as in the lab without kubelets).
//!    `deploy/tortie-rr.yaml` is applied too; no node is labelled for it,
//!    so its replicas stay Pending and the nodes keep the mesh.
//!    A dual-stack lab (`--stack dual`) makes the edits
//!    docs/kubernetes.md ("Dual stack") tells a user to make: a copy of
//!    `deploy/` with `TORTIE_IP6: autodetect` and `CNI_ASSIGN_IPV6:
//!    "true"` ([`DUAL_STACK_EDITS`]) is applied, then an IPv6 IPPool
//!    (`default-ipv6`, VXLAN CrossSubnet unless the lab has no
//!    encapsulation), and the CNI MTU leaves room for VXLAN over IPv6.
//! 5. `pods_per_node` pods per node ([`sleeping_pod`]), named as the lab
//!    names its pods, Ready, with their addresses in [`Lab::pods`] as
//!    Kubernetes has them (`status.podIPs`: both families in a
//!    dual-stack lab).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};

use std::net::IpAddr;

use super::kube::cache;
use super::kubelet::{build_images, sleeping_pod};
use super::{first_of_each, interrupt, Lab, LabPod, LabSpec, Stack, POOL6};

/// How long the lab's pods may take to answer each other once Ready
/// (pings through `kubectl exec`: slower than the lab's own).
pub const MESH_WITHIN: Duration = Duration::from_secs(60);
/// The edits of `deploy/tortie-node.yaml` for dual stack
/// (docs/kubernetes.md, "Dual stack"): each text is there once, and is
/// replaced by the second.
pub const DUAL_STACK_EDITS: [(&str, &str); 2] = [
    (
        "- name: CNI_ASSIGN_IPV6\n              value: \"false\"",
        "- name: CNI_ASSIGN_IPV6\n              value: \"true\"",
    ),
    (
        "- name: TORTIE_IP6\n              value: none",
        "- name: TORTIE_IP6\n              value: autodetect",
    ),
];
/// What makes the pods' images: under a Tortie checkout.
const IMAGE_SCRIPTS: [&str; 2] = ["scripts/image.sh", "scripts/mkimage.py"];
/// The programs of Tortie's image (`scripts/image.sh`).
const PROGRAMS: [&str; 4] = ["tortie-node", "tortie-cni", "tortie-rr", "tortiectl"];
/// The tools the kubelet nodes run, and the packages that have them.
const TOOLS: [(&str, &str); 9] = [
    ("containerd", "containerd"),
    ("ctr", "containerd"),
    ("runc", "runc"),
    ("etcd", "etcd-server"),
    ("openssl", "openssl"),
    ("busybox", "busybox-static"),
    ("python3", "python3"),
    ("nsenter", "util-linux"),
    ("unshare", "util-linux"),
];

// ===== impl Lab: deployed =====

impl Lab {
    /// Builds the lab of `spec` (with `kubernetes` and `kubelets`) and
    /// installs Tortie from the checkout `repo`'s `deploy/`, steps 2 to 5
    /// of the module comment; `say` hears how long each step took. On
    /// failure everything made is removed again, and the error carries
    /// what the cluster said ([`Lab::kube_diagnosis`]).
    pub fn up_deployed(mut spec: LabSpec, repo: &Path, say: &mut dyn FnMut(String)) -> Result<Lab> {
        spec.validate()?;
        let bin_dir = spec
            .node_bin
            .parent()
            .context("tortie-node's directory")?
            .to_path_buf();
        require(&bin_dir, repo)?;
        say(format!(
            "building {} kubelet nodes in network namespaces and installing deploy/ (minutes) ...",
            spec.nodes
        ));
        let t = Instant::now();
        let images = build_images(repo, &bin_dir, &spec.dir.join("images"))
            .and_then(|images| interrupt::check().map(|()| images));
        match images {
            Ok(images) => spec.images = images,
            Err(e) => {
                let _ = std::fs::remove_dir_all(&spec.dir);
                return Err(e.context("building the images (scripts/image.sh)"));
            }
        }
        say(format!(
            "images built in {:.1} s (localhost/tortie from {}, busybox)",
            t.elapsed().as_secs_f64(),
            bin_dir.display()
        ));
        let t = Instant::now();
        let nodes = spec.nodes;
        let mut lab = Lab::up(spec)?;
        say(format!(
            "control plane and {nodes} kubelet nodes registered in {:.1} s",
            t.elapsed().as_secs_f64()
        ));
        match lab.deploy_and_pods(repo, say) {
            Ok(()) => Ok(lab),
            Err(e) if interrupt::interrupted() => Err(e),
            Err(e) => Err(anyhow!(
                "{e:#}\n\nThe cluster then:\n{}",
                lab.kube_diagnosis()
            )),
        }
    }

    /// Steps 4 and 5 of the module comment.
    fn deploy_and_pods(&mut self, repo: &Path, say: &mut dyn FnMut(String)) -> Result<()> {
        let dual = self.spec.stack == Stack::Dual;
        let (ipip, vxlan, mut mtu) = match self.encap.as_str() {
            "ipip" => ("CrossSubnet", "Never", 1480),
            "vxlan" => ("Never", "CrossSubnet", 1450),
            _ => ("Never", "Never", 1500),
        };
        // The IPv6 pool's VXLAN runs between the nodes' IPv6 addresses:
        // 70 bytes of headers (IPIP carries IPv4 only).
        if dual && self.encap != "none" {
            mtu = 1430;
        }
        self.kubectl(&[
            "-n",
            "kube-system",
            "patch",
            "configmap",
            "tortie-apiserver",
            "--type",
            "merge",
            "-p",
            &format!(r#"{{"data":{{"CNI_MTU":"{mtu}"}}}}"#),
        ])
        .context("setting CNI_MTU in ConfigMap kube-system/tortie-apiserver")?;
        let deploy = if dual {
            dual_stack_deploy(&repo.join("deploy"), &self.spec.dir.join("deploy"))?
        } else {
            repo.join("deploy")
        };
        let took = self.install_deploy(&deploy, &[])?;
        self.kubectl(&[
            "patch",
            "ippool",
            "default-ipv4",
            "--type",
            "merge",
            "-p",
            &format!(r#"{{"spec":{{"ipipMode":"{ipip}","vxlanMode":"{vxlan}"}}}}"#),
        ])
        .context("setting the encapsulation of IPPool default-ipv4 (deploy/defaults.yaml)")?;
        let mut pool6 = String::new();
        if dual {
            let vxlan6 = if self.encap == "none" {
                "Never"
            } else {
                "CrossSubnet"
            };
            let file = self.spec.dir.join("ipv6-pool.yaml");
            std::fs::write(
                &file,
                format!(
                    "apiVersion: projectcalico.org/v3\nkind: IPPool\nmetadata:\n  name: default-ipv6\n\
                     spec:\n  cidr: {POOL6}\n  blockSize: 122\n  vxlanMode: {vxlan6}\n  nodeSelector: all()\n"
                ),
            )?;
            self.kubectl(&["apply", "-f", &file.display().to_string()])
                .context("creating IPPool default-ipv6")?;
            pool6 = format!("; IPPool default-ipv6 {POOL6}: vxlanMode {vxlan6}");
        }
        say(format!(
            "deploy/ applied{}: tortie-node running and every node Ready after {:.1} s; \
             IPPool default-ipv4: ipipMode {ipip}, vxlanMode {vxlan}{pool6}; CNI MTU {mtu}",
            if dual {
                " with the dual-stack edits"
            } else {
                ""
            },
            took.as_secs_f64()
        ));
        interrupt::check()?;
        let t = Instant::now();
        let mut made = Vec::new();
        for i in 0..self.nodes.len() {
            for _ in 0..self.spec.pods_per_node {
                self.pod_counter += 1;
                let name = format!("pod{}", self.pod_counter);
                let file = self.spec.dir.join(format!("{name}.json"));
                std::fs::write(&file, sleeping_pod(&name, &self.nodes[i].name))?;
                self.kubectl(&["apply", "-f", &file.display().to_string()])
                    .with_context(|| format!("creating pod {name}"))?;
                made.push((name, self.nodes[i].name.clone()));
            }
        }
        let mut wait = vec!["wait", "--for=condition=Ready", "--timeout=180s"];
        let names: Vec<String> = made.iter().map(|(n, _)| format!("pod/{n}")).collect();
        wait.extend(names.iter().map(String::as_str));
        self.kubectl(&wait)
            .context("waiting for the pods to be Ready")?;
        for (name, node) in made {
            let ips =
                self.kubectl(&["get", "pod", &name, "-o", "jsonpath={.status.podIPs[*].ip}"])?;
            let addresses = ips
                .split_whitespace()
                .map(|a| a.parse::<IpAddr>())
                .collect::<Result<Vec<_>, _>>()
                .with_context(|| format!("pod {name}'s status.podIPs {ips:?}"))?;
            let (address, address6) = match first_of_each(&addresses) {
                (Some(v4), Some(v6)) if dual => (v4, Some(v6)),
                (Some(v4), None) if !dual => (v4, None),
                _ => bail!(
                    "pod {name}'s status.podIPs {ips:?}: not the addresses a {:?} lab wants",
                    self.spec.stack
                ),
            };
            self.pods.push(LabPod {
                name,
                ns: String::new(),
                node,
                address,
                address6,
            });
        }
        self.save()?;
        say(format!(
            "{} pods Ready after {:.1} s",
            self.pods.len(),
            t.elapsed().as_secs_f64()
        ));
        Ok(())
    }
}

/// Copies the manifests directory `deploy` to `out` with
/// [`DUAL_STACK_EDITS`] made in `tortie-node.yaml`; returns `out`.
fn dual_stack_deploy(deploy: &Path, out: &Path) -> Result<PathBuf> {
    std::fs::create_dir_all(out)?;
    for entry in
        std::fs::read_dir(deploy).with_context(|| format!("reading {}", deploy.display()))?
    {
        let path = entry?.path();
        if path.extension().is_some_and(|e| e == "yaml") {
            std::fs::copy(&path, out.join(path.file_name().context("a file name")?))?;
        }
    }
    let file = out.join("tortie-node.yaml");
    let mut text =
        std::fs::read_to_string(&file).with_context(|| format!("reading {}", file.display()))?;
    for (from, to) in DUAL_STACK_EDITS {
        if text.matches(from).count() != 1 {
            bail!(
                "{}: the dual-stack edit expects {from:?} once; the manifest changed \
                 (update DUAL_STACK_EDITS and docs/kubernetes.md together)",
                deploy.join("tortie-node.yaml").display()
            );
        }
        text = text.replace(from, to);
    }
    std::fs::write(&file, text)?;
    Ok(out.to_path_buf())
}

/// Fails, naming what to run or install, unless a kubelet lab can be
/// built: the Kubernetes binaries, test PKI and pause image of
/// `scripts/k8s.sh all`, the node tools, Tortie's four programs in
/// `bin_dir`, and the checkout `repo` (its `deploy/` and image scripts).
pub fn require(bin_dir: &Path, repo: &Path) -> Result<()> {
    let cache = cache();
    for file in [
        "bin/kube-apiserver",
        "bin/kube-controller-manager",
        "bin/kube-scheduler",
        "bin/kubelet",
        "pki/ca.key",
        "images/pause.tar",
    ] {
        if !cache.join(file).exists() {
            bail!(
                "no {} in {}: `scripts/k8s.sh all` builds the Kubernetes binaries, the test PKI \
                 and the pause image (once, ~5-20 min)",
                file,
                cache.display()
            );
        }
    }
    for (tool, package) in TOOLS {
        if which(tool).is_none() {
            bail!(
                "no {tool} on the PATH: `scripts/k8s.sh all` installs it (Debian package {package})"
            );
        }
    }
    if !cache.join("bin/kubectl").exists() && which("kubectl").is_none() {
        bail!("no kubectl: `scripts/k8s.sh all` builds one");
    }
    if !Path::new("/usr/lib/cni/portmap").exists() {
        bail!("no /usr/lib/cni/portmap: `scripts/k8s.sh all` installs containernetworking-plugins");
    }
    for p in PROGRAMS {
        if !bin_dir.join(p).is_file() {
            bail!(
                "no {}: build it (cargo build --release -p tortie-node -p tortie-cni -p tortie-rr -p tortie-ctl)",
                bin_dir.join(p).display()
            );
        }
    }
    for f in IMAGE_SCRIPTS.iter().chain(&["deploy/tortie-node.yaml"]) {
        if !repo.join(f).is_file() {
            bail!(
                "no {}: --repo names the Tortie checkout with deploy/ and scripts/image.sh",
                repo.join(f).display()
            );
        }
    }
    Ok(())
}

/// `tool` on the PATH.
fn which(tool: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(tool))
        .find(|p| p.is_file())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn repo_deploy() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy")
    }

    #[test]
    fn dual_stack_edits_apply_to_the_manifest_in_deploy() {
        let out = tempfile::tempdir().unwrap();
        let dir = dual_stack_deploy(&repo_deploy(), &out.path().join("deploy")).unwrap();
        let text = std::fs::read_to_string(dir.join("tortie-node.yaml")).unwrap();
        for (from, to) in DUAL_STACK_EDITS {
            assert!(!text.contains(from), "{from:?} left");
            assert_eq!(text.matches(to).count(), 1, "{to:?}");
        }
        // Every other manifest copied as it is.
        for f in ["crds.yaml", "rbac.yaml", "defaults.yaml", "tortie-rr.yaml"] {
            assert_eq!(
                std::fs::read(dir.join(f)).unwrap(),
                std::fs::read(repo_deploy().join(f)).unwrap(),
                "{f}"
            );
        }
    }

    #[test]
    fn a_manifest_without_the_switch_is_refused_by_name() {
        let tmp = tempfile::tempdir().unwrap();
        let deploy = tmp.path().join("in");
        std::fs::create_dir_all(&deploy).unwrap();
        let original = std::fs::read_to_string(repo_deploy().join("tortie-node.yaml")).unwrap();
        let without = original.replace("- name: TORTIE_IP6\n              value: none\n", "");
        assert_ne!(without, original);
        std::fs::write(deploy.join("tortie-node.yaml"), without).unwrap();
        let e = dual_stack_deploy(&deploy, &tmp.path().join("out")).unwrap_err();
        let e = format!("{e:#}");
        assert!(
            e.contains("tortie-node.yaml") && e.contains("TORTIE_IP6"),
            "{e}"
        );
    }
}
