//! Network namespaces for tests: unique names, veth links, addresses,
//! commands and sockets inside a namespace, and cleanup on drop.
//!
//! Everything is driven through iproute2 (`ip netns ...`, `ip -n NS ...`),
//! except opening a TCP socket inside a namespace, which a throwaway thread
//! does after `setns(2)` (the socket stays in that namespace).

use std::io;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::process::{Output, Stdio};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context, Result};

pub use tortie_testkit::capture::Capture;
pub use tortie_testkit::netns::NsChild;

/// Where `ip netns add` puts the namespace handles.
pub use tortie_testkit::netns::NETNS_DIR;

/// A network namespace that lives as long as its last clone
/// ([`tortie_testkit::netns::Netns`] shared). Dropping the last clone kills
/// every process inside it (`ip netns pids`) and deletes it, which also
/// removes its veth ends (and their peers).
#[derive(Clone, Debug)]
pub struct Netns(Arc<tortie_testkit::netns::Netns>);

/// One host of a [`Topology`]: its namespace and addresses on the segment.
#[derive(Clone, Debug)]
pub struct Host {
    /// The host's namespace.
    pub ns: Netns,
    /// 172.30.0.(index + 1) on `eth0`.
    pub v4: Ipv4Addr,
    /// fd00:30::(index + 1) on `eth0`.
    pub v6: Ipv6Addr,
}

/// N hosts on one L2 segment (172.30.0.0/24 and fd00:30::/64). Two hosts are
/// joined by one veth pair; three or more through a bridge in a separate
/// "switch" namespace. Each host's interface is `eth0`.
#[derive(Debug)]
pub struct Topology {
    /// The hosts, in order: host `i` has address `.i+1`.
    pub hosts: Vec<Host>,
    /// The switch namespace, when there is one (kept alive for its bridge).
    _switch: Option<Netns>,
}

// ===== impl Netns =====

/// The shared namespace, for the helpers of [`tortie_testkit`] that take
/// one (`tortie_testkit::frr::start_zebra`).
impl AsRef<tortie_testkit::netns::Netns> for Netns {
    fn as_ref(&self) -> &tortie_testkit::netns::Netns {
        &self.0
    }
}

impl Netns {
    /// Creates a namespace named `tt-<pid>-<n>` (unique in this machine while
    /// this process lives) with `lo` up.
    pub fn new() -> Result<Netns> {
        let ns = Netns(Arc::new(
            tortie_testkit::netns::Netns::new("tt").context("creating a netns")?,
        ));
        // Routing daemons must not inherit the host's forwarding settings in
        // a way that matters for tests; make it explicit.
        ns.sysctl("net.ipv4.ip_forward", "1")?;
        ns.sysctl("net.ipv6.conf.all.forwarding", "1")?;
        Ok(ns)
    }

    /// The namespace's name, as `ip netns` knows it.
    pub fn name(&self) -> &str {
        self.0.name()
    }

    /// Runs `ip -n NAME <args>`; fails with ip's stderr on a non-zero exit.
    pub fn ip(&self, args: &[&str]) -> Result<()> {
        self.0.ip(args)?;
        Ok(())
    }

    /// Sets a sysctl inside the namespace (`sysctl -w` through `ip netns exec`).
    pub fn sysctl(&self, key: &str, value: &str) -> Result<()> {
        self.run(&["sysctl", "-q", "-w", &format!("{key}={value}")])
            .map(|_| ())
    }

    /// Runs a command inside the namespace and returns its output whatever
    /// its exit status. `argv[0]` is the program.
    pub fn exec(&self, argv: &[&str]) -> Result<Output> {
        if argv.is_empty() {
            bail!("exec: empty argv");
        }
        self.0
            .command(argv)
            .stdin(Stdio::null())
            .output()
            .with_context(|| format!("running {argv:?} in netns {}", self.name()))
    }

    /// Runs a command inside the namespace; fails unless it exits 0, with
    /// the command and its stderr in the error. Returns stdout.
    pub fn run(&self, argv: &[&str]) -> Result<String> {
        let out = self.exec(argv)?;
        if !out.status.success() {
            bail!(
                "{argv:?} in netns {} exited with {}: {}{}",
                self.name(),
                out.status,
                String::from_utf8_lossy(&out.stderr).trim(),
                String::from_utf8_lossy(&out.stdout).trim()
            );
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// Starts a long-running command inside the namespace with stdout and
    /// stderr appended to `log`. The process is killed when the returned
    /// guard drops (or when the namespace goes).
    pub fn spawn(&self, argv: &[&str], log: &Path) -> Result<NsChild> {
        if argv.is_empty() {
            bail!("spawn: empty argv");
        }
        Ok(self.0.spawn(argv, log)?)
    }

    /// Adds an address (`ip addr add ADDR dev DEV`); IPv6 addresses get
    /// `nodad` so they are usable at once.
    pub fn add_addr(&self, dev: &str, cidr: &str) -> Result<()> {
        if cidr.contains(':') {
            self.ip(&["addr", "add", cidr, "dev", dev, "nodad"])
        } else {
            self.ip(&["addr", "add", cidr, "dev", dev])
        }
    }

    /// Starts `tcpdump -i dev -nn -v -l FILTER` in the namespace and waits
    /// until it listens ([`Capture::packets`] reads what it saw).
    pub fn capture(&self, dev: &str, filter: &str) -> Result<Capture> {
        Capture::start(&self.0, dev, filter)
            .with_context(|| format!("tcpdump -i {dev} {filter:?} in netns {}", self.name()))
    }

    /// Opens a TCP connection from inside this namespace: a throwaway
    /// thread joins the namespace (`setns`), connects, and hands the socket
    /// back. The socket keeps belonging to this namespace.
    pub fn connect(&self, addr: SocketAddr, timeout: Duration) -> io::Result<TcpStream> {
        let stream = self
            .0
            .on_thread(move || TcpStream::connect_timeout(&addr, timeout))?;
        stream.set_read_timeout(Some(timeout))?;
        stream.set_write_timeout(Some(timeout))?;
        Ok(stream)
    }

    /// Binds a TCP listener inside this namespace (same trick as
    /// [`Netns::connect`]).
    pub fn listen(&self, addr: SocketAddr) -> io::Result<TcpListener> {
        self.0.on_thread(move || TcpListener::bind(addr))
    }

    /// Pids of every process inside the namespace (`ip netns pids`).
    pub fn pids(&self) -> Result<Vec<i32>> {
        Ok(self.0.pids())
    }
}

// ===== impl Topology =====

impl Topology {
    /// `n` hosts (at least 2) on one segment, addressed and up.
    pub fn new(n: usize) -> Result<Topology> {
        if !(2..=200).contains(&n) {
            bail!("Topology::new: {n} hosts; need 2..=200");
        }
        let mut hosts = Vec::with_capacity(n);
        for i in 0..n {
            let octet = u8::try_from(i + 1).context("host index")?;
            hosts.push(Host {
                ns: Netns::new()?,
                v4: Ipv4Addr::new(172, 30, 0, octet),
                v6: Ipv6Addr::new(0xfd00, 0x30, 0, 0, 0, 0, 0, u16::from(octet)),
            });
        }
        let switch = if n == 2 {
            veth(&hosts[0].ns, "eth0", &hosts[1].ns, "eth0")?;
            None
        } else {
            let sw = Netns::new()?;
            sw.ip(&["link", "add", "br0", "type", "bridge"])?;
            sw.ip(&["link", "set", "br0", "up"])?;
            for (i, h) in hosts.iter().enumerate() {
                let port = format!("p{i}");
                veth(&h.ns, "eth0", &sw, &port)?;
                sw.ip(&["link", "set", &port, "master", "br0"])?;
                sw.ip(&["link", "set", &port, "up"])?;
            }
            Some(sw)
        };
        for h in &hosts {
            h.ns.add_addr("eth0", &format!("{}/24", h.v4))?;
            h.ns.add_addr("eth0", &format!("{}/64", h.v6))?;
            h.ns.ip(&["link", "set", "eth0", "up"])?;
        }
        Ok(Topology {
            hosts,
            _switch: switch,
        })
    }
}

// ===== helpers =====

/// Creates a veth pair with one end in each namespace, never touching the
/// host namespace (so the names only need to be unique inside each one);
/// both ends up.
pub fn veth(a: &Netns, a_if: &str, b: &Netns, b_if: &str) -> Result<()> {
    if a_if.len() > 15 || b_if.len() > 15 {
        bail!("veth: interface names {a_if:?}/{b_if:?} are longer than 15 characters");
    }
    Ok(tortie_testkit::netns::veth(&a.0, a_if, &b.0, b_if)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use nix::sys::signal::Signal;
    use nix::unistd::Pid;

    #[test]
    fn names_are_unique_and_short() {
        let a = Netns::new().unwrap();
        let b = Netns::new().unwrap();
        assert_ne!(a.name(), b.name());
        assert!(a.name().starts_with("tt-"));
        assert!(a.name().len() <= 15, "{}", a.name());
    }

    #[test]
    fn drop_deletes_namespace_and_kills_processes() {
        let dir = tempfile::tempdir().unwrap();
        let ns = Netns::new().unwrap();
        let name = ns.name().to_string();
        let child = ns
            .spawn(&["sleep", "300"], &dir.path().join("log"))
            .unwrap();
        let pid = child.pid() as i32;
        // `ip netns exec` joins the namespace right after fork: poll.
        crate::wait_until(
            Duration::from_secs(5),
            "sleep inside the netns",
            || match ns.pids().map_err(|e| e.to_string())? {
                p if p == vec![pid] => Ok(()),
                p => Err(format!("pids {p:?}")),
            },
        )
        .unwrap();
        std::mem::forget(child); // leave it to the namespace guard
        drop(ns);
        assert!(!Path::new(NETNS_DIR).join(&name).exists());
        // Reap it (it is our child) and check it died of SIGKILL.
        let status = nix::sys::wait::waitpid(Pid::from_raw(pid), None).unwrap();
        assert!(
            matches!(
                status,
                nix::sys::wait::WaitStatus::Signaled(_, Signal::SIGKILL, _)
            ),
            "{status:?}"
        );
    }

    #[test]
    fn a_panicking_test_still_cleans_up() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("log");
        let mut names = Vec::new();
        let result = std::panic::catch_unwind(|| {
            let topo = Topology::new(3).unwrap();
            let _child = topo.hosts[0].ns.spawn(&["sleep", "300"], &log).unwrap();
            let names: Vec<String> = topo.hosts.iter().map(|h| h.ns.name().to_string()).collect();
            panic!("{}", names.join(","));
        });
        let msg = result.unwrap_err();
        let msg = msg.downcast_ref::<String>().unwrap();
        names.extend(msg.split(',').map(str::to_string));
        assert_eq!(names.len(), 3);
        for n in names {
            assert!(!Path::new(NETNS_DIR).join(&n).exists(), "{n} left behind");
        }
    }

    #[test]
    fn topology_hosts_reach_each_other_over_tcp() {
        for n in [2, 3] {
            let topo = Topology::new(n).unwrap();
            let server = &topo.hosts[n - 1];
            let client = &topo.hosts[0];
            for addr in [
                SocketAddr::new(server.v4.into(), 7000),
                SocketAddr::new(server.v6.into(), 7000),
            ] {
                let listener = server.ns.listen(addr).unwrap();
                let stream = client.ns.connect(addr, Duration::from_secs(5)).unwrap();
                let (_, from) = listener.accept().unwrap();
                assert_eq!(stream.peer_addr().unwrap(), addr);
                assert_eq!(
                    from.ip(),
                    match addr {
                        SocketAddr::V4(_) => std::net::IpAddr::from(client.v4),
                        SocketAddr::V6(_) => std::net::IpAddr::from(client.v6),
                    }
                );
            }
            // The same address is not bound in the host namespace: each
            // topology is isolated (a listener there does not collide).
            let host_side = TcpListener::bind(SocketAddr::new(server.v4.into(), 7000));
            assert!(host_side.is_err(), "172.30.0.x must not exist on the host");
        }
    }
}
