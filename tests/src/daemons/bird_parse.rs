//! Parsing `birdc` output: `show route all` into [`Route`]s, and `show
//! protocols [all]` into states and graceful-restart flags.

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;

use super::{IpNet, Route};

/// One BGP protocol line of `show protocols`: name -> (state, info).
pub(crate) fn protocols(text: &str) -> HashMap<String, (String, String)> {
    let mut out = HashMap::new();
    for line in text.lines() {
        let cols: Vec<&str> = line.split_whitespace().collect();
        // name proto table state since-time info...
        if cols.len() >= 5 && cols[1] == "BGP" {
            let info = cols.get(5..).map(|c| c.join(" ")).unwrap_or_default();
            out.insert(cols[0].to_string(), (cols[3].to_string(), info));
        }
    }
    out
}

/// Protocols that keep a restarting neighbour's routes as stale right now
/// (`show protocols all`: "Neighbor graceful restart active"). BIRD 2.0.12
/// has no per-route stale flag in `show route`, so a route is stale when its
/// protocol is in this set.
pub(crate) fn restarting_protocols(text: &str) -> HashSet<String> {
    let mut out = HashSet::new();
    let mut current: Option<&str> = None;
    for line in text.lines() {
        if !line.starts_with(char::is_whitespace) && !line.is_empty() {
            current = line.split_whitespace().next();
        } else if line.trim() == "Neighbor graceful restart active" {
            if let Some(p) = current {
                out.insert(p.to_string());
            }
        }
    }
    out
}

/// Parses `show route all` (BIRD 2.0): a route line starts with the prefix
/// (or with blanks for another route to the same prefix), attribute lines
/// start with a tab. Only routes carrying `BGP.` attributes are returned,
/// each with the name of the protocol it came from.
pub(crate) fn routes(text: &str) -> Vec<(String, Route)> {
    let mut out: Vec<(String, Route)> = Vec::new();
    let mut bgp: Vec<bool> = Vec::new();
    let mut prefix: Option<IpNet> = None;
    for line in text.lines() {
        if line.starts_with('\t') {
            let Some((_, r)) = out.last_mut() else {
                continue;
            };
            let attr = line.trim();
            if let Some((key, value)) = attr.split_once(':') {
                if key.starts_with("BGP.") {
                    if let Some(b) = bgp.last_mut() {
                        *b = true;
                    }
                }
                apply_attr(r, key.trim(), value.trim());
            }
            continue;
        }
        if line.starts_with("Table ") || line.starts_with("BIRD ") || line.trim().is_empty() {
            continue;
        }
        // A route line: "[prefix] <dest> [proto time (from ...)] [*] (pref) [origin]".
        let rest = if line.starts_with(' ') {
            line.trim_start()
        } else {
            let mut parts = line.splitn(2, char::is_whitespace);
            prefix = parts.next().and_then(|p| p.parse().ok());
            parts.next().unwrap_or_default().trim_start()
        };
        let Some(p) = prefix else { continue };
        let Some(open) = rest.find('[') else { continue };
        let proto = rest[open + 1..]
            .split_whitespace()
            .next()
            .unwrap_or_default()
            .to_string();
        let best = rest.contains("] *") || rest.contains("] !");
        out.push((
            proto,
            Route {
                prefix: p,
                next_hop: None,
                as_path: Vec::new(),
                local_pref: None,
                originator_id: None,
                cluster_list: Vec::new(),
                stale: false,
                best,
                from: from_addr(rest),
            },
        ));
        bgp.push(false);
    }
    out.into_iter()
        .zip(bgp)
        .filter_map(|(r, is_bgp)| is_bgp.then_some(r))
        .collect()
}

/// Fills one `BGP.x: value` attribute into `r`.
fn apply_attr(r: &mut Route, key: &str, value: &str) {
    match key {
        "BGP.next_hop" => {
            // "fd00:30::2 fe80::1" for a global + link-local pair.
            r.next_hop = value.split_whitespace().next().and_then(|a| a.parse().ok());
        }
        "BGP.as_path" => {
            r.as_path = value
                .split(|c: char| c.is_whitespace() || c == '{' || c == '}' || c == ',')
                .filter_map(|a| a.parse().ok())
                .collect();
        }
        "BGP.local_pref" => r.local_pref = value.parse().ok(),
        "BGP.originator_id" => r.originator_id = value.parse().ok(),
        "BGP.cluster_list" => {
            r.cluster_list = value
                .split_whitespace()
                .filter_map(|a| a.parse().ok())
                .collect();
        }
        _ => {}
    }
}

/// The "from A" of a route line (set when the peer is not the next hop).
fn from_addr(rest: &str) -> Option<IpAddr> {
    let i = rest.find(" from ")?;
    rest[i + 6..]
        .split(|c: char| c == ']' || c.is_whitespace())
        .next()?
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    const ROUTES: &str = "BIRD 2.0.12 ready.
Table master4:
10.1.0.0/24          blackhole [s4 00:24:02.159] * (200)
\tType: static univ
10.2.0.0/24          unicast [n0 00:24:04.287 from 172.30.0.3] * (100) [i]
\tvia 172.30.0.2 on eth0
\tType: BGP univ
\tBGP.origin: IGP
\tBGP.as_path: 65001 65002
\tBGP.next_hop: 172.30.0.2
\tBGP.local_pref: 100
\tBGP.originator_id: 172.30.0.2
\tBGP.cluster_list: 1.1.1.1 2.2.2.2
                     unicast [n1 00:24:05.000] (100) [i]
\tvia 172.30.0.4 on eth0
\tType: BGP univ
\tBGP.as_path: 
\tBGP.next_hop: 172.30.0.4

Table master6:
fd10:2::/64          unicast [n2 00:24:30.854] * (100) [i]
\tvia fd00:30::2 on eth0
\tType: BGP univ
\tBGP.next_hop: fd00:30::2 fe80::1
";

    #[test]
    fn parses_routes_with_attributes() {
        let r = routes(ROUTES);
        assert_eq!(r.len(), 3, "{r:?}");
        let (proto, first) = &r[0];
        assert_eq!(proto, "n0");
        assert_eq!(first.prefix.to_string(), "10.2.0.0/24");
        assert!(first.best);
        assert_eq!(first.as_path, vec![65001, 65002]);
        assert_eq!(first.next_hop, Some("172.30.0.2".parse().unwrap()));
        assert_eq!(first.local_pref, Some(100));
        assert_eq!(first.originator_id, Some("172.30.0.2".parse().unwrap()));
        assert_eq!(
            first.cluster_list,
            vec![
                "1.1.1.1".parse::<std::net::Ipv4Addr>().unwrap(),
                "2.2.2.2".parse().unwrap()
            ]
        );
        assert_eq!(first.from, Some("172.30.0.3".parse().unwrap()));
        let (proto, second) = &r[1];
        assert_eq!((proto.as_str(), second.best), ("n1", false));
        assert_eq!(second.prefix.to_string(), "10.2.0.0/24");
        assert!(second.as_path.is_empty() && second.cluster_list.is_empty());
        assert_eq!(r[2].1.next_hop, Some("fd00:30::2".parse().unwrap()));
    }

    #[test]
    fn parses_protocol_states_and_restart() {
        let p = protocols(
            "Name       Proto      Table      State  Since         Info
device1    Device     ---        up     00:24:02.159
n0         BGP        ---        up     00:24:03.186  Established
n1         BGP        ---        start  00:24:35.702  Active        Socket: Connection closed
",
        );
        assert_eq!(p["n0"], ("up".to_string(), "Established".to_string()));
        assert_eq!(p["n1"].1, "Active Socket: Connection closed");
        assert!(!p.contains_key("device1"));
        let r = restarting_protocols(
            "n1         BGP        ---        start  00:24:35.702  Active
  BGP state:          Active
    Neighbor graceful restart active
n2         BGP        ---        up     00:24:35.702  Established
  BGP state:          Established
",
        );
        assert_eq!(r, HashSet::from(["n1".to_string()]));
    }
}
