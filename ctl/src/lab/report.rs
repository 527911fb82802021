//! What `lab up | status | demo` print: the nodes, each node's peer table
//! and routes, and the pod-to-pod ping matrix.

use std::time::Duration;

use super::{net, Lab};
use crate::{node_status, table};

/// The whole report.
pub fn render(lab: &Lab) -> String {
    let mut out = format!(
        "Lab {}: {} nodes, {} pods, pool {} ({} CrossSubnet between subnets A and B{}).\n\n",
        lab.spec.name,
        lab.nodes.len(),
        lab.pods.len(),
        match lab.spec.stack {
            super::Stack::Ipv4 => super::POOL.to_string(),
            // IPIP carries IPv4 only: the IPv6 pool uses VXLAN.
            super::Stack::Dual if lab.encap == "ipip" => format!(
                "{} and IPv6 pool {} (over VXLAN)",
                super::POOL,
                super::POOL6
            ),
            super::Stack::Dual => format!("{} and IPv6 pool {}", super::POOL, super::POOL6),
            super::Stack::Ipv6 => format!("{} (IPv6 only)", super::POOL6),
        },
        lab.encap.to_uppercase(),
        if lab.encap == "vxlan" {
            "; this kernel has no ipip module"
        } else {
            ""
        },
    );
    if lab.spec.kubelets {
        out +=
            "Each node runs a containerd and a kubelet; tortie-node is the DaemonSet of deploy/, \
                and the pods are containers (their pings go through kubectl exec).\n\n";
    }
    let rows: Vec<Vec<String>> = lab
        .nodes
        .iter()
        .map(|n| {
            let alive = n
                .pid
                .is_some_and(|p| std::path::Path::new(&format!("/proc/{p}")).exists());
            vec![
                n.name.clone(),
                n.addresses()
                    .iter()
                    .map(|a| format!("{a}/{}", if a.is_ipv4() { 24 } else { 64 }))
                    .collect::<Vec<_>>()
                    .join(" "),
                n.subnet.to_string(),
                n.ns.clone(),
                match (n.pid, alive) {
                    (Some(p), true) if lab.spec.kubelets => format!("kubelet pid {p}"),
                    (Some(p), true) => format!("tortie-node pid {p}"),
                    _ => "stopped".into(),
                },
            ]
        })
        .collect();
    out += &table::render(&["NODE", "ADDRESS", "SUBNET", "NAMESPACE", "AGENT"], &rows);
    for (i, n) in lab.nodes.iter().enumerate() {
        out += &format!("\n== {} (tortiectl node status)\n", n.name);
        match lab.node_status(i) {
            Ok(s) => out += &node_status::render(&s),
            Err(e) => out += &format!("cannot read its status: {e:#}\n"),
        }
        out += &format!("\n== {} routes (ip route)\n", n.name);
        match net::ip_in_output(&n.ns, &["route"]) {
            Ok(r) => out += &r,
            Err(e) => out += &format!("{e:#}\n"),
        }
        if n.address6.is_some() {
            out += &format!("\n== {} IPv6 routes (ip -6 route)\n", n.name);
            match net::ip_in_output(&n.ns, &["-6", "route"]) {
                Ok(r) => out += &r,
                Err(e) => out += &format!("{e:#}\n"),
            }
        }
    }
    out += "\n== pod-to-pod ping matrix (one ping each, row to column)\n";
    out += &matrix(lab).0;
    out
}

/// The ping matrix and whether every pair answered.
pub fn matrix(lab: &Lab) -> (String, bool) {
    let mut header = vec!["FROM \\ TO".to_string()];
    let targets: Vec<(usize, std::net::IpAddr)> = lab
        .pods
        .iter()
        .enumerate()
        .flat_map(|(i, p)| p.addresses().into_iter().map(move |a| (i, a)))
        .collect();
    header.extend(
        targets
            .iter()
            .map(|(i, a)| format!("{} {a}", lab.pods[*i].name)),
    );
    let mut all = true;
    let rows: Vec<Vec<String>> = lab
        .pods
        .iter()
        .map(|from| {
            let mut row = vec![format!("{} ({})", from.name, from.node)];
            for (i, to) in &targets {
                row.push(if lab.pods[*i].name == from.name {
                    "-".into()
                } else if lab.ping(from, *to, Duration::from_secs(1)) {
                    "ok".into()
                } else {
                    all = false;
                    "FAIL".into()
                });
            }
            row
        })
        .collect();
    let header: Vec<&str> = header.iter().map(String::as_str).collect();
    (table::render(&header, &rows), all)
}
