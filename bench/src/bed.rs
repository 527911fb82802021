//! The test bed of every benchmark: two namespaces joined by a veth pair.
//!
//! ```text
//!  tbr-PID-N (receiver)            tbc-PID-N (our peers)
//!  eth0 10.77.0.1/16  <== veth ==>  eth0 10.77.0.2/16  generator
//!  speaker under test                    10.77.0.3/16  keepalive probe
//!  (admin HTTP on 10.77.0.1:9180)        10.77.1.1/16 ... RR clients
//! ```
//!
//! Our peers and the benchmark's own queries run on a thread that entered
//! the client namespace (see [`Bed::run`]), so no packet leaves the two
//! namespaces.

use std::net::Ipv4Addr;
use std::time::Duration;

use anyhow::{anyhow, Result};

use crate::netns::{enter_path, veth, Netns};

/// The speaker under test.
pub const RECEIVER: Ipv4Addr = Ipv4Addr::new(10, 77, 0, 1);
/// The generator (the peer that announces the routes).
pub const GENERATOR: Ipv4Addr = Ipv4Addr::new(10, 77, 0, 2);
/// The keepalive probe (holdTime 3).
pub const PROBE: Ipv4Addr = Ipv4Addr::new(10, 77, 0, 3);
/// Our AS, and everybody's (iBGP).
pub const ASN: u32 = 64512;

/// Two namespaces and a veth pair; removed on drop.
#[derive(Debug)]
pub struct Bed {
    /// Where the speaker under test runs.
    pub receiver: Netns,
    /// Where our peers run.
    pub clients: Netns,
}

// ===== impl Bed =====

impl Bed {
    /// Creates the namespaces, the link, the receiver's address, and the
    /// generator's, the probe's and `clients` RR clients' addresses.
    pub fn new(clients: usize) -> Result<Bed> {
        let bed = Bed {
            receiver: Netns::new("r")?,
            clients: Netns::new("c")?,
        };
        veth(&bed.receiver, &bed.clients)?;
        bed.receiver
            .ip(&["addr", "add", &format!("{RECEIVER}/16"), "dev", "eth0"])?;
        let mut lines: Vec<String> = [GENERATOR, PROBE]
            .into_iter()
            .chain((0..clients).map(client))
            .map(|a| format!("addr add {a}/16 dev eth0"))
            .collect();
        lines.push("link set eth0 up".into());
        bed.clients.ip_batch(&lines)?;
        Ok(bed)
    }

    /// Runs `f` on a thread inside the client namespace, with a tokio
    /// runtime (one worker, also inside) for our BGP sessions. `f` itself
    /// may block (polling): the sessions run on the worker.
    pub fn run<T: Send>(
        &self,
        f: impl FnOnce(&tokio::runtime::Runtime) -> Result<T> + Send,
    ) -> Result<T> {
        let path = self.clients.path();
        std::thread::scope(|s| {
            let h = s.spawn(move || -> Result<T> {
                enter_path(&path)?;
                let worker_path = path.clone();
                let rt = tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(1)
                    .enable_all()
                    .on_thread_start(move || {
                        // Threads inherit the namespace of their creator;
                        // enter it again in case one is spawned elsewhere.
                        let _ = enter_path(&worker_path);
                    })
                    .build()?;
                let out = f(&rt);
                rt.shutdown_timeout(Duration::from_secs(1));
                out
            });
            h.join().map_err(|p| {
                let msg = p
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_default();
                anyhow!("benchmark thread panicked: {msg}")
            })?
        })
    }
}

/// The address of RR client `i` (0-based): 10.77.1.1, 10.77.1.2, ...,
/// 250 per /24.
pub fn client(i: usize) -> Ipv4Addr {
    Ipv4Addr::new(10, 77, 1 + (i / 250) as u8, 1 + (i % 250) as u8)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_addresses_are_distinct_and_inside_the_bed() {
        let all: std::collections::HashSet<_> = (0..1000).map(client).collect();
        assert_eq!(all.len(), 1000);
        assert_eq!(client(0), Ipv4Addr::new(10, 77, 1, 1));
        assert_eq!(client(250), Ipv4Addr::new(10, 77, 2, 1));
        assert!(all
            .iter()
            .all(|a| a.octets()[..2] == [10, 77] && a.octets()[3] != 0));
        assert!(!all.contains(&RECEIVER) && !all.contains(&GENERATOR) && !all.contains(&PROBE));
    }
}
