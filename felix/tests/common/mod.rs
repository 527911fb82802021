//! Helpers for tests in network namespaces the test creates: unique names
//! (pid + counter), a guard that deletes the namespace on drop (also on
//! panic), and `ip` wrappers.
#![allow(dead_code)]

use std::path::PathBuf;
use std::process::Command;

/// A network namespace that exists while this value lives
/// ([`tortie_testkit::netns::Netns`]: processes inside are killed and the
/// namespace deleted on drop).
pub struct Netns {
    /// Its name (`ip netns` name).
    pub name: String,
    inner: tortie_testkit::netns::Netns,
}

impl Netns {
    /// Creates `tf-<tag>-<pid>-<n>` with lo up.
    pub fn new(tag: &str) -> Netns {
        let inner = tortie_testkit::netns::Netns::new(&format!("tf-{tag}"))
            .unwrap_or_else(|e| panic!("creating a netns: {e}"));
        Netns {
            name: inner.name().to_string(),
            inner,
        }
    }

    /// `/run/netns/NAME`.
    pub fn path(&self) -> PathBuf {
        self.inner.path()
    }

    /// `ip -n NAME ARGS...`; panics with stderr if it fails.
    pub fn ip(&self, args: &[&str]) -> String {
        self.inner.ip(args).unwrap_or_else(|e| panic!("{e}"))
    }

    /// `ip -n NAME ARGS...`, returning success instead of panicking.
    pub fn try_ip(&self, args: &[&str]) -> bool {
        self.inner.ip(args).is_ok()
    }

    /// Our routes as `ip -n NS -j route show proto 116` (plus `-6`), parsed.
    pub fn our_routes(&self) -> Vec<serde_json::Value> {
        let mut all = Vec::new();
        for fam in ["-4", "-6"] {
            let out = self.ip(&["-j", fam, "route", "show", "table", "main", "proto", "116"]);
            let v: Vec<serde_json::Value> = serde_json::from_str(&out).unwrap_or_default();
            all.extend(v);
        }
        all
    }

    /// `ip -n NS route show ARGS` as text.
    pub fn routes_text(&self, args: &[&str]) -> String {
        let mut full = vec!["route", "show"];
        full.extend_from_slice(args);
        self.ip(&full)
    }
}

/// Runs a command, panics with its stderr on failure, returns stdout.
pub fn run(cmd: &str, args: &[&str]) -> String {
    tortie_testkit::netns::output(Command::new(cmd).args(args)).unwrap_or_else(|e| panic!("{e}"))
}

/// A node namespace: `eth0` (a veth whose peer `eth0p` stays in the same
/// namespace) with 192.168.1.11/24 and fd00:1::11/64, real VXLAN devices
/// `vxlan.tortie` and `vxlan-v6.tortie`, and `tunl0`: this kernel has no ipip module, so a veth
/// named `tunl0` stands in for the route-shape tests (it carries no IPIP).
pub fn node_ns(tag: &str) -> Netns {
    let ns = Netns::new(tag);
    // No duplicate address detection: each link's IPv6 link-local address
    // is final when the link comes up, here, not a second or more later
    // (an address event on a non-workload link makes a full pass, which a
    // test of passes would see at a random moment on a loaded machine).
    for key in ["all", "default"] {
        run(
            "ip",
            &[
                "netns",
                "exec",
                &ns.name,
                "sysctl",
                "-qw",
                &format!("net.ipv6.conf.{key}.accept_dad=0"),
            ],
        );
    }
    ns.ip(&[
        "link", "add", "eth0", "type", "veth", "peer", "name", "eth0p",
    ]);
    ns.ip(&["addr", "add", "192.168.1.11/24", "dev", "eth0"]);
    ns.ip(&["addr", "add", "fd00:1::11/64", "dev", "eth0", "nodad"]);
    ns.ip(&["link", "set", "eth0", "up"]);
    ns.ip(&["link", "set", "eth0p", "up"]);
    ns.ip(&[
        "link", "add", "tunl0", "type", "veth", "peer", "name", "tunl0p",
    ]);
    ns.ip(&["link", "set", "tunl0", "up"]);
    ns.ip(&["link", "set", "tunl0p", "up"]);
    ns.ip(&[
        "link",
        "add",
        "vxlan.tortie",
        "type",
        "vxlan",
        "id",
        "4096",
        "dstport",
        "4789",
        "local",
        "192.168.1.11",
        "dev",
        "eth0",
        "nolearning",
    ]);
    ns.ip(&["link", "set", "vxlan.tortie", "up"]);
    ns.ip(&[
        "link",
        "add",
        "vxlan-v6.tortie",
        "type",
        "vxlan",
        "id",
        "6096",
        "dstport",
        "4789",
        "local",
        "fd00:1::11",
        "dev",
        "eth0",
        "nolearning",
    ]);
    ns.ip(&["link", "set", "vxlan-v6.tortie", "up"]);
    ns.ip(&[
        "link",
        "add",
        "tort0123456789a",
        "type",
        "veth",
        "peer",
        "name",
        "pod0",
    ]);
    ns.ip(&["link", "set", "tort0123456789a", "up"]);
    ns.ip(&["link", "set", "pod0", "up"]);
    ns
}

/// One UDP datagram "ping from SRC" sent from a socket in `from` (bound to
/// `src`) to a server in `to` (bound to `dst:port`) that echoes it. Returns
/// the reply and the source address the server saw (for NAT checks). No
/// `ping` binary is needed; only the test's namespaces are used.
pub fn udp_echo_seen(
    from: &Netns,
    to: &Netns,
    src: &str,
    dst: &str,
    port: u16,
) -> Result<(String, std::net::SocketAddr), String> {
    use std::net::UdpSocket;
    use std::time::Duration;
    let (to_path, dst_s) = (to.path(), dst.to_owned());
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    let server = std::thread::spawn(move || {
        enter(&to_path);
        let sock = UdpSocket::bind((dst_s.as_str(), port)).unwrap();
        sock.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
        ready_tx.send(()).unwrap();
        let mut buf = [0u8; 64];
        let (n, peer) = sock.recv_from(&mut buf).ok()?;
        sock.send_to(&buf[..n], peer).unwrap();
        Some(peer)
    });
    ready_rx.recv().unwrap();
    let (from_path, src_s, dst_s) = (from.path(), src.to_owned(), dst.to_owned());
    let client = std::thread::spawn(move || {
        enter(&from_path);
        let sock =
            UdpSocket::bind((src_s.as_str(), 0)).map_err(|e| format!("bind {src_s}: {e}"))?;
        sock.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
        sock.send_to(
            format!("ping from {src_s}").as_bytes(),
            (dst_s.as_str(), port),
        )
        .map_err(|e| format!("send: {e}"))?;
        let mut buf = [0u8; 64];
        let n = sock.recv(&mut buf).map_err(|e| format!("recv: {e}"))?;
        Ok::<_, String>(String::from_utf8_lossy(&buf[..n]).into_owned())
    });
    let reply = client.join().unwrap();
    let seen = server.join().unwrap();
    Ok((reply?, seen.ok_or("the server saw nothing")?))
}

/// [`udp_echo_seen`], the reply only.
pub fn udp_echo(
    from: &Netns,
    to: &Netns,
    src: &str,
    dst: &str,
    port: u16,
) -> Result<String, String> {
    udp_echo_seen(from, to, src, dst, port).map(|(reply, _)| reply)
}

/// [`udp_echo`] up to `tries` times (ports `port`, `port + 100`, ...): a
/// path that has just been programmed may drop its very first datagram
/// while a hop resolves its neighbour. Returns the last result.
pub fn udp_echo_eventually(
    from: &Netns,
    to: &Netns,
    src: &str,
    dst: &str,
    port: u16,
    tries: u16,
) -> Result<String, String> {
    let mut last = Err("no attempt".to_string());
    for attempt in 0..tries.max(1) {
        last = udp_echo(from, to, src, dst, port + 100 * attempt);
        if last.is_ok() {
            break;
        }
    }
    last
}

/// Moves this (dedicated, throwaway) test thread into a namespace.
pub fn enter(path: &std::path::Path) {
    felix::netns::enter(Some(path)).expect("enter the namespace");
}

/// ICMP echo from inside `from` to `dst` with iputils `ping` (three
/// packets). `None` (with the reason printed) where no `ping` binary is
/// installed; CI installs it (iputils-ping).
pub fn icmp_ping(from: &Netns, dst: &str) -> Option<bool> {
    if Command::new("ping").arg("-V").output().is_err() {
        tortie_testkit::missing(
            &format!("icmp ping to {dst}"),
            "no ping binary (apt-get install iputils-ping)",
        );
        return None;
    }
    let out = Command::new("ip")
        .args([
            "netns", "exec", &from.name, "ping", "-c", "3", "-i", "0.2", "-W", "2", dst,
        ])
        .output()
        .expect("ip netns exec");
    Some(out.status.success())
}

/// A pod namespace `pod` behind a veth whose host end `ifname` is in
/// `node`: the pod side is `eth0` with `pod_ip/32` and
/// `default via 169.254.1.1 dev eth0 onlink`, as the CNI plugin makes it.
pub fn add_pod(node: &Netns, pod: &Netns, ifname: &str, pod_ip: &str) {
    node.ip(&[
        "link", "add", ifname, "type", "veth", "peer", "name", "podside",
    ]);
    node.ip(&["link", "set", "podside", "netns", &pod.name]);
    pod.ip(&["link", "set", "podside", "name", "eth0"]);
    pod.ip(&["addr", "add", &format!("{pod_ip}/32"), "dev", "eth0"]);
    pod.ip(&["link", "set", "eth0", "up"]);
    pod.ip(&[
        "route",
        "add",
        "default",
        "via",
        "169.254.1.1",
        "dev",
        "eth0",
        "onlink",
    ]);
}
