//! Raw file to [`RrConfig`]: defaults and every check. Each error names
//! the field's full path, the value and what is allowed.

use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use ipnet::IpNet;

use super::raw::{
    MaxPrefixAction, RawDynamicPeer, RawGracefulRestart, RawMaxPrefix, RawPeer, RawRrConfig,
};
use super::*;

/// Turns the raw file into the validated configuration.
pub(super) fn validate(raw: RawRrConfig) -> Result<RrConfig, ConfigError> {
    let router_id = bgp_id("routerId", &raw.router_id)?;
    let as_number = asn("asNumber", raw.as_number)?;
    let cluster_id = match &raw.cluster_id {
        Some(text) => bgp_id("clusterId", text)?,
        None => router_id,
    };
    let listen = socket("listen", raw.listen.as_deref().unwrap_or(DEFAULT_LISTEN))?;
    let admin = socket("admin", raw.admin.as_deref().unwrap_or(DEFAULT_ADMIN))?;
    if admin.port() == listen.port()
        && (admin.ip() == listen.ip()
            || admin.ip().is_unspecified()
            || listen.ip().is_unspecified())
    {
        return Err(ConfigError::invalid(
            "admin",
            admin,
            format!("overlaps listen {listen}; give the admin server another port"),
        ));
    }
    let families = families(raw.families)?;
    let graceful_restart = graceful_restart(raw.graceful_restart)?;

    let filters = super::filters::filters(raw.filters)?;
    let mut peers = Vec::with_capacity(raw.peers.len());
    let mut seen: HashMap<IpAddr, usize> = HashMap::new();
    for (i, p) in raw.peers.into_iter().enumerate() {
        let peer = peer(&format!("peers[{i}]"), p, as_number, &filters)?;
        if let Some(first) = seen.insert(peer.address, i) {
            return Err(ConfigError::invalid(
                format!("peers[{i}].address"),
                peer.address,
                format!("already used by peers[{first}]; list each peer once"),
            ));
        }
        peers.push(peer);
    }

    let mut dynamic_peers: Vec<DynamicPeerConfig> = Vec::with_capacity(raw.dynamic_peers.len());
    for (i, d) in raw.dynamic_peers.into_iter().enumerate() {
        let dynamic = dynamic_peer(&format!("dynamicPeers[{i}]"), d, as_number, &filters)?;
        if let Some(j) = dynamic_peers
            .iter()
            .position(|o| o.prefix.contains(&dynamic.prefix) || dynamic.prefix.contains(&o.prefix))
        {
            return Err(ConfigError::invalid(
                format!("dynamicPeers[{i}].prefix"),
                dynamic.prefix,
                format!(
                    "overlaps dynamicPeers[{j}].prefix {}; dynamic prefixes must not overlap",
                    dynamic_peers[j].prefix
                ),
            ));
        }
        dynamic_peers.push(dynamic);
    }

    let datastore_clients = match raw.datastore_clients {
        None => None,
        Some(d) => {
            let prefix = d
                .etcd_prefix
                .unwrap_or_else(|| crate::node::DEFAULT_ETCD_PREFIX.to_string());
            crate::node::parse_datastore(&d.datastore, &prefix).map_err(|e| match e {
                ConfigError::Invalid { value, allowed, .. } => {
                    ConfigError::invalid("datastoreClients.datastore", value, allowed)
                }
                other => other,
            })?;
            let text = d.node_selector.unwrap_or_else(|| "all()".into());
            crate::resources::Selector::parse(&text).map_err(|e| {
                ConfigError::invalid(
                    "datastoreClients.nodeSelector",
                    format!("{text:?}"),
                    e.to_string(),
                )
            })?;
            Some(DatastoreClients {
                datastore: d.datastore,
                etcd_prefix: prefix,
                node_selector: text,
                passive: d.passive.unwrap_or(false),
            })
        }
    };

    Ok(RrConfig {
        router_id,
        as_number,
        cluster_id,
        listen,
        admin,
        peers,
        dynamic_peers,
        graceful_restart,
        families,
        datastore_clients,
    })
}

fn peer(
    path: &str,
    raw: RawPeer,
    our_as: u32,
    filters: &super::filters::Compiled,
) -> Result<PeerConfig, ConfigError> {
    let address = peer_address(&format!("{path}.address"), &raw.address)?;
    let (import_filter, export_filter) = super::filters::of_peer(path, &raw.filters, filters)?;
    let as_number = asn(&format!("{path}.asNumber"), raw.as_number)?;
    let client = client(path, raw.client, as_number, our_as)?;
    let local_address = match &raw.local_address {
        None => None,
        Some(text) => {
            let field = format!("{path}.localAddress");
            let local = peer_address(&field, text)?;
            if local.is_ipv4() != address.is_ipv4() {
                return Err(ConfigError::invalid(
                    field,
                    local,
                    format!("must be the same address family as address {address}"),
                ));
            }
            Some(local)
        }
    };
    Ok(PeerConfig {
        address,
        asn: as_number,
        rr_client: client,
        password: password(path, raw.password)?,
        hold_time: hold_time(path, raw.hold_time)?,
        connect_retry: ranged(
            &format!("{path}.connectRetry"),
            raw.connect_retry,
            DEFAULT_CONNECT_RETRY,
            1,
            "1..=65535 seconds",
        )?,
        passive: raw.passive.unwrap_or(false),
        port: ranged(
            &format!("{path}.port"),
            raw.port,
            DEFAULT_PORT,
            1,
            "1..=65535",
        )?,
        local_address,
        next_hop_self: raw.next_hop_self.unwrap_or(false),
        max_prefix: max_prefix(path, raw.max_prefix)?,
        bfd: crate::bfd::resolve(path, Default::default(), raw.bfd.as_ref())?,
        // A reflector passes everything on, unfiltered.
        keep_next_hop: false,
        export_local_only: false,
        export_aggregates: false,
        import_within: None,
        ttl_security: ttl_security(path, raw.ttl_security)?,
        import_filter,
        export_filter,
        ..PeerConfig::new(address, as_number)
    })
}

fn dynamic_peer(
    path: &str,
    raw: RawDynamicPeer,
    our_as: u32,
    filters: &super::filters::Compiled,
) -> Result<DynamicPeerConfig, ConfigError> {
    let field = format!("{path}.prefix");
    let prefix: IpNet = raw.prefix.trim().parse().map_err(|_| {
        ConfigError::invalid(
            &field,
            &raw.prefix,
            "not a prefix; write address/length such as 172.31.0.0/16",
        )
    })?;
    if prefix.trunc() != prefix {
        return Err(ConfigError::invalid(
            field,
            prefix,
            format!(
                "has host bits set; write the network address {}",
                prefix.trunc()
            ),
        ));
    }
    let as_number = asn(&format!("{path}.asNumber"), raw.as_number)?;
    let (import_filter, export_filter) = super::filters::of_peer(path, &raw.filters, filters)?;
    Ok(DynamicPeerConfig {
        prefix,
        asn: as_number,
        rr_client: client(path, raw.client, as_number, our_as)?,
        password: password(path, raw.password)?,
        hold_time: hold_time(path, raw.hold_time)?,
        next_hop_self: raw.next_hop_self.unwrap_or(false),
        max_prefix: max_prefix(path, raw.max_prefix)?,
        max_peers: match raw.max_peers {
            None => DEFAULT_MAX_PEERS,
            Some(n) => u32::try_from(n).ok().filter(|n| *n >= 1).ok_or_else(|| {
                ConfigError::invalid(
                    format!("{path}.maxPeers"),
                    n,
                    "out of range; use 1..=4294967295 peers",
                )
            })?,
        },
        ttl_security: ttl_security(path, raw.ttl_security)?,
        import_filter,
        export_filter,
    })
}

fn graceful_restart(raw: Option<RawGracefulRestart>) -> Result<GracefulRestart, ConfigError> {
    let Some(raw) = raw else {
        return Ok(GracefulRestart::default());
    };
    let restart_time = ranged(
        "gracefulRestart.restartTime",
        raw.restart_time,
        DEFAULT_RESTART_TIME,
        1,
        "1..=4095 seconds (the capability carries 12 bits)",
    )?;
    if restart_time > MAX_RESTART_TIME {
        return Err(ConfigError::invalid(
            "gracefulRestart.restartTime",
            restart_time,
            "out of range; use 1..=4095 seconds (the capability carries 12 bits)",
        ));
    }
    Ok(GracefulRestart {
        enabled: raw.enabled.unwrap_or(true),
        restart_time,
        stale_routes_time: ranged(
            "gracefulRestart.staleRoutesTime",
            raw.stale_routes_time,
            DEFAULT_STALE_ROUTES_TIME,
            1,
            "1..=65535 seconds",
        )?,
    })
}

fn families(raw: Option<Vec<Family>>) -> Result<Vec<Family>, ConfigError> {
    let Some(list) = raw else {
        return Ok(vec![Family::Ipv4, Family::Ipv6]);
    };
    if list.is_empty() {
        return Err(ConfigError::invalid(
            "families",
            "[]",
            "list at least one of ipv4, ipv6",
        ));
    }
    let mut seen = HashSet::new();
    for (i, f) in list.iter().enumerate() {
        if !seen.insert(*f) {
            let name = if *f == Family::Ipv4 { "ipv4" } else { "ipv6" };
            return Err(ConfigError::invalid(
                format!("families[{i}]"),
                name,
                "listed twice; list each family once",
            ));
        }
    }
    Ok(list)
}

// ===== field helpers =====

/// A BGP identifier: IPv4, not 0.0.0.0.
fn bgp_id(field: &str, text: &str) -> Result<Ipv4Addr, ConfigError> {
    let id: Ipv4Addr = text.trim().parse().map_err(|_| {
        ConfigError::invalid(
            field,
            text,
            "not an IPv4 address; write a dotted quad such as 172.30.0.1",
        )
    })?;
    if id.is_unspecified() {
        return Err(ConfigError::invalid(
            field,
            id,
            "not a valid BGP identifier; use a non-zero IPv4 address, usually the host's own",
        ));
    }
    Ok(id)
}

/// An AS number: 1..=4294967295 without AS_TRANS.
fn asn(field: &str, value: i64) -> Result<u32, ConfigError> {
    const ALLOWED: &str = "use 1..=4294967295 except 23456";
    match u32::try_from(value) {
        Ok(0) => Err(ConfigError::invalid(
            field,
            0,
            format!("reserved (RFC 7607); {ALLOWED}"),
        )),
        Ok(AS_TRANS) => Err(ConfigError::invalid(
            field,
            AS_TRANS,
            format!("AS_TRANS is reserved (RFC 6793); {ALLOWED}"),
        )),
        Ok(asn) => Ok(asn),
        Err(_) => Err(ConfigError::invalid(
            field,
            value,
            format!("out of range; {ALLOWED}"),
        )),
    }
}

/// A neighbour address: unicast, not 0.0.0.0 / ::.
fn peer_address(field: &str, text: &str) -> Result<IpAddr, ConfigError> {
    let ip: IpAddr = text.trim().parse().map_err(|_| {
        ConfigError::invalid(
            field,
            text,
            "not an IP address; write e.g. 172.30.0.2 or fd00::2",
        )
    })?;
    let broadcast = matches!(ip, IpAddr::V4(v4) if v4.is_broadcast());
    if ip.is_unspecified() || ip.is_multicast() || broadcast {
        return Err(ConfigError::invalid(
            field,
            ip,
            "not a unicast address; use the peer's own address",
        ));
    }
    Ok(ip)
}

/// `address:port`, port not 0.
fn socket(field: &str, text: &str) -> Result<SocketAddr, ConfigError> {
    let addr: SocketAddr = text.trim().parse().map_err(|_| {
        ConfigError::invalid(
            field,
            text,
            "not a socket address; write address:port such as 0.0.0.0:179 or [::]:179",
        )
    })?;
    if addr.port() == 0 {
        return Err(ConfigError::invalid(
            field,
            addr,
            "port 0 is not allowed; use 1..=65535",
        ));
    }
    Ok(addr)
}

/// `client`: defaults to iBGP-ness; `true` on an eBGP peer is an error.
fn client(path: &str, raw: Option<bool>, peer_as: u32, our_as: u32) -> Result<bool, ConfigError> {
    let ibgp = peer_as == our_as;
    match raw {
        None => Ok(ibgp),
        Some(true) if !ibgp => Err(ConfigError::invalid(
            format!("{path}.client"),
            true,
            format!(
                "only iBGP peers can be route reflector clients; this peer is eBGP \
                 (asNumber {peer_as}, ours {our_as}): remove client or set it to false"
            ),
        )),
        Some(c) => Ok(c),
    }
}

/// A TCP MD5 key: 1..=80 bytes. The error shows the length, never the key.
fn password(path: &str, raw: Option<String>) -> Result<Option<String>, ConfigError> {
    match raw {
        Some(p) if p.is_empty() => Err(ConfigError::invalid(
            format!("{path}.password"),
            "\"\"",
            "empty; remove the field for no TCP MD5 signature",
        )),
        Some(p) if p.len() > MAX_PASSWORD_LEN => Err(ConfigError::invalid(
            format!("{path}.password"),
            format!("({} bytes)", p.len()),
            format!("too long; TCP MD5 keys are at most {MAX_PASSWORD_LEN} bytes"),
        )),
        other => Ok(other),
    }
}

/// `holdTime`: 0 or 3..=65535 (RFC 4271 §4.2).
fn hold_time(path: &str, raw: Option<i64>) -> Result<u16, ConfigError> {
    const ALLOWED: &str = "0 (no keepalives) or 3..=65535 seconds (RFC 4271 §4.2)";
    let field = format!("{path}.holdTime");
    let value = ranged(&field, raw, DEFAULT_HOLD_TIME, 0, ALLOWED)?;
    if value == 1 || value == 2 {
        return Err(ConfigError::invalid(
            field,
            value,
            format!("not allowed; use {ALLOWED}"),
        ));
    }
    Ok(value)
}

/// `ttlSecurity` (GTSM, RFC 5082): how many hops away the peer may be,
/// 1..=255.
fn ttl_security(path: &str, raw: Option<i64>) -> Result<Option<u8>, ConfigError> {
    let Some(hops) = raw else { return Ok(None) };
    u8::try_from(hops)
        .ok()
        .filter(|h| *h >= 1)
        .map(Some)
        .ok_or_else(|| {
            ConfigError::invalid(
                format!("{path}.ttlSecurity"),
                hops,
                "out of range; use 1..=255 hops (1: directly connected), or remove the field \
                 to turn GTSM off",
            )
        })
}

fn max_prefix(path: &str, raw: Option<RawMaxPrefix>) -> Result<Option<MaxPrefix>, ConfigError> {
    let Some(raw) = raw else { return Ok(None) };
    let limit = u64::try_from(raw.limit)
        .ok()
        .filter(|l| *l >= 1)
        .ok_or_else(|| {
            ConfigError::invalid(
                format!("{path}.maxPrefix.limit"),
                raw.limit,
                "out of range; use at least 1 (remove maxPrefix for no limit)",
            )
        })?;
    Ok(Some(MaxPrefix {
        limit,
        teardown: raw.action.unwrap_or(MaxPrefixAction::Teardown) == MaxPrefixAction::Teardown,
    }))
}

/// An optional u16 in `min..=65535`, `default` when absent.
fn ranged(
    field: &str,
    raw: Option<i64>,
    default: u16,
    min: u16,
    allowed: &str,
) -> Result<u16, ConfigError> {
    let Some(value) = raw else { return Ok(default) };
    u16::try_from(value)
        .ok()
        .filter(|v| *v >= min)
        .ok_or_else(|| ConfigError::invalid(field, value, format!("out of range; use {allowed}")))
}
