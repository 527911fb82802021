//! Loopback ports for the servers tests start (etcd, an API server,
//! tortie-rr's admin endpoint).

use std::net::TcpListener;
use std::sync::atomic::{AtomicU32, Ordering};

/// The lowest port handed out.
const LOW: u16 = 10_000;

/// A loopback TCP port free right now, below the kernel's ephemeral range
/// (`net.ipv4.ip_local_port_range`, 32768-60999 by default). A port taken
/// from `bind(":0")` lies inside that range, so the kernel may give it to
/// any outgoing connection (the flap-storm tests make thousands) between
/// our check and the server's own bind: "address already in use". Below
/// the range only an explicit bind can take it; the start is spread by
/// the process id and a counter so that parallel test processes rarely
/// try the same ports.
pub fn free_port() -> u16 {
    static N: AtomicU32 = AtomicU32::new(0);
    let high = ephemeral_low().max(LOW + 1_000);
    let span = u32::from(high - LOW);
    let n = N.fetch_add(1, Ordering::Relaxed);
    let start = (std::process::id().wrapping_mul(7919) ^ n.wrapping_mul(104_729)) % span;
    (0..span)
        .map(|i| LOW + ((start + i) % span) as u16)
        .find(|p| TcpListener::bind(("127.0.0.1", *p)).is_ok())
        .expect("a free loopback port below the ephemeral range")
}

/// The first port of the kernel's ephemeral range.
fn ephemeral_low() -> u16 {
    std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .unwrap_or(32_768)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_are_free_below_the_ephemeral_range_and_spread() {
        let a = free_port();
        let b = free_port();
        assert!(a >= LOW && a < ephemeral_low().max(LOW + 1_000), "{a}");
        assert_ne!(a, b, "a counter moves the start");
        TcpListener::bind(("127.0.0.1", a)).expect("free");
    }
}
