//! Table-driven tests of the RR file: each bad input and its exact error,
//! and a full file with the expected typed result.

use super::*;

/// A valid file; the bad cases below append to or edit it.
const BASE: &str = "\
routerId: 172.30.0.1
asNumber: 64512
peers:
  - address: 172.30.0.2
    asNumber: 64512
";

fn err(text: &str) -> String {
    match RrConfig::from_yaml(text) {
        Ok(cfg) => panic!("accepted {text:?}: {cfg:?}"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn minimal_file_gets_the_defaults() {
    let cfg = RrConfig::from_yaml(BASE).unwrap();
    assert_eq!(cfg.cluster_id, cfg.router_id);
    assert_eq!(cfg.listen, "0.0.0.0:179".parse().unwrap());
    assert_eq!(cfg.admin, "127.0.0.1:9180".parse().unwrap());
    assert_eq!(cfg.families, vec![Family::Ipv4, Family::Ipv6]);
    assert_eq!(cfg.graceful_restart, GracefulRestart::default());
    let p = &cfg.peers[0];
    assert!(p.rr_client, "iBGP peers default to RR client");
    assert_eq!((p.hold_time, p.connect_retry, p.port), (90, 5, 179));
    assert!(!p.passive && !p.next_hop_self);
    assert_eq!(
        (p.password.as_deref(), p.local_address, p.max_prefix),
        (None, None, None)
    );
    assert_eq!(p.ttl_security, None, "GTSM is off unless asked for");
}

#[test]
fn full_file_parses_to_the_expected_config() {
    let text = "\
routerId: 172.30.0.1
asNumber: 64512
clusterId: 10.0.0.9
listen: \"[::]:1179\"
admin: \"127.0.0.1:9999\"
families: [ipv4]
gracefulRestart:
  enabled: false
  restartTime: 60
  staleRoutesTime: 200
peers:
  - address: 172.30.0.2
    asNumber: 64512
    client: false
    password: \"s3cret\"
    holdTime: 0
    connectRetry: 30
    passive: true
    port: 1790
    localAddress: 172.30.0.1
    nextHopSelf: true
    maxPrefix: {limit: 1000, action: warn}
    ttlSecurity: 1
  - address: fd00::5
    asNumber: 65001
dynamicPeers:
  - prefix: 172.31.0.0/16
    asNumber: 64512
    holdTime: 30
    maxPrefix: {limit: 50}
    maxPeers: 200
    ttlSecurity: 2
  - prefix: 10.9.0.0/24
    asNumber: 65002
    client: false
    password: k
    nextHopSelf: true
";
    let want = RrConfig {
        router_id: "172.30.0.1".parse().unwrap(),
        as_number: 64512,
        cluster_id: "10.0.0.9".parse().unwrap(),
        listen: "[::]:1179".parse().unwrap(),
        admin: "127.0.0.1:9999".parse().unwrap(),
        peers: vec![
            PeerConfig {
                address: "172.30.0.2".parse().unwrap(),
                asn: 64512,
                rr_client: false,
                password: Some("s3cret".into()),
                hold_time: 0,
                connect_retry: 30,
                passive: true,
                port: 1790,
                local_address: Some("172.30.0.1".parse().unwrap()),
                next_hop_self: true,
                max_prefix: Some(MaxPrefix {
                    limit: 1000,
                    teardown: false,
                }),
                bfd: None,
                keep_next_hop: false,
                export_local_only: false,
                export_aggregates: false,
                import_within: None,
                ttl_security: Some(1),
                ..PeerConfig::new("172.30.0.2".parse().unwrap(), 0)
            },
            PeerConfig::new("fd00::5".parse().unwrap(), 65001),
        ],
        dynamic_peers: vec![
            DynamicPeerConfig {
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
                max_peers: 200,
                ttl_security: Some(2),
                ..DynamicPeerConfig::new("172.31.0.0/16".parse().unwrap(), 64512)
            },
            DynamicPeerConfig {
                prefix: "10.9.0.0/24".parse().unwrap(),
                asn: 65002,
                rr_client: false,
                password: Some("k".into()),
                hold_time: 90,
                next_hop_self: true,
                max_prefix: None,
                max_peers: DEFAULT_MAX_PEERS,
                ttl_security: None,
                ..DynamicPeerConfig::new("10.9.0.0/24".parse().unwrap(), 65002)
            },
        ],
        graceful_restart: GracefulRestart {
            enabled: false,
            restart_time: 60,
            stale_routes_time: 200,
        },
        families: vec![Family::Ipv4],
        datastore_clients: None,
    };
    assert_eq!(RrConfig::from_yaml(text).unwrap(), want);
}

#[test]
fn clients_from_the_datastore() {
    let text = format!(
        "{BASE}datastoreClients:\n  datastore: file:/var/lib/tortie\n  nodeSelector: rack == 'a'\n"
    );
    let rr = RrConfig::from_yaml(&text).unwrap();
    let d = rr.datastore_clients.unwrap();
    assert_eq!(d.datastore, "file:/var/lib/tortie");
    assert_eq!(d.etcd_prefix, "/tortie/v1");
    assert_eq!(d.node_selector, "rack == 'a'");
    assert!(!d.passive);
    let text = format!("{BASE}datastoreClients:\n  datastore: kubernetes\n  passive: true\n");
    assert!(
        RrConfig::from_yaml(&text)
            .unwrap()
            .datastore_clients
            .unwrap()
            .passive
    );
    let bad = format!("{BASE}datastoreClients:\n  datastore: kubernetes\n  passive: yes\n");
    let e = RrConfig::from_yaml(&bad).unwrap_err().to_string();
    assert!(e.contains("datastoreClients.passive"), "{e}");
    let bad = format!("{BASE}datastoreClients:\n  datastore: sql:x\n");
    let e = RrConfig::from_yaml(&bad).unwrap_err().to_string();
    assert!(
        e.contains("datastoreClients.datastore: sql:x: file:DIR"),
        "{e}"
    );
    let bad =
        format!("{BASE}datastoreClients:\n  datastore: file:/x\n  nodeSelector: rack = 'a'\n");
    let e = RrConfig::from_yaml(&bad).unwrap_err().to_string();
    assert!(e.contains("datastoreClients.nodeSelector"), "{e}");
}

#[test]
fn static_peer_inside_a_dynamic_prefix_is_allowed() {
    let text = format!("{BASE}dynamicPeers:\n  - prefix: 172.30.0.0/24\n    asNumber: 64512\n");
    let cfg = RrConfig::from_yaml(&text).unwrap();
    assert!(cfg.dynamic_peers[0].prefix.contains(&cfg.peers[0].address));
}

#[test]
fn bad_inputs_name_field_value_and_what_is_allowed() {
    let peer = |extra: &str| format!("{BASE}    {extra}\n");
    let top = |extra: &str| format!("{BASE}{extra}\n");
    let with_ids = |line: &str| BASE.replacen("routerId: 172.30.0.1", line, 1);
    let with_as =
        |line: &str| BASE.replacen("asNumber: 64512\npeers", &format!("{line}\npeers"), 1);
    let second_peer = |body: &str| format!("{BASE}  - {body}\n");
    let dynamic = |body: &str| format!("{BASE}dynamicPeers:\n  - {body}\n");
    let long = "x".repeat(81);
    let cases: Vec<(String, String)> = vec![
        // Shape: unknown, missing, wrongly typed fields, with full paths.
        (
            second_peer("address: 172.30.0.3\n    asNumber: 64512\n    holdtime: 3"),
            "peers[1].holdtime: unknown field `holdtime`, expected one of `address`, `asNumber`, \
             `client`, `password`, `holdTime`, `connectRetry`, `passive`, `port`, `localAddress`, \
             `nextHopSelf`, `maxPrefix`, `ttlSecurity`, `bfd`, `filters`"
                .into(),
        ),
        (
            top("routerID: 1.2.3.4"),
            "routerID: unknown field `routerID`, expected one of `routerId`, `asNumber`, \
             `clusterId`, `listen`, `admin`, `peers`, `dynamicPeers`, `gracefulRestart`, `families`, `datastoreClients`, `filters`"
                .into(),
        ),
        (
            top("gracefulRestart:\n  enable: true"),
            "gracefulRestart.enable: unknown field `enable`, expected one of `enabled`, \
             `restartTime`, `staleRoutesTime`"
                .into(),
        ),
        (
            peer("maxPrefix: {limit: 5, action: drop}"),
            "peers[0].maxPrefix.action: unknown variant `drop`, expected `warn` or `teardown`".into(),
        ),
        (
            second_peer("asNumber: 64512"),
            "peers[1]: missing field `address`".into(),
        ),
        ("asNumber: 64512\n".into(), "(top level): missing field `routerId`".into()),
        (
            peer("holdTime: 1.5"),
            "peers[0].holdTime: invalid type: floating point `1.5`, expected i64".into(),
        ),
        (
            peer("passive: 1"),
            "peers[0].passive: invalid type: integer `1`, expected a boolean".into(),
        ),
        (
            top("families: [ipv4, ipx]"),
            "families[1]: unknown variant `ipx`, expected `ipv4` or `ipv6`".into(),
        ),
        // Identifiers and AS numbers.
        (
            with_ids("routerId: 0.0.0.0"),
            "routerId: 0.0.0.0: not a valid BGP identifier; use a non-zero IPv4 address, usually \
             the host's own"
                .into(),
        ),
        (
            with_ids("routerId: 172.30.0.300"),
            "routerId: 172.30.0.300: not an IPv4 address; write a dotted quad such as 172.30.0.1".into(),
        ),
        (
            with_ids("routerId: fd00::1"),
            "routerId: fd00::1: not an IPv4 address; write a dotted quad such as 172.30.0.1".into(),
        ),
        (
            top("clusterId: 0.0.0.0"),
            "clusterId: 0.0.0.0: not a valid BGP identifier; use a non-zero IPv4 address, usually \
             the host's own"
                .into(),
        ),
        (
            with_as("asNumber: 0"),
            "asNumber: 0: reserved (RFC 7607); use 1..=4294967295 except 23456".into(),
        ),
        (
            with_as("asNumber: 23456"),
            "asNumber: 23456: AS_TRANS is reserved (RFC 6793); use 1..=4294967295 except 23456".into(),
        ),
        (
            with_as("asNumber: 4294967296"),
            "asNumber: 4294967296: out of range; use 1..=4294967295 except 23456".into(),
        ),
        (
            second_peer("address: 172.30.0.3\n    asNumber: -1"),
            "peers[1].asNumber: -1: out of range; use 1..=4294967295 except 23456".into(),
        ),
        // Sockets.
        (
            top("listen: 0.0.0.0"),
            "listen: 0.0.0.0: not a socket address; write address:port such as 0.0.0.0:179 or [::]:179"
                .into(),
        ),
        (
            top("admin: \"127.0.0.1:0\""),
            "admin: 127.0.0.1:0: port 0 is not allowed; use 1..=65535".into(),
        ),
        (
            top("listen: \"0.0.0.0:9180\""),
            "admin: 127.0.0.1:9180: overlaps listen 0.0.0.0:9180; give the admin server another port"
                .into(),
        ),
        // Peers.
        (
            second_peer("address: 172.30.0.2\n    asNumber: 64512"),
            "peers[1].address: 172.30.0.2: already used by peers[0]; list each peer once".into(),
        ),
        (
            second_peer("address: 172.30.0.256\n    asNumber: 64512"),
            "peers[1].address: 172.30.0.256: not an IP address; write e.g. 172.30.0.2 or fd00::2".into(),
        ),
        (
            second_peer("address: 224.0.0.5\n    asNumber: 64512"),
            "peers[1].address: 224.0.0.5: not a unicast address; use the peer's own address".into(),
        ),
        (
            peer("holdTime: 2"),
            "peers[0].holdTime: 2: not allowed; use 0 (no keepalives) or 3..=65535 seconds (RFC 4271 §4.2)"
                .into(),
        ),
        (
            peer("holdTime: 65536"),
            "peers[0].holdTime: 65536: out of range; use 0 (no keepalives) or 3..=65535 seconds \
             (RFC 4271 §4.2)"
                .into(),
        ),
        (
            peer("connectRetry: 0"),
            "peers[0].connectRetry: 0: out of range; use 1..=65535 seconds".into(),
        ),
        (peer("port: 70000"), "peers[0].port: 70000: out of range; use 1..=65535".into()),
        (
            peer(&format!("password: {long}")),
            "peers[0].password: (81 bytes): too long; TCP MD5 keys are at most 80 bytes".into(),
        ),
        (
            peer("password: \"\""),
            "peers[0].password: \"\": empty; remove the field for no TCP MD5 signature".into(),
        ),
        (
            second_peer("address: 10.1.1.1\n    asNumber: 65001\n    client: true"),
            "peers[1].client: true: only iBGP peers can be route reflector clients; this peer is \
             eBGP (asNumber 65001, ours 64512): remove client or set it to false"
                .into(),
        ),
        (
            peer("localAddress: fd00::1"),
            "peers[0].localAddress: fd00::1: must be the same address family as address 172.30.0.2"
                .into(),
        ),
        (
            peer("ttlSecurity: 0"),
            "peers[0].ttlSecurity: 0: out of range; use 1..=255 hops (1: directly connected), or \
             remove the field to turn GTSM off"
                .into(),
        ),
        (
            peer("ttlSecurity: 256"),
            "peers[0].ttlSecurity: 256: out of range; use 1..=255 hops (1: directly connected), or \
             remove the field to turn GTSM off"
                .into(),
        ),
        (
            peer("maxPrefix: {limit: 0}"),
            "peers[0].maxPrefix.limit: 0: out of range; use at least 1 (remove maxPrefix for no limit)"
                .into(),
        ),
        // Dynamic peers.
        (
            dynamic("prefix: 172.31.0.5/16\n    asNumber: 64512"),
            "dynamicPeers[0].prefix: 172.31.0.5/16: has host bits set; write the network address \
             172.31.0.0/16"
                .into(),
        ),
        (
            dynamic("prefix: 172.31.0.0\n    asNumber: 64512"),
            "dynamicPeers[0].prefix: 172.31.0.0: not a prefix; write address/length such as 172.31.0.0/16"
                .into(),
        ),
        (
            dynamic("prefix: 172.31.0.0/16\n    asNumber: 64512\n  - prefix: 172.31.4.0/24\n    asNumber: 64512"),
            "dynamicPeers[1].prefix: 172.31.4.0/24: overlaps dynamicPeers[0].prefix 172.31.0.0/16; \
             dynamic prefixes must not overlap"
                .into(),
        ),
        (
            dynamic("prefix: 10.0.0.0/8\n    asNumber: 65009\n    client: true"),
            "dynamicPeers[0].client: true: only iBGP peers can be route reflector clients; this peer \
             is eBGP (asNumber 65009, ours 64512): remove client or set it to false"
                .into(),
        ),
        (
            dynamic("prefix: 10.0.0.0/8\n    asNumber: 64512\n    holdTime: 1"),
            "dynamicPeers[0].holdTime: 1: not allowed; use 0 (no keepalives) or 3..=65535 seconds \
             (RFC 4271 §4.2)"
                .into(),
        ),
        (
            dynamic("prefix: 10.0.0.0/8\n    asNumber: 64512\n    maxPeers: 0"),
            "dynamicPeers[0].maxPeers: 0: out of range; use 1..=4294967295 peers".into(),
        ),
        (
            dynamic("prefix: 10.0.0.0/8\n    asNumber: 64512\n    ttlSecurity: -1"),
            "dynamicPeers[0].ttlSecurity: -1: out of range; use 1..=255 hops (1: directly \
             connected), or remove the field to turn GTSM off"
                .into(),
        ),
        // Graceful restart and families.
        (
            top("gracefulRestart:\n  restartTime: 4096"),
            "gracefulRestart.restartTime: 4096: out of range; use 1..=4095 seconds (the capability \
             carries 12 bits)"
                .into(),
        ),
        (
            top("gracefulRestart:\n  staleRoutesTime: 0"),
            "gracefulRestart.staleRoutesTime: 0: out of range; use 1..=65535 seconds".into(),
        ),
        (top("families: []"), "families: []: list at least one of ipv4, ipv6".into()),
        (
            top("families: [ipv6, ipv6]"),
            "families[1]: ipv6: listed twice; list each family once".into(),
        ),
    ];
    let mut failures = Vec::new();
    for (text, want) in &cases {
        let got = err(text);
        if &got != want {
            failures.push(format!("input:\n{text}\n  want: {want}\n  got:  {got}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

#[test]
fn errors_expose_the_field_path() {
    let e = RrConfig::from_yaml(&format!("{BASE}    holdTime: 2\n")).unwrap_err();
    assert_eq!(e.field(), Some("peers[0].holdTime"));
    assert_eq!(e.line(), Some(6));
    assert_eq!(
        e.in_file(Path::new("rr.yaml")),
        "rr.yaml:6: peers[0].holdTime: 2: not allowed; use 0 (no keepalives) or 3..=65535 seconds \
         (RFC 4271 §4.2)"
    );
    // Unknown fields and list items are located too; a default value that
    // is not in the file has no line.
    let e = RrConfig::from_yaml(&format!(
        "{BASE}  - address: 10.0.0.9\n    asNumber: 64512\n    holdtime: 3\n"
    ))
    .unwrap_err();
    assert_eq!((e.field(), e.line()), (Some("peers[1].holdtime"), Some(8)));
    let e = RrConfig::from_yaml(&format!(
        "{BASE}  - address: 172.30.0.2\n    asNumber: 64512\n"
    ))
    .unwrap_err();
    assert_eq!((e.field(), e.line()), (Some("peers[1].address"), Some(6)));
    let e = RrConfig::from_yaml(&format!("{BASE}listen: \"0.0.0.0:9180\"\n")).unwrap_err();
    assert_eq!((e.field(), e.line()), (Some("admin"), None));
    assert_eq!(e.in_file(Path::new("rr.yaml")), format!("rr.yaml: {e}"));
}

#[test]
fn load_names_the_missing_file() {
    let e = RrConfig::load(Path::new("/nonexistent/tortie/rr.yaml")).unwrap_err();
    assert!(
        e.to_string()
            .starts_with("cannot read /nonexistent/tortie/rr.yaml: "),
        "{e}"
    );
}
