//! `RrConfig` (the user's file) to `SpeakerConfig` (what the BGP speaker
//! runs with). It lives here, not in `tortie-config`, because the speaker
//! depends on `tortie-config` and not the other way round.

use bgp_speaker::config::{DynamicPeerConfig, GracefulRestartConfig, MaxPrefix, PeerConfig};
use bgp_speaker::{Afi, SpeakerConfig};
use tortie_config::{Family, MaxPrefixAction, RrConfig};

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
        peers: rr
            .peers
            .iter()
            .map(|p| PeerConfig {
                address: p.address,
                asn: p.as_number,
                rr_client: p.client,
                password: p.password.clone(),
                hold_time: p.hold_time,
                connect_retry: p.connect_retry,
                passive: p.passive,
                port: p.port,
                local_address: p.local_address,
                next_hop_self: p.next_hop_self,
                max_prefix: p.max_prefix.map(max_prefix),
                // A reflector passes everything on unfiltered.
                keep_next_hop: false,
                export_local_only: false,
                export_aggregates_only: false,
                import_within: None,
            })
            .collect(),
        dynamic_peers: rr
            .dynamic_peers
            .iter()
            .map(|d| DynamicPeerConfig {
                prefix: d.prefix,
                asn: d.as_number,
                rr_client: d.client,
                password: d.password.clone(),
                hold_time: d.hold_time,
                next_hop_self: d.next_hop_self,
                max_prefix: d.max_prefix.map(max_prefix),
                max_peers: d.max_peers.unwrap_or(bgp_speaker::DEFAULT_MAX_PEERS),
            })
            .collect(),
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

fn max_prefix(m: tortie_config::MaxPrefix) -> MaxPrefix {
    MaxPrefix {
        limit: m.limit,
        teardown: m.action == MaxPrefixAction::Teardown,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
    fn full_file_converts_field_by_field() {
        let rr = RrConfig::from_yaml(
            "\
routerId: 172.30.0.1
asNumber: 64512
clusterId: 10.0.0.9
listen: \"127.0.0.1:1179\"
families: [ipv6]
gracefulRestart: {enabled: true, restartTime: 30, staleRoutesTime: 100}
peers:
  - address: 172.30.0.2
    asNumber: 64512
    client: false
    password: s3cret
    holdTime: 0
    connectRetry: 9
    passive: true
    port: 1790
    localAddress: 172.30.0.1
    nextHopSelf: true
    maxPrefix: {limit: 10, action: warn}
dynamicPeers:
  - prefix: 172.31.0.0/16
    asNumber: 64512
    holdTime: 30
    maxPrefix: {limit: 50}
    maxPeers: 300
",
        )
        .unwrap();
        let got = to_speaker_config(&rr, true);
        let want = SpeakerConfig {
            router_id: "172.30.0.1".parse().unwrap(),
            asn: 64512,
            cluster_id: Some("10.0.0.9".parse().unwrap()),
            listen: Some("127.0.0.1:1179".parse().unwrap()),
            peers: vec![PeerConfig {
                address: "172.30.0.2".parse().unwrap(),
                asn: 64512,
                rr_client: false,
                password: Some("s3cret".into()),
                hold_time: 0,
                connect_retry: 9,
                passive: true,
                port: 1790,
                local_address: Some("172.30.0.1".parse().unwrap()),
                next_hop_self: true,
                max_prefix: Some(MaxPrefix {
                    limit: 10,
                    teardown: false,
                }),
                keep_next_hop: false,
                export_local_only: false,
                export_aggregates_only: false,
                import_within: None,
            }],
            dynamic_peers: vec![DynamicPeerConfig {
                prefix: "172.31.0.0/16".parse().unwrap(),
                asn: 64512,
                rr_client: true,
                password: None,
                hold_time: 30,
                next_hop_self: false,
                max_prefix: Some(MaxPrefix {
                    limit: 50,
                    teardown: true,
                }),
                max_peers: 300,
            }],
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
        assert_eq!(c::DEFAULT_HOLD_TIME, s::DEFAULT_HOLD_TIME);
        assert_eq!(c::DEFAULT_CONNECT_RETRY, s::DEFAULT_CONNECT_RETRY);
        assert_eq!(c::DEFAULT_RESTART_TIME, s::DEFAULT_RESTART_TIME);
        let gr = GracefulRestartConfig::default();
        assert_eq!(c::DEFAULT_STALE_ROUTES_TIME, gr.stale_routes_time);
        assert!(gr.enabled);
    }
}
