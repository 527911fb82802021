//! The lab's pods: made and removed through tortie-cni, as a container
//! runtime does.

use std::process::{Command, Stdio};

use anyhow::{bail, Context, Result};
use serde_json::Value;

use std::net::{IpAddr, Ipv4Addr};

use super::{first_of_each, kube, net, Lab, LabNode, LabPod, Stack, ETCD, ETCD_PREFIX};

// ===== impl Lab: pods =====

impl Lab {
    /// A pod on node `i`: CNI ADD through tortie-cni, as a runtime does.
    pub fn add_pod(&mut self, i: usize) -> Result<LabPod> {
        self.pod_counter += 1;
        let node = self.nodes[i].clone();
        let name = format!("pod{}", self.pod_counter);
        let ns = format!("tl-{}-{name}", self.spec.name);
        if self.spec.kubernetes {
            self.create_kube_pod(&name, &node.name)?;
        }
        net::add_netns(&ns)?;
        let stack = self.spec.stack;
        let added = self.cni(&node, "ADD", &name, &ns).and_then(|result| {
            let v: Value = serde_json::from_str(&result)
                .with_context(|| format!("CNI ADD for {name}: {result}"))?;
            let ips: Vec<IpAddr> = v["ips"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|ip| ip["address"].as_str()?.split('/').next()?.parse().ok())
                .collect();
            let (v4, v6) = first_of_each(&ips);
            match (stack, v4, v6) {
                (Stack::Ipv4, Some(v4), _) => Ok((v4, None)),
                (Stack::Dual, Some(v4), Some(v6)) => Ok((v4, Some(v6))),
                (Stack::Ipv6, None, Some(v6)) => Ok((Ipv4Addr::UNSPECIFIED, Some(v6))),
                _ => bail!(
                    "CNI ADD for {name} gave not the addresses a {stack:?} lab wants: {result}"
                ),
            }
        });
        // Not a pod of the lab yet: `down` would not know its namespace.
        let (address, address6) = match added {
            Ok(address) => address,
            Err(e) => {
                net::del_netns(&ns);
                return Err(e);
            }
        };
        let pod = LabPod {
            name,
            ns,
            node: node.name.clone(),
            address,
            address6,
        };
        self.pods.push(pod.clone());
        self.save()?;
        Ok(pod)
    }

    /// CNI DEL of a pod, then its namespace goes.
    pub fn delete_pod(&mut self, name: &str) -> Result<()> {
        let Some(pos) = self.pods.iter().position(|p| p.name == name) else {
            bail!("no pod {name}");
        };
        let pod = self.pods.remove(pos);
        let node = self
            .nodes
            .iter()
            .find(|n| n.name == pod.node)
            .cloned()
            .context("pod's node")?;
        self.cni(&node, "DEL", &pod.name, &pod.ns)?;
        if self.spec.kubernetes {
            // No kubelet confirms a graceful end: gone at once.
            let _ = self.kubectl(&[
                "delete",
                "pod",
                &pod.name,
                "-n",
                kube::POD_NAMESPACE,
                "--grace-period=0",
                "--force",
                "--wait=false",
            ]);
        }
        net::del_netns(&pod.ns);
        self.save()
    }

    fn cni(&self, node: &LabNode, command: &str, pod: &str, pod_ns: &str) -> Result<String> {
        let datastore = if self.spec.kubernetes {
            serde_json::json!({"type": "kubernetes", "kubeconfig": self.kubeconfig()})
        } else if self.spec.etcd {
            serde_json::json!({"type": "etcd", "endpoints": [ETCD], "prefix": ETCD_PREFIX})
        } else {
            serde_json::json!({"type": "file", "dir": self.spec.dir.join("store")})
        };
        // A generous timeout: the qemu tier runs the lab under software
        // emulation, where an ADD takes seconds.
        let stack = self.spec.stack;
        let conf = serde_json::json!({
            "cniVersion": "1.0.0", "name": "tortie", "type": "tortie",
            "nodeName": node.name,
            "datastore": datastore,
            "assignIPv4": stack != Stack::Ipv6,
            "assignIPv6": stack != Stack::Ipv4,
            "timeoutSeconds": 120,
        });
        let mut child = Command::new("ip")
            .args(["netns", "exec", &node.ns])
            .arg(&self.spec.cni_bin)
            .env_clear()
            .env("CNI_COMMAND", command)
            .env("CNI_CONTAINERID", format!("{}-{pod}", self.spec.name))
            .env("CNI_NETNS", format!("/run/netns/{pod_ns}"))
            .env("CNI_IFNAME", "eth0")
            .env("CNI_PATH", "/usr/lib/cni")
            // What a kubelet passes: the pod's namespace and name.
            .envs(self.spec.kubernetes.then(|| {
                (
                    "CNI_ARGS",
                    format!(
                        "K8S_POD_NAMESPACE={};K8S_POD_NAME={pod}",
                        kube::POD_NAMESPACE
                    ),
                )
            }))
            .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .with_context(|| format!("running {}", self.spec.cni_bin.display()))?;
        use std::io::Write;
        child
            .stdin
            .take()
            .context("stdin")?
            .write_all(conf.to_string().as_bytes())?;
        let out = child.wait_with_output()?;
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        if !out.status.success() {
            bail!(
                "CNI {command} of {pod} on {} failed: {stdout}{}",
                node.name,
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Ok(stdout)
    }
}
