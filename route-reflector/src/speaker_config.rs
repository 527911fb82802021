//! `RrConfig` (the user's file) to `SpeakerConfig` (what the BGP speaker
//! runs with). The peers are already the speaker's (`tortie_config::peer`);
//! what is added here is the reflector's role (a cluster id, always) and
//! the restart state.

use bgp_speaker::config::GracefulRestartConfig;
use bgp_speaker::{Afi, SpeakerConfig};
use tortie_config::{Family, RrConfig};

/// Builds the speaker's configuration. A route reflector always reflects,
/// so `cluster_id` is always set. `restarting` sets the graceful restart R
/// bit (we found our own fresh state marker at start); it must stay the same
/// for the life of the process so that a reload does not look like a change
/// of every peer.
pub fn to_speaker_config(rr: &RrConfig, restarting: bool) -> SpeakerConfig {
    SpeakerConfig {
        router_id: rr.router_id,
        asn: rr.as_number,
        cluster_id: Some(rr.cluster_id),
        listen: Some(rr.listen),
        peers: rr.peers.clone(),
        dynamic_peers: rr.dynamic_peers.clone(),
        graceful_restart: GracefulRestartConfig {
            enabled: rr.graceful_restart.enabled,
            restart_time: rr.graceful_restart.restart_time,
            stale_routes_time: rr.graceful_restart.stale_routes_time,
            restarting: restarting && rr.graceful_restart.enabled,
            // Filled in by the caller from the restart marker.
            wait_for: Vec::new(),
            deferral_time: None,
        },
        families: rr
            .families
            .iter()
            .map(|f| match f {
                Family::Ipv4 => Afi::Ipv4,
                Family::Ipv6 => Afi::Ipv6,
            })
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bgp_speaker::config::PeerConfig;

    #[test]
    fn file_defaults_match_the_speaker_defaults() {
        let rr = RrConfig::from_yaml(
            "routerId: 172.30.0.1\nasNumber: 64512\npeers:\n  - address: 172.30.0.2\n    asNumber: 64512\n",
        )
        .unwrap();
        let got = to_speaker_config(&rr, false);
        let mut want = SpeakerConfig::new("172.30.0.1".parse().unwrap(), 64512);
        want.cluster_id = Some("172.30.0.1".parse().unwrap());
        want.listen = Some("0.0.0.0:179".parse().unwrap());
        let mut peer = PeerConfig::new("172.30.0.2".parse().unwrap(), 64512);
        peer.rr_client = true;
        want.peers.push(peer);
        assert_eq!(got, want);
        assert_eq!(got.check(), Ok(()));
    }

    #[test]
    fn the_file_becomes_the_speakers_configuration() {
        let rr = RrConfig::from_yaml(
            "\
routerId: 172.30.0.1
asNumber: 64512
clusterId: 10.0.0.9
listen: \"127.0.0.1:1179\"
families: [ipv6]
gracefulRestart: {enabled: true, restartTime: 30, staleRoutesTime: 100}
peers:
  - {address: 172.30.0.2, asNumber: 64512, holdTime: 0, maxPrefix: {limit: 10, action: warn}}
dynamicPeers:
  - {prefix: 172.31.0.0/16, asNumber: 64512, maxPeers: 300}
",
        )
        .unwrap();
        let got = to_speaker_config(&rr, true);
        let want = SpeakerConfig {
            router_id: "172.30.0.1".parse().unwrap(),
            asn: 64512,
            cluster_id: Some("10.0.0.9".parse().unwrap()),
            listen: Some("127.0.0.1:1179".parse().unwrap()),
            // The file's peers are the speaker's (tortie-config's tests
            // check them field by field).
            peers: rr.peers.clone(),
            dynamic_peers: rr.dynamic_peers.clone(),
            graceful_restart: GracefulRestartConfig {
                enabled: true,
                restart_time: 30,
                stale_routes_time: 100,
                restarting: true,
                wait_for: Vec::new(),
                deferral_time: None,
            },
            families: vec![Afi::Ipv6],
        };
        assert_eq!(got, want);
        assert_eq!(got.peers[0].hold_time, 0);
        assert_eq!(got.dynamic_peers[0].max_peers, 300);
        assert_eq!(got.check(), Ok(()));
    }

    #[test]
    fn restarting_needs_graceful_restart_enabled() {
        let rr = RrConfig::from_yaml(
            "routerId: 1.1.1.1\nasNumber: 65000\ngracefulRestart: {enabled: false}\n",
        )
        .unwrap();
        assert!(!to_speaker_config(&rr, true).graceful_restart.restarting);
    }

    #[test]
    fn default_constants_agree() {
        use bgp_speaker::config as s;
        use tortie_config::rr as c;
        assert_eq!(c::DEFAULT_RESTART_TIME, s::DEFAULT_RESTART_TIME);
        let gr = GracefulRestartConfig::default();
        assert_eq!(c::DEFAULT_STALE_ROUTES_TIME, gr.stale_routes_time);
        assert!(gr.enabled);
    }
}
