//! Chaining with the standard `portmap` plugin (Debian
//! `containernetworking-plugins`): our result is its prevResult, and a
//! hostPort on the host reaches the pod.

#[path = "../../ipam/tests/common/mod.rs"]
mod common;
mod support;

use std::net::SocketAddr;
use std::path::Path;

use common::{free_port, pool, Backend};
use serde_json::{json, Value};
use support::{cni_exec, tcp_ask, tortie, Netns};

const PORTMAP: &str = "/usr/lib/cni/portmap";

/// Runs portmap DEL on drop, so a failing test leaves no DNAT rule.
struct PortmapGuard<'a> {
    conf: Value,
    env: Vec<(&'a str, &'a str)>,
}

impl Drop for PortmapGuard<'_> {
    fn drop(&mut self) {
        cni_exec(PORTMAP, "DEL", &self.env, &self.conf);
    }
}

#[test]
fn portmap_hostport_reaches_the_pod() {
    if !Path::new(PORTMAP).exists() {
        return tortie_testkit::missing(
            "portmap_hostport_reaches_the_pod",
            &format!("{PORTMAP} missing (apt-get install containernetworking-plugins)"),
        );
    }
    if std::process::Command::new("iptables")
        .arg("-V")
        .output()
        .is_err()
    {
        return tortie_testkit::missing(
            "portmap_hostport_reaches_the_pod",
            "portmap needs iptables (apt-get install iptables)",
        );
    }
    let b = Backend::file(&[pool("p", "10.64.0.0/24", 26)]);
    let ns = Netns::new();
    let path = ns.path().display().to_string();
    let cid = format!("pm{}", std::process::id());
    let env = vec![
        ("CNI_CONTAINERID", cid.as_str()),
        ("CNI_NETNS", path.as_str()),
        ("CNI_IFNAME", "eth0"),
    ];
    let ours = json!({
        "cniVersion": "1.0.0", "name": "tnet", "type": "tortie", "nodeName": "node-a",
        "datastore": serde_json::to_value(&b.config).unwrap(),
    });
    let added = tortie("ADD", &env, &ours);
    assert_eq!(added.status, 0, "{}", added.stdout);

    let host_port = free_port();
    let mut pm = json!({
        "cniVersion": "1.0.0", "name": "tnet", "type": "portmap",
        "capabilities": {"portMappings": true},
        "runtimeConfig": {"portMappings": [
            {"hostPort": host_port, "containerPort": 7102, "protocol": "tcp"}
        ]},
    });
    let _guard = PortmapGuard {
        conf: pm.clone(),
        env: env.clone(),
    };
    pm["prevResult"] = added.json.clone();
    let out = cni_exec(PORTMAP, "ADD", &env, &pm);
    assert_eq!(out.status, 0, "portmap ADD: {}", out.stdout);
    assert_eq!(
        out.json["ips"], added.json["ips"],
        "portmap passes our result through"
    );

    let server = ns.tcp_echo(7102, "via-hostport");
    let reply = tcp_ask(SocketAddr::from(([127, 0, 0, 1], host_port)));
    assert_eq!(reply.unwrap(), "via-hostport");
    server.join().unwrap();

    let del = tortie("DEL", &env, &ours);
    assert_eq!(del.status, 0, "{}", del.stdout);
}
