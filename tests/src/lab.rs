//! Helpers for the tests that drive real `tortie-node` agents in the lab
//! (`tortie_ctl::lab::Lab`): where the binaries are, unique lab names,
//! peer tables, pings that count what a change loses, the Calico
//! resources of a lab without the mesh (or with route reflectors), and
//! `tortiectl apply` of more; tortie-rr on a lab host (an IPv6 one too);
//! the nodes' blocks and IPv6 kernel routes.

use std::net::{IpAddr, Ipv6Addr};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use serde_json::Value;
use tortie_ctl::lab::{net, Lab, LabSpec};

/// Where the tortie-rr of [`rr_config`] serves `/status`, inside its
/// namespace.
pub const RR_ADMIN: &str = "127.0.0.1:9180";

/// Where tortie-node, tortie-cni, tortiectl and tortie-rr are:
/// `$TORTIE_LAB_BIN_DIR` (the qemu tier points it at release builds), else
/// the test executable's target dir (`cargo build --workspace --bins`
/// first; scripts/test.sh does).
pub fn bin_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("TORTIE_LAB_BIN_DIR") {
        return dir.into();
    }
    let exe = std::env::current_exe().expect("test executable");
    exe.parent()
        .and_then(|deps| deps.parent())
        .expect("target dir")
        .to_path_buf()
}

/// A lab spec of `nodes` nodes named `<prefix><pid>x<n>` (unique in this
/// machine while this process lives), under `$TMPDIR/tortie-test-labs`.
pub fn spec(prefix: &str, nodes: usize) -> Result<LabSpec> {
    static N: AtomicU32 = AtomicU32::new(0);
    let name = format!(
        "{prefix}{}x{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    );
    let root = std::env::temp_dir().join("tortie-test-labs");
    let spec = LabSpec::new(&name, nodes, &root, &bin_dir());
    for bin in [&spec.node_bin, &spec.cni_bin] {
        if !bin.is_file() {
            bail!(
                "{} not found: `cargo build --workspace --bins` first (scripts/test.sh does)",
                bin.display()
            );
        }
    }
    Ok(spec)
}

/// Calico resources for a lab whose nodes peer only as told: the
/// `default` BGPConfiguration with the node-to-node mesh off, then a
/// BGPPeer per `(name, spec)`, `spec` its fields one a line as they stand
/// under `spec:` (indented here), e.g. [`crate::tor::rack_peer`].
pub fn mesh_off(peers: &[(&str, &str)]) -> String {
    let mut out = String::from(
        "apiVersion: projectcalico.org/v3\nkind: BGPConfiguration\nmetadata:\n  name: default\n\
         spec:\n  nodeToNodeMeshEnabled: false\n",
    );
    for (name, spec) in peers {
        out += &format!(
            "---\napiVersion: projectcalico.org/v3\nkind: BGPPeer\nmetadata:\n  name: {name}\nspec:\n"
        );
        for line in spec.lines() {
            out += &format!("  {line}\n");
        }
    }
    out
}

/// The resources of a cluster with two route reflectors instead of the
/// mesh: every node peers with the nodes labelled `route-reflector=true`
/// (BGPPeer `to-rr-nodes`; [`LabSpec::reflector`] labels them, which makes
/// them reflect to the others) and with the tortie-rr at `rr` (BGPPeer
/// `to-tortie-rr`, AS 64512).
pub fn reflector_resources(rr: IpAddr) -> String {
    mesh_off(&[
        (
            "to-rr-nodes",
            "nodeSelector: all()\npeerSelector: route-reflector == 'true'",
        ),
        ("to-tortie-rr", &format!("peerIP: {rr}\nasNumber: 64512")),
    ])
}

/// `tortiectl apply -f` of `yaml`, written to `NAME.yaml` in the lab's
/// directory.
pub fn apply(lab: &Lab, name: &str, yaml: &str) -> Result<()> {
    let file = lab.spec.dir.join(format!("{name}.yaml"));
    std::fs::write(&file, yaml)?;
    lab.tortiectl(&["apply", "-f", &file.display().to_string()])?;
    Ok(())
}

/// Node `i`'s peers, as its `/status` lists them.
pub fn peers(lab: &Lab, i: usize) -> Result<Vec<Value>> {
    let s = lab.node_status(i)?;
    s["peers"]
        .as_array()
        .cloned()
        .context("no peers in /status")
}

/// Node `i`'s peers as `address state[ client]` (` client`: it reflects
/// to that peer), in the order of its `/status`.
pub fn peer_lines(lab: &Lab, i: usize) -> Result<Vec<String>> {
    Ok(peers(lab, i)?
        .iter()
        .map(|p| {
            format!(
                "{} {}{}",
                p["address"].as_str().unwrap_or(""),
                p["state"].as_str().unwrap_or(""),
                if p["rrClient"] == true { " client" } else { "" }
            )
        })
        .collect())
}

/// Waits up to `deadline` until node `i`'s [`peer_lines`] are `want`.
pub fn wait_peer_lines(lab: &Lab, i: usize, want: &[&str], deadline: Duration) -> Result<()> {
    let what = format!("{}'s sessions {want:?}", lab.nodes[i].name);
    crate::wait_until(deadline, &what, || {
        let p = peer_lines(lab, i).map_err(|e| e.to_string())?;
        if p == want {
            Ok(())
        } else {
            Err(format!("{p:?}"))
        }
    })
}

/// The index in `lab.pods` of the first pod on node `node` (a name).
pub fn pod_on(lab: &Lab, node: &str) -> Result<usize> {
    lab.pods
        .iter()
        .position(|p| p.node == node)
        .with_context(|| format!("no pod on {node}"))
}

/// Node `node`'s pod's IPv4 /26 block (the lab's pool's block size).
pub fn block4(lab: &Lab, node: usize) -> String {
    let o = lab.pods[pod_on(lab, &lab.nodes[node].name).expect("a pod")]
        .address
        .octets();
    format!("{}.{}.{}.{}/26", o[0], o[1], o[2], o[3] & !63)
}

/// Node `node`'s pod's IPv6 /122 block (the lab's IPv6 pool's).
pub fn block6(lab: &Lab, node: usize) -> String {
    let pod = &lab.pods[pod_on(lab, &lab.nodes[node].name).expect("a pod")];
    let mut s = pod.address6.expect("an IPv6 address").segments();
    s[7] &= !63;
    format!("{}/122", Ipv6Addr::from(s))
}

/// `ip -6 route` in node `i`'s namespace (empty if it fails).
pub fn routes6(lab: &Lab, i: usize) -> String {
    net::ip_in_output(&lab.nodes[i].ns, &["-6", "route"]).unwrap_or_default()
}

/// The line of `routes` (`ip route` output) for `prefix`.
pub fn route_line<'a>(routes: &'a str, prefix: &str) -> Option<&'a str> {
    routes
        .lines()
        .find(|l| l.split_whitespace().next() == Some(prefix))
}

/// The BGP paths node `i` holds for `prefix` (its `/explain`), as `from
/// next-hop` (`from`: the peer's address), sorted.
pub fn bgp_paths(lab: &Lab, i: usize, prefix: &str) -> Result<Vec<String>> {
    let path = format!("/explain?target={}", prefix.replace('/', "%2F"));
    let body = tortie_ctl::lab::get_in(&lab.nodes[i].ns, tortie_ctl::lab::ADMIN.parse()?, &path)?;
    let e: Value = serde_json::from_str(&body)?;
    let paths = e["prefixes"][0]["bgp"]["paths"]
        .as_array()
        .with_context(|| format!("no paths: {e}"))?;
    let mut out: Vec<String> = paths
        .iter()
        .map(|p| {
            let from = p["from"]
                .as_str()
                .unwrap_or("")
                .split(' ')
                .next()
                .unwrap_or("");
            format!("{from} {}", p["nextHop"].as_str().unwrap_or(""))
        })
        .collect();
    out.sort();
    Ok(out)
}

/// Node `name` as the datastore has it (`tortiectl get node -o json`).
pub fn node_resource(lab: &Lab, name: &str) -> Result<Value> {
    let list: Value = serde_json::from_str(&lab.tortiectl(&["get", "node", name, "-o", "json"])?)?;
    Ok(list[0].clone())
}

/// A host on subnet A for a dual-stack or IPv6-only lab
/// ([`Lab::add_host`], which gives it `172.30.1.N`): it also gets
/// `fd30:1::N/64` and an IPv6 default route via the router; in an
/// IPv6-only lab it keeps no IPv4 address. Its namespace and IPv6
/// address.
pub fn add_host6(lab: &mut Lab, name: &str) -> Result<(String, Ipv6Addr)> {
    let (ns, v4) = lab.add_host(name)?;
    let v6: Ipv6Addr = format!("fd30:1::{}", v4.octets()[3]).parse()?;
    net::ip_in(
        &ns,
        &["addr", "add", &format!("{v6}/64"), "dev", "eth0", "nodad"],
    )?;
    net::ip_in(&ns, &["-6", "route", "add", "default", "via", "fd30:1::1"])?;
    if lab.spec.stack == tortie_ctl::lab::Stack::Ipv6 {
        // Its IPv4 default route goes with the address.
        net::ip_in(&ns, &["-4", "addr", "flush", "dev", "eth0"])?;
    }
    Ok((ns, v6))
}

/// tortie-rr's file for a lab host: AS 64512, router id `router_id`,
/// cluster `cluster_id`, sessions accepted on `listen` (`0.0.0.0:179`,
/// `[::]:179`) from any address in `clients` (a prefix: dynamic peers,
/// all clients), admin at [`RR_ADMIN`]; both families (the default).
pub fn rr_config(router_id: &str, cluster_id: &str, listen: &str, clients: &str) -> String {
    format!(
        "routerId: {router_id}\nasNumber: 64512\nclusterId: {cluster_id}\nlisten: \"{listen}\"\n\
         admin: \"{RR_ADMIN}\"\ndynamicPeers:\n  - prefix: {clients}\n    asNumber: 64512\n"
    )
}

/// Starts tortie-rr in `ns` (a lab host) with `yaml`, written to
/// `<name>.yaml` in the lab's directory (its state and log beside it).
pub fn start_lab_rr(lab: &Lab, ns: &str, name: &str, yaml: &str) -> Result<Child> {
    let conf = lab.spec.dir.join(format!("{name}.yaml"));
    std::fs::write(&conf, yaml).with_context(|| format!("writing {}", conf.display()))?;
    start_tortie_rr(ns, &conf)
}

/// The `/status` of the tortie-rr in `ns` (admin at [`RR_ADMIN`]).
pub fn rr_status(ns: &str) -> Result<Value> {
    let body = tortie_ctl::lab::get_in(ns, RR_ADMIN.parse()?, "/status")?;
    Ok(serde_json::from_str(&body)?)
}

/// Starts `argv` inside namespace `ns`, its output appended to `log`.
/// The caller kills and reaps it (the lab's teardown also kills whatever
/// runs in its namespaces).
pub fn spawn_in(ns: &str, argv: &[&str], log: &Path) -> Result<Child> {
    let log = std::fs::File::options()
        .create(true)
        .append(true)
        .open(log)
        .with_context(|| format!("opening {}", log.display()))?;
    Command::new("ip")
        .args(["netns", "exec", ns])
        .args(argv)
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .spawn()
        .with_context(|| format!("starting {argv:?} in {ns}"))
}

/// Starts tortie-rr in `ns` with `config`; its state and log next to it.
pub fn start_tortie_rr(ns: &str, config: &Path) -> Result<Child> {
    let rr = bin_dir().join("tortie-rr");
    let state = config.with_extension("state");
    spawn_in(
        ns,
        &[
            &rr.display().to_string(),
            "--config",
            &config.display().to_string(),
            "--state-dir",
            &state.display().to_string(),
        ],
        &config.with_extension("log"),
    )
}

/// Pings pod `to` at 100 packets/s from every other pod, `count` each,
/// while `during` runs; returns (sent, received) per pinging pod
/// ([`Lab::ping_during`]).
pub fn ping_during(
    lab: &mut Lab,
    to: usize,
    count: u32,
    during: impl FnOnce(&mut Lab) -> Result<()>,
) -> Result<Vec<(u32, u32)>> {
    lab.ping_during(to, count, during)
}

/// [`ping_during`] that fails unless every packet came back.
pub fn no_loss_during(
    lab: &mut Lab,
    to: usize,
    count: u32,
    during: impl FnOnce(&mut Lab) -> Result<()>,
) -> Result<()> {
    let results = ping_during(lab, to, count, during)?;
    for (sent, received) in &results {
        if sent != received || *sent != count {
            bail!("packets lost: {results:?} (sent, received) per pinging pod");
        }
    }
    Ok(())
}
