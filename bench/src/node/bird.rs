//! BIRD 2 configured the way Calico's confd templates configure it on a
//! node, for the side-by-side runs: kernel protocol with `learn`,
//! `persist`, a 2 s scan and graceful restart; device and direct
//! protocols scanning every 2 s; the node's blocks as static blackholes
//! (what Calico's `bird_aggr` template writes for the blocks a node owns);
//! iBGP sessions with `multihop`, `gateway recursive`, `add paths`,
//! graceful restart, connect delay 2 s, connect retry 5 s, error wait
//! 5-30 s; export to peers only of prefixes inside the pool. Calico starts
//! BIRD with `-R` (graceful-restart recovery) after a restart.

use std::fmt::Write as _;
use std::net::Ipv4Addr;

/// How a node's BIRD peers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Peering {
    /// Node-to-node mesh: one session to each of these.
    Mesh(Vec<Ipv4Addr>),
    /// A route reflector (the first node): these are its clients.
    Reflector { clients: Vec<Ipv4Addr> },
    /// A reflector's client: one session to the reflector.
    Client { reflector: Ipv4Addr },
}

/// The configuration of the BIRD on the node at `me` (AS `asn`), owning
/// `blocks`, exporting the blocks (`block_len` long) inside `pool`
/// (`10.244.0.0/16`). Pod /32 routes, which BIRD learns from the kernel,
/// stay local: Calico exports a /32 only for an address borrowed from
/// another node's block, and the lab borrows none.
pub fn config(
    me: Ipv4Addr,
    asn: u32,
    pool: &str,
    block_len: u8,
    blocks: &[String],
    peering: &Peering,
) -> String {
    let mut c = String::new();
    let _ = writeln!(c, "router id {me};");
    let _ = writeln!(
        c,
        "filter to_kernel {{ if source = RTS_BGP then accept; reject; }}"
    );
    let _ = writeln!(
        c,
        "filter to_peers {{ if net ~ [ {pool}{{{block_len},{block_len}}} ] then accept; reject; }}"
    );
    c.push_str(
        "protocol device { scan time 2; }\n\
         protocol direct { ipv4; interface \"eth0\"; }\n\
         protocol kernel {\n  learn;\n  persist;\n  scan time 2;\n  graceful restart;\n  merge paths on;\n  \
         ipv4 { import all; export filter to_kernel; };\n}\n",
    );
    if !blocks.is_empty() {
        c.push_str("protocol static blocks {\n  ipv4;\n");
        for b in blocks {
            let _ = writeln!(c, "  route {b} blackhole;");
        }
        c.push_str("}\n");
    }
    let _ = writeln!(
        c,
        "template bgp node_peer {{\n  local {me} as {asn};\n  multihop;\n  \
         ipv4 {{ gateway recursive; import all; export filter to_peers; add paths on; }};\n  \
         graceful restart;\n  connect delay time 2;\n  connect retry time 5;\n  error wait time 5,30;\n}}"
    );
    let (peers, rr_client): (Vec<Ipv4Addr>, bool) = match peering {
        Peering::Mesh(p) => (p.clone(), false),
        Peering::Reflector { clients } => (clients.clone(), true),
        Peering::Client { reflector } => (vec![*reflector], false),
    };
    for p in peers {
        let name = p.to_string().replace('.', "_");
        let _ = write!(
            c,
            "protocol bgp Peer_{name} from node_peer {{ neighbor {p} as {asn};"
        );
        if rr_client {
            let _ = write!(c, " rr client; rr cluster id {me};");
        }
        c.push_str(" }\n");
    }
    c
}

#[cfg(test)]
mod tests {
    use super::*;

    fn a(s: &str) -> Ipv4Addr {
        s.parse().unwrap()
    }

    #[test]
    fn mesh_node() {
        let c = config(
            a("172.30.1.11"),
            64512,
            "10.244.0.0/16",
            26,
            &["10.244.0.0/26".into()],
            &Peering::Mesh(vec![a("172.30.1.12"), a("172.30.1.13")]),
        );
        assert!(c.starts_with("router id 172.30.1.11;\n"), "{c}");
        assert!(c.contains("learn;\n  persist;\n  scan time 2;\n  graceful restart;"));
        assert!(c.contains("route 10.244.0.0/26 blackhole;"));
        assert!(
            c.contains("if net ~ [ 10.244.0.0/16{26,26} ] then accept;"),
            "{c}"
        );
        assert!(c.contains("connect delay time 2;"));
        assert!(c.contains(
            "protocol bgp Peer_172_30_1_12 from node_peer { neighbor 172.30.1.12 as 64512; }"
        ));
        assert!(c.contains("Peer_172_30_1_13"));
        assert!(!c.contains("rr client"));
    }

    #[test]
    fn reflector_and_client() {
        let rr = config(
            a("172.30.1.11"),
            64512,
            "10.244.0.0/16",
            26,
            &[],
            &Peering::Reflector {
                clients: vec![a("172.30.1.12")],
            },
        );
        assert!(!rr.contains("protocol static"), "{rr}");
        assert!(
            rr.contains("neighbor 172.30.1.12 as 64512; rr client; rr cluster id 172.30.1.11; }")
        );
        let client = config(
            a("172.30.1.12"),
            64512,
            "10.244.0.0/16",
            26,
            &[],
            &Peering::Client {
                reflector: a("172.30.1.11"),
            },
        );
        assert_eq!(client.matches("protocol bgp").count(), 1, "{client}");
        assert!(client.contains("neighbor 172.30.1.11 as 64512; }"));
    }
}
