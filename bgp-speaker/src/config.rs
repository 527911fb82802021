//! The speaker's own configuration: what a caller (tortie-rr, tortie-node)
//! builds from its user-facing file or resources. Validation of user input
//! happens there (tortie-config); [`SpeakerConfig::check`] guards the
//! invariants the speaker relies on.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use serde::{Deserialize, Serialize};

use crate::route::Afi;

pub use tortie_config::bfd::BfdConfig;
pub use tortie_config::peer::{
    gtsm_min_ttl, DynamicPeerConfig, MaxPrefix, PeerConfig, DEFAULT_CONNECT_RETRY,
    DEFAULT_HOLD_TIME, DEFAULT_MAX_PEERS, GTSM_TTL,
};

/// Default graceful restart time advertised (RFC 4724 §3).
pub const DEFAULT_RESTART_TIME: u16 = 120;

/// Everything the speaker runs with. Changing it at run time goes through
/// `SpeakerHandle::reconfigure`, which touches only the peers that changed.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SpeakerConfig {
    pub router_id: Ipv4Addr,
    pub asn: u32,
    /// Route reflection (RFC 4456): the cluster id used when reflecting.
    /// `None`: this speaker does not reflect (peers marked `rr_client` are
    /// then treated as plain iBGP peers).
    pub cluster_id: Option<Ipv4Addr>,
    /// Where to accept sessions. `None`: active sessions only.
    pub listen: Option<SocketAddr>,
    pub peers: Vec<PeerConfig>,
    pub dynamic_peers: Vec<DynamicPeerConfig>,
    pub graceful_restart: GracefulRestartConfig,
    /// Families offered to every peer.
    pub families: Vec<Afi>,
}

/// Graceful restart (RFC 4724, RFC 8538).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct GracefulRestartConfig {
    pub enabled: bool,
    /// Advertised restart time (seconds, at most 4095).
    pub restart_time: u16,
    /// How long we keep a restarting peer's stale routes after the session
    /// comes back, waiting for its End-of-RIB.
    pub stale_routes_time: u16,
    /// Set the R bit in our OPEN: we have just restarted. The caller knows
    /// (e.g. tortie-rr sets it when it finds its own state file).
    pub restarting: bool,
    /// After a restart, also wait for the End-of-RIB of these peers (for
    /// example the dynamic peers that were up before the restart) before
    /// sending our routes. Configured peers are always waited for.
    #[serde(default)]
    pub wait_for: Vec<IpAddr>,
    /// After a restart, how long at most to wait for those End-of-RIBs
    /// before sending our routes anyway (RFC 4724 §4.1's
    /// Selection_Deferral_Timer). `None`: [`default_deferral_time`] of the
    /// restart time. Keep it below the peers' restart and stale-path
    /// times, so that they get our routes before they would drop the stale
    /// ones.
    #[serde(default)]
    pub deferral_time: Option<u16>,
}

/// The selection deferral time when none is set: half the restart time,
/// at most 60 s (at least 1 s): our peers keep our routes for the restart
/// time, so they get our table well before they would drop it.
pub fn default_deferral_time(restart_time: u16) -> u16 {
    (restart_time / 2).clamp(1, 60)
}

// ===== impl GracefulRestartConfig =====

impl Default for GracefulRestartConfig {
    fn default() -> Self {
        GracefulRestartConfig {
            enabled: true,
            restart_time: DEFAULT_RESTART_TIME,
            stale_routes_time: 360,
            restarting: false,
            wait_for: Vec::new(),
            deferral_time: None,
        }
    }
}

// ===== impl SpeakerConfig =====

impl SpeakerConfig {
    /// A speaker with no peers, both families, graceful restart on.
    pub fn new(router_id: Ipv4Addr, asn: u32) -> SpeakerConfig {
        SpeakerConfig {
            router_id,
            asn,
            cluster_id: None,
            listen: None,
            peers: Vec::new(),
            dynamic_peers: Vec::new(),
            graceful_restart: GracefulRestartConfig::default(),
            families: vec![Afi::Ipv4, Afi::Ipv6],
        }
    }

    /// Checks the invariants the speaker relies on; the message names the
    /// field and value.
    pub fn check(&self) -> Result<(), String> {
        if self.asn == 0 {
            return Err("asn: 0 is reserved (RFC 7607)".into());
        }
        if self.router_id.is_unspecified() {
            return Err("router_id: 0.0.0.0 is not a valid BGP identifier".into());
        }
        if self.graceful_restart.restart_time > 4095 {
            return Err(format!(
                "graceful_restart.restart_time: {} is above the 4095 s the capability can carry",
                self.graceful_restart.restart_time
            ));
        }
        let mut seen = std::collections::HashSet::new();
        for p in &self.peers {
            if !seen.insert(p.address) {
                return Err(format!("peers: address {} is listed twice", p.address));
            }
            if p.hold_time == 1 || p.hold_time == 2 {
                return Err(format!(
                    "peers[{}].hold_time: {} is not allowed (0 or at least 3, RFC 4271 §4.2)",
                    p.address, p.hold_time
                ));
            }
            if p.asn == 0 {
                return Err(format!("peers[{}].asn: 0 is reserved", p.address));
            }
            if p.ttl_security == Some(0) {
                return Err(format!(
                    "peers[{}].ttl_security: 0 hops; GTSM takes 1..=255 (None: off)",
                    p.address
                ));
            }
        }
        for d in &self.dynamic_peers {
            if d.hold_time == 1 || d.hold_time == 2 {
                return Err(format!(
                    "dynamic_peers[{}].hold_time: {} is not allowed (0 or at least 3)",
                    d.prefix, d.hold_time
                ));
            }
            if d.ttl_security == Some(0) {
                return Err(format!(
                    "dynamic_peers[{}].ttl_security: 0 hops; GTSM takes 1..=255 (None: off)",
                    d.prefix
                ));
            }
        }
        Ok(())
    }

    /// What the listener needs for GTSM (RFC 5082): `None` when no peer
    /// uses it; otherwise the lowest TTL any peer may connect with, which
    /// is 0 when some peer (or dynamic prefix) does not use GTSM. The
    /// kernel drops SYNs below it; each accepted connection is then held
    /// to its own peer's minimum.
    pub fn listener_min_ttl(&self) -> Option<u8> {
        let mins = self
            .peers
            .iter()
            .map(PeerConfig::min_ttl)
            .chain(self.dynamic_peers.iter().map(DynamicPeerConfig::min_ttl));
        let mut any = false;
        let mut lowest = u8::MAX;
        for m in mins {
            any |= m.is_some();
            lowest = lowest.min(m.unwrap_or(0));
        }
        any.then_some(lowest)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_listener_lets_in_what_the_most_lenient_peer_needs() {
        let mut c = SpeakerConfig::new(Ipv4Addr::new(10, 0, 0, 1), 64512);
        assert_eq!(c.listener_min_ttl(), None, "no peer");
        c.peers
            .push(PeerConfig::new("10.0.0.2".parse().unwrap(), 65001));
        assert_eq!(c.listener_min_ttl(), None, "no peer with GTSM");
        c.peers[0].ttl_security = Some(1);
        assert_eq!(c.listener_min_ttl(), Some(255));
        c.dynamic_peers.push(DynamicPeerConfig {
            ttl_security: Some(3),
            ..DynamicPeerConfig::new("10.1.0.0/16".parse().unwrap(), 64512)
        });
        assert_eq!(c.listener_min_ttl(), Some(253));
        c.peers
            .push(PeerConfig::new("10.0.0.3".parse().unwrap(), 65001));
        assert_eq!(c.listener_min_ttl(), Some(0), "a peer without GTSM");
        c.peers[0].ttl_security = Some(0);
        assert!(c
            .check()
            .unwrap_err()
            .contains("peers[10.0.0.2].ttl_security: 0 hops"));
    }
}
