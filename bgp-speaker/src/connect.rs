//! Connections coming and going: the listener's and the caller's
//! accepted connections (who may connect, how many), our own connection
//! attempts and their retries.

use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use crate::config::{gtsm_min_ttl, DynamicPeerConfig};
use crate::events::Input;
use crate::instance::{jitter_ms, Instance};
use crate::neighbor::transport::{Dial, Stream};
use crate::rib::PeerId;

/// How long one connection attempt may take (then it counts as failed:
/// RFC 4271 event 18, TcpConnectionFails).
pub(crate) const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

// ===== impl Instance: connections =====

impl Instance {
    /// Reconnects an active peer, or removes a dynamic one with nothing left.
    pub(crate) fn after_conn_gone(&mut self, id: PeerId) {
        let Some(n) = self.neighbors.get(&id) else {
            return;
        };
        if !n.conns.is_empty() || self.stopping.is_some() {
            return;
        }
        if n.dynamic {
            if n.gr.stale.is_empty() {
                self.remove_neighbor(id);
            }
            return;
        }
        if !n.config.passive && n.connect_timer.is_none() && !n.connecting {
            let base = retry_delay(n.attempts, n.config.connect_retry);
            let delay =
                base - base / 4 + Duration::from_millis(jitter_ms(base.as_millis() as u64 / 4));
            if let Some(n) = self.neighbors.get_mut(&id) {
                n.attempts = n.attempts.saturating_add(1);
            }
            self.schedule_connect(id, delay);
        }
    }

    pub(crate) fn on_accepted(&mut self, stream: Stream, from: SocketAddr) {
        let ip = canonical(from.ip());
        let existing = self.by_addr.get(&ip).copied();
        let dynamic = match existing {
            Some(_) => None,
            None => match self.dynamic_match(ip) {
                Some(d) if self.dynamic_count(&d) >= d.max_peers as usize => {
                    self.refused.peer_limit += 1;
                    tracing::warn!(peer = %ip, prefix = %d.prefix, max_peers = d.max_peers, "connection refused: the dynamic prefix has its most peers");
                    return;
                }
                Some(d) => Some(d),
                None => {
                    self.refused.not_a_peer += 1;
                    tracing::warn!(peer = %ip, "connection from an address that is no configured or dynamic peer: closed");
                    return;
                }
            },
        };
        let hops = match (existing, &dynamic) {
            (Some(id), _) => self.neighbors.get(&id).and_then(|n| n.config.ttl_security),
            (None, Some(d)) => d.ttl_security,
            (None, None) => None,
        };
        if let Some(hops) = hops {
            if let Err(why) = gtsm_accepted(&stream, hops) {
                self.refused_by_gtsm(existing, ip, why);
                return;
            }
        }
        let id = match (existing, dynamic) {
            (Some(id), _) => id,
            (None, Some(d)) => {
                let cfg = d.peer(ip);
                tracing::info!(peer = %ip, prefix = %d.prefix, "dynamic peer connected");
                self.add_neighbor(cfg, true)
            }
            (None, None) => return,
        };
        self.supersede_unfinished_inbound(id);
        self.spawn_session(id, stream, true);
    }

    /// Counts and logs an inbound connection that failed GTSM (closed
    /// with its stream, before BGP read a byte), and tells the peer's
    /// status why when its session is not up.
    fn refused_by_gtsm(&mut self, id: Option<PeerId>, ip: std::net::IpAddr, why: String) {
        self.refused.ttl_security += 1;
        tracing::warn!(peer = %ip, "connection refused by GTSM (ttlSecurity): {why}");
        if let Some(n) = id.and_then(|id| self.neighbors.get_mut(&id)) {
            if n.established.is_none() {
                n.last_error = Some(format!("GTSM refused a connection from {ip}: {why}"));
            }
        }
    }

    /// The peers accepted through dynamic prefix `d` now.
    fn dynamic_count(&self, d: &DynamicPeerConfig) -> usize {
        self.neighbors
            .values()
            .filter(|n| n.dynamic && d.prefix.contains(&n.config.address))
            .count()
    }

    /// The peer connected again: its inbound connections that have not
    /// reached Established are dropped (the peer gave up on them, or they
    /// are a flood), so one address holds at most one unfinished inbound
    /// connection, beside its Established one and our own connection to it
    /// (the pair of RFC 4271 §6.8).
    fn supersede_unfinished_inbound(&mut self, id: PeerId) {
        let Some(n) = self.neighbors.get_mut(&id) else {
            return;
        };
        let established = n.established;
        let before = n.conns.len();
        let mut gone = Vec::new();
        n.conns.retain(|c| {
            let keep = !c.inbound || Some(c.id) == established;
            if !keep {
                gone.push(c.id);
            }
            keep
        });
        if n.conns.len() < before {
            tracing::debug!(peer = %n.config.address, closed = before - n.conns.len(), "newer connection from the same address: unfinished ones closed");
        }
        for conn in gone {
            // Dropped with its task: the socket closes, no Closed event.
            self.conn_owner.remove(&conn);
            self.refused.superseded += 1;
        }
    }

    pub(crate) fn dynamic_match(&self, ip: std::net::IpAddr) -> Option<DynamicPeerConfig> {
        self.config
            .dynamic_peers
            .iter()
            .find(|d| d.prefix.contains(&ip))
            .cloned()
    }

    pub(crate) fn on_connect_retry(&mut self, id: PeerId) {
        let Some(n) = self.neighbors.get_mut(&id) else {
            return;
        };
        n.connect_timer = None;
        if n.established.is_some() || n.connecting || n.conns.iter().any(|c| !c.inbound) {
            return;
        }
        // Held down by BFD: BFD Up schedules the next attempt.
        if n.bfd.as_ref().is_some_and(|l| l.holding) {
            return;
        }
        n.connecting = true;
        n.touch();
        let dialing = self.dialer.dial(Dial {
            peer: SocketAddr::new(n.config.address, n.config.port),
            local: n.config.local_address,
            password: n.config.password.clone(),
            min_ttl: n.config.min_ttl(),
        });
        let tx = self.inputs.clone();
        tokio::spawn(async move {
            let res = match tokio::time::timeout(CONNECT_TIMEOUT, dialing).await {
                Ok(res) => res,
                Err(_) => Err(io::Error::new(io::ErrorKind::TimedOut, "connect timed out")),
            };
            let _ = tx.send(Input::Connected(id, res)).await;
        });
    }

    pub(crate) fn on_connected(&mut self, id: PeerId, res: io::Result<Stream>) {
        let Some(n) = self.neighbors.get_mut(&id) else {
            return;
        };
        n.connecting = false;
        match res {
            Ok(stream) if n.established.is_none() => self.spawn_session(id, stream, false),
            Ok(_) => {}
            Err(e) => {
                if n.established.is_none() {
                    let gtsm = match (n.config.ttl_security, e.kind()) {
                        (Some(hops), io::ErrorKind::TimedOut) => format!(
                            " (ttlSecurity {hops}: answers arriving with a TTL below {} are \
                             dropped; is the peer further away, or not sending with TTL 255?)",
                            gtsm_min_ttl(hops)
                        ),
                        _ => String::new(),
                    };
                    n.last_error = Some(format!(
                        "connect to {}:{} failed: {e}{gtsm}",
                        n.config.address, n.config.port
                    ));
                }
                n.touch();
                self.after_conn_gone(id);
            }
        }
    }
}

// ===== helpers =====

/// GTSM on an accepted connection (RFC 5082 §3): its SYN must have
/// arrived with at least the peer's lowest TTL (the listener may let in
/// less, for other peers); from then on the kernel drops anything with
/// less, and our packets leave with 255. Fails closed: a SYN whose TTL is
/// unknown is refused.
fn gtsm_accepted(stream: &Stream, hops: u8) -> Result<(), String> {
    let min = gtsm_min_ttl(hops);
    match stream.syn_ttl() {
        Ok(Some(ttl)) if ttl >= min => {}
        Ok(Some(ttl)) => {
            return Err(format!(
                "its SYN arrived with TTL {ttl}, below {min} (ttlSecurity {hops}): the sender \
                 is more than {hops} hop(s) away, or does not send with TTL 255"
            ))
        }
        Ok(None) => {
            return Err(format!(
                "the TTL of its SYN is unknown (a SYN cookie, during a SYN flood?); \
                 ttlSecurity {hops} takes only what it can check"
            ))
        }
        Err(e) => return Err(format!("cannot read the TTL of its SYN: {e}")),
    }
    stream
        .set_gtsm(min)
        .map_err(|e| format!("cannot set GTSM on the connection: {e}"))
}

/// An IPv4 peer seen on a dual-stack socket arrives as v4-mapped.
fn canonical(ip: std::net::IpAddr) -> std::net::IpAddr {
    match ip {
        std::net::IpAddr::V6(v6) => v6.to_ipv4_mapped().map(std::net::IpAddr::V4).unwrap_or(ip),
        v4 => v4,
    }
}

/// The pause before connecting again after `attempts` connections since
/// the last Established: 250 ms, doubling, up to the ConnectRetry time
/// (`connect_retry` seconds). Peers that start together (a DaemonSet
/// rollout, a lab) find each other's listener closed on the first try;
/// the full ConnectRetry time there made a mesh of ten take seconds.
/// Callers take off up to a quarter as jitter.
pub(crate) fn retry_delay(attempts: u32, connect_retry: u16) -> Duration {
    let cap = Duration::from_secs(u64::from(connect_retry.max(1)));
    Duration::from_millis(250u64 << attempts.min(16)).min(cap)
}

#[cfg(test)]
mod retry_tests {
    use super::*;

    #[test]
    fn retries_start_fast_and_grow_to_connect_retry() {
        let ms = |a| retry_delay(a, 5).as_millis();
        assert_eq!(
            [ms(0), ms(1), ms(2), ms(3), ms(4), ms(5)],
            [250, 500, 1000, 2000, 4000, 5000]
        );
        assert_eq!(ms(100), 5000);
        assert_eq!(retry_delay(0, 0).as_millis(), 250);
        assert_eq!(retry_delay(9, 120).as_secs(), 120);
    }
}
