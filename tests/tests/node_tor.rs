//! tortie-node peering with a top-of-rack router over eBGP: the lab's
//! router runs **BIRD** (one test) or **FRR** (zebra + bgpd, the other)
//! and is the only BGP neighbour of every node (the mesh is off). Each node
//! has its own AS (Calico's "AS per node" design), the ToR AS 65000.
//!
//! ```text
//!   subnet A 172.30.1.0/24                    subnet B 172.30.2.0/24
//!   node1 .11 (AS 65001)  node2 .12 (65002) ── ToR .1 | .1 ── node3 .13 (65003)
//! ```
//!
//! The pool does not encapsulate: pod traffic between the subnets is
//! routed by the ToR with the blocks it learned.
//!
//! Checks:
//! 1. Every pod reaches every other.
//! 2. The ToR learned every node's block and programmed it; each node
//!    announced exactly its own block.
//! 3. A prefix outside the pools that the ToR announces (198.51.100.0/24)
//!    is received by the nodes but neither accepted (the import filter)
//!    nor installed.
//! 4. Node1 reaches node3's block through the ToR, unencapsulated.
//!
//! With BIRD, rack a's sessions are signed with TCP MD5: the BGPPeer names
//! a secret, the nodes read it from their secrets directory.

use std::path::PathBuf;
use std::process::Child;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use tortie_ctl::lab::{net, Encap, Lab};
use tortie_tests::lab::{apply, block4, mesh_off, spawn_in, spec};
use tortie_tests::tor::{paths, rack_args, rack_peer, BirdTor};
use tortie_tests::wait_until;

const NODES: [(&str, &str, u32); 3] = [
    ("node1", "172.30.1.11", 65001),
    ("node2", "172.30.1.12", 65002),
    ("node3", "172.30.2.13", 65003),
];

/// Rack a's TCP MD5 key (BIRD's side); the nodes read it from the secret
/// `tor-a-md5`, key `password`, in their secrets directory.
const MD5_KEY: &str = "rack-a s3cret";

/// The mesh off; rack a's nodes peer with 172.30.1.1 (keepalives every
/// 10 s; signed with [`MD5_KEY`] if `md5`), rack b's with 172.30.2.1.
fn resources(md5: bool) -> String {
    let mut tor_a = rack_peer("a", "172.30.1.1", 65000) + "keepaliveTime: 10s\n";
    if md5 {
        tor_a += "password:\n  secretKeyRef:\n    name: tor-a-md5\n    key: password\n";
    }
    mesh_off(&[
        ("tor-a", &tor_a),
        ("tor-b", &rack_peer("b", "172.30.2.1", 65000)),
    ])
}

/// A ToR daemon in the lab's router namespace.
trait Tor {
    /// Its routing table as text, for checks and messages.
    fn routes(&self) -> Result<String>;
}

struct FrrTor {
    dir: PathBuf,
    children: Vec<Child>,
}

impl Tor for BirdTor {
    fn routes(&self) -> Result<String> {
        self.table()
    }
}

impl Tor for FrrTor {
    fn routes(&self) -> Result<String> {
        net::run(
            "vtysh",
            &[
                "--vty_socket",
                &self.dir.display().to_string(),
                "-c",
                "show ip bgp",
            ],
        )
    }
}

impl Drop for FrrTor {
    fn drop(&mut self) {
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn bird(lab: &Lab) -> Result<Box<dyn Tor>> {
    let mut conf = String::from(
        "router id 172.30.1.1;\nprotocol device {}\nprotocol direct { ipv4; }\n\
         protocol kernel { ipv4 { export where source = RTS_BGP; }; }\n\
         protocol static { ipv4; route 198.51.100.0/24 blackhole; }\n\
         template bgp tonode { local as 65000; ipv4 { import all; export where source ~ [RTS_BGP, RTS_STATIC]; }; }\n",
    );
    for (i, (_, addr, asn)) in NODES.iter().enumerate() {
        // Rack a's sessions are signed (TCP MD5), as its BGPPeer says.
        let password = if i < 2 {
            format!(" password \"{MD5_KEY}\";")
        } else {
            String::new()
        };
        conf +=
            &format!("protocol bgp n{i} from tonode {{ neighbor {addr} as {asn};{password} }}\n");
    }
    Ok(Box::new(BirdTor::start_conf(
        lab,
        &lab.router,
        "bird",
        &conf,
    )?))
}

fn frr(lab: &Lab) -> Result<Box<dyn Tor>> {
    let dir = lab.spec.dir.join("frr");
    std::fs::create_dir_all(&dir)?;
    let mut conf = String::from(
        "frr defaults traditional\nip route 198.51.100.0/24 blackhole\nrouter bgp 65000\n bgp router-id 172.30.1.1\n no bgp ebgp-requires-policy\n",
    );
    for (_, addr, asn) in NODES {
        conf += &format!(" neighbor {addr} remote-as {asn}\n");
    }
    conf += " address-family ipv4 unicast\n  redistribute static\n exit-address-family\n";
    std::fs::write(dir.join("bgpd.conf"), conf)?;
    std::fs::write(dir.join("zebra.conf"), "")?;
    // zebra runs as the frr user: it must read its directory.
    net::run("chown", &["-R", "frr:frr", &dir.display().to_string()])?;
    let d = |f: &str| dir.join(f).display().to_string();
    let zebra = spawn_in(
        &lab.router,
        &[
            "/usr/lib/frr/zebra",
            "-u",
            "frr",
            "-g",
            "frr",
            "-f",
            &d("zebra.conf"),
            "-i",
            &d("zebra.pid"),
            "-z",
            &d("zserv.api"),
            "--vty_socket",
            &d(""),
        ],
        &dir.join("zebra.log"),
    )?;
    let mut tor = FrrTor {
        dir: dir.clone(),
        children: vec![zebra],
    };
    wait_until(Duration::from_secs(10), "zebra's socket", || {
        if dir.join("zserv.api").exists() {
            Ok(())
        } else {
            Err("not yet".into())
        }
    })?;
    tor.children.push(spawn_in(
        &lab.router,
        &[
            "/usr/lib/frr/bgpd",
            "-S",
            "-P",
            "0",
            "-z",
            &d("zserv.api"),
            "--vty_socket",
            &d(""),
            "-f",
            &d("bgpd.conf"),
            "-i",
            &d("bgpd.pid"),
        ],
        &dir.join("bgpd.log"),
    )?);
    wait_until(Duration::from_secs(10), "vtysh to answer", || {
        tor.routes().map_err(|e| e.to_string())
    })?;
    Ok(Box::new(tor))
}

fn tor_test(start: fn(&Lab) -> Result<Box<dyn Tor>>, md5: bool) -> Result<()> {
    let mut spec = spec("e", 3)?;
    spec.encap = Encap::None;
    spec.resources = resources(md5);
    // Inside the lab's directory: removed with the lab.
    let secrets = spec.dir.join("secrets");
    std::fs::create_dir_all(secrets.join("tor-a-md5"))?;
    std::fs::write(secrets.join("tor-a-md5/password"), format!("{MD5_KEY}\n"))?;
    for (i, (_, _, asn)) in NODES.iter().enumerate() {
        let rack = if i < 2 { "a" } else { "b" };
        let mut args = rack_args(*asn, rack);
        args.extend(["--secrets-dir".into(), secrets.display().to_string()]);
        spec.per_node_args.insert(i + 1, args);
    }
    let lab = Lab::up(spec)?;
    let tor = start(&lab)?;

    if md5 {
        // The signed sessions run with the key (without it they never come
        // up and check 1 fails); keepaliveTime 10s made the hold time 30 s.
        wait_until(Duration::from_secs(20), "node1's signed session", || {
            let s = lab.node_status(0).map_err(|e| e.to_string())?;
            if s["peers"][0]["holdTime"] == 30 {
                Ok(())
            } else {
                Err(s.to_string())
            }
        })?;
    }
    // 1. Pods reach each other.
    lab.wait_full_mesh(Duration::from_secs(40))
        .with_context(|| format!("ToR routes:\n{}", tor.routes().unwrap_or_default()))?;
    // 2. The ToR has every block, and in its kernel.
    let blocks: Vec<String> = (0..3).map(|i| block4(&lab, i)).collect();
    let kernel = net::ip_in_output(&lab.router, &["route"])?;
    let table = tor.routes()?;
    for (i, b) in blocks.iter().enumerate() {
        assert!(table.contains(b.as_str()), "ToR lacks {b}:\n{table}");
        let via = format!("via {} ", NODES[i].1);
        assert!(
            kernel
                .lines()
                .any(|l| l.starts_with(&format!("{b} ")) && l.contains(&via)),
            "ToR kernel lacks {b} {via}:\n{kernel}"
        );
    }
    // Each node announced exactly its own block (local routes only).
    for i in 0..3 {
        let s = lab.node_status(i)?;
        let peer = &s["peers"][0];
        assert_eq!(peer["state"], "Established", "{s}");
        assert_eq!(peer["prefixesAdvertised"], 1, "{s}");
    }
    // 3. The ToR's 198.51.100.0/24: received, filtered, not in the kernel.
    for (i, (name, _, _)) in NODES.iter().enumerate() {
        let s = wait_until(
            Duration::from_secs(10),
            "the ToR's routes at the node",
            || {
                let s = lab.node_status(i).map_err(|e| e.to_string())?;
                if s["peers"][0]["prefixesReceived"] == 3 {
                    Ok(s)
                } else {
                    Err(s.to_string())
                }
            },
        )?;
        assert_eq!(
            s["peers"][0]["prefixesAccepted"], 2,
            "the two other blocks: {s}"
        );
        assert_eq!(s["learned"], 2, "the two other blocks: {s}");
        let routes = net::ip_in_output(&lab.nodes[i].ns, &["route"])?;
        if routes.contains("198.51.100.0") {
            bail!("{name} installed the ToR's non-pool prefix:\n{routes}");
        }
    }
    // 4. node1 -> node3's block through the ToR, no tunnel device.
    let r1 = net::ip_in_output(&lab.nodes[0].ns, &["route"])?;
    let via = format!("{} via 172.30.1.1 dev eth0 proto 116", blocks[2]);
    assert!(r1.contains(&via), "node1 lacks `{via}`:\n{r1}");
    assert!(!r1.contains("vxlan") && !r1.contains("tunl0"), "{r1}");
    Ok(())
}

#[test]
fn bird_as_the_tor_with_md5() -> Result<()> {
    tor_test(bird, true)
}

#[test]
fn frr_as_the_tor() -> Result<()> {
    tor_test(frr, false)
}

/// `advertisePoolAggregates`: the nodes keep their mesh (east-west by
/// blocks) and send an external BIRD router (AS 65000, a host on their
/// subnet) the pool, as an aggregate, instead of their blocks, and their
/// service range as to any router. The router learns the /16 and the
/// service range from every node and no block; the nodes do not install
/// the /16 it sends back (their own aggregate wins); the router reaches
/// every pod through whichever node it picked, which forwards on its mesh
/// route.
#[test]
fn a_router_gets_pool_aggregates_only() -> Result<()> {
    let mut spec = spec("g", 3)?;
    spec.encap = Encap::None;
    spec.one_subnet = true;
    spec.resources = "apiVersion: projectcalico.org/v3\nkind: BGPConfiguration\nmetadata: {name: default}\nspec:\n  serviceClusterIPs: [{cidr: 10.96.0.0/12}]\n".into();
    let mut lab = Lab::up(spec)?;
    let (ns, ext) = lab.add_host("ext")?;
    let peer = format!(
        "apiVersion: projectcalico.org/v3\nkind: BGPPeer\nmetadata:\n  name: ext\nspec:\n  peerIP: {ext}\n  asNumber: 65000\n  advertisePoolAggregates: true\n"
    );
    apply(&lab, "ext-peer", &peer)?;

    let mut conf = format!(
        "router id {ext};\nprotocol device {{}}\nprotocol direct {{ ipv4; }}\n\
         protocol kernel {{ ipv4 {{ export where source = RTS_BGP; }}; }}\n\
         template bgp tonode {{ local as 65000; ipv4 {{ import all; export all; }}; }}\n"
    );
    for (i, n) in lab.nodes.iter().enumerate() {
        conf += &format!(
            "protocol bgp n{i} from tonode {{ neighbor {} as 64512; }}\n",
            n.address
        );
    }
    let tor = BirdTor::start_conf(&lab, &ns, "ext", &conf)?;

    // The router: the pool and the service range from all three nodes,
    // no block.
    let table = wait_until(
        Duration::from_secs(30),
        "pool and services from 3 nodes",
        || {
            let t = tor.table().map_err(|e| e.to_string())?;
            let paths = paths(&t);
            let from_all = |p: &str| paths.get(p).is_some_and(|from| from.len() == 3);
            if from_all("10.244.0.0/16") && from_all("10.96.0.0/12") {
                Ok(t)
            } else {
                Err(t)
            }
        },
    )?;
    assert!(
        !table.contains("/26"),
        "a block reached the router:\n{table}"
    );
    assert!(table.contains("BGP.atomic_aggr"), "{table}");
    // AGGREGATOR: each node's AS and router ID (its address here).
    for n in &lab.nodes {
        let aggregator = format!("BGP.aggregator: {} AS64512", n.address);
        assert!(table.contains(&aggregator), "{aggregator} in\n{table}");
    }
    for i in 0..3 {
        let s = lab.node_status(i)?;
        let p = s["peers"]
            .as_array()
            .and_then(|ps| ps.iter().find(|p| p["address"] == ext.to_string().as_str()))
            .cloned()
            .with_context(|| format!("no ext peer: {s}"))?;
        assert_eq!(p["state"], "Established", "{s}");
        assert_eq!(p["prefixesAdvertised"], 2, "the pool and the services: {s}");
    }
    // East-west still by blocks; the /16 the router sends back is not
    // installed.
    lab.wait_full_mesh(Duration::from_secs(30))?;
    for n in &lab.nodes {
        let routes = net::ip_in_output(&n.ns, &["route"])?;
        assert_eq!(
            routes.matches("/26 via").count(),
            2,
            "{}:\n{routes}",
            n.name
        );
        assert!(!routes.contains("10.244.0.0/16"), "{}:\n{routes}", n.name);
    }
    // North-south: the router reaches every pod through the aggregate.
    for pod in &lab.pods {
        let addr = pod.address.to_string();
        wait_until(Duration::from_secs(10), "a ping from the router", || {
            net::exec_in(&ns, &["ping", "-c", "1", "-W", "1", &addr]).map_err(|e| e.to_string())
        })?;
    }
    Ok(())
}
