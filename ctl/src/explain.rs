//! `tortiectl explain <prefix|address|namespace/pod>`: why a route is,
//! or is not, in this node's kernel (the agent's `/explain`): the owner,
//! the BGP paths and why each lost, the rules that acted, the
//! encapsulation decision and its inputs, and the kernel route felix
//! wants, found and last wrote.

use std::fmt::Write as _;
use std::net::{IpAddr, SocketAddr};

use anyhow::{bail, Context, Result};
use ipnet::IpNet;
use serde_json::Value;

/// Checks the argument before asking the agent: a prefix, an address, or
/// `namespace/pod`.
pub fn check_target(s: &str) -> Result<()> {
    if s.parse::<IpAddr>().is_ok() {
        return Ok(());
    }
    if let Ok(net) = s.parse::<IpNet>() {
        if net.trunc() != net {
            bail!(
                "{s}: host bits set; the prefix is {} (or give the address {})",
                net.trunc(),
                net.addr()
            );
        }
        return Ok(());
    }
    let name = |p: &str| {
        !p.is_empty()
            && p.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.')
    };
    match s.split_once('/') {
        Some((ns, pod)) if name(ns) && name(pod) => Ok(()),
        _ => bail!(
            "{s:?} is not a prefix (10.244.1.0/26), an address (10.244.1.5) or namespace/pod \
             (default/web)"
        ),
    }
}

/// Fetches `/explain?target=` from the agent at `admin`.
pub fn fetch(admin: SocketAddr, target: &str) -> Result<Value> {
    check_target(target)?;
    let path = format!("/explain?target={}", encode(target));
    let body = crate::http::get(admin, &path)?;
    serde_json::from_str(&body).context("tortie-node's /explain is not JSON")
}

/// `/` and `:` escaped for a query value (the rest of a valid target
/// needs none).
fn encode(s: &str) -> String {
    s.replace('%', "%25")
        .replace('/', "%2F")
        .replace(':', "%3A")
}

/// The text block.
pub fn render(e: &Value, now_ms: u64) -> String {
    let mut out = String::new();
    let s = |v: &Value| v.as_str().unwrap_or("").to_string();
    let _ = writeln!(
        out,
        "Explain {} ({}) on node {}",
        s(&e["target"]),
        s(&e["kind"]),
        s(&e["node"])
    );
    if let Some(p) = e["pod"].as_object() {
        let addrs: Vec<String> = p["addresses"]
            .as_array()
            .map(|a| a.iter().map(s).collect())
            .unwrap_or_default();
        let _ = writeln!(
            out,
            "Pod:       {}/{} on node {}, interface {}, addresses {}",
            s(&p["namespace"]),
            s(&p["name"]),
            s(&p["node"]),
            s(&p["interface"]),
            addrs.join(", ")
        );
    }
    for r in e["prefixes"].as_array().into_iter().flatten() {
        render_prefix(&mut out, r, now_ms);
    }
    for p in e["problems"].as_array().into_iter().flatten() {
        let _ = writeln!(out, "Problem:   {}", s(p));
    }
    out
}

fn render_prefix(out: &mut String, r: &Value, now_ms: u64) {
    let s = |v: &Value| v.as_str().unwrap_or("").to_string();
    let _ = writeln!(out, "\n{}", s(&r["asked"]));
    let o = &r["owner"];
    let _ = writeln!(out, "  Owner:   {}", s(&o["summary"]));
    if let Some(pool) = o["pool"].as_str().filter(|_| o["kind"] != "pool") {
        let _ = writeln!(out, "           pool {pool}");
    }
    // The kernel first: the answer to "is it in the kernel".
    let k = &r["kernel"];
    match k["prefix"].as_str() {
        None => {
            let _ = writeln!(out, "  Kernel:  no route of ours carries it (absent)");
        }
        Some(p) => {
            let state = s(&k["state"]);
            match k["wanted"].as_str() {
                Some(w) => {
                    let _ = writeln!(out, "  Kernel:  {state}: wanted {w}");
                }
                None => {
                    let _ = writeln!(out, "  Kernel:  {state}: {p} is not wanted");
                }
            }
            if let Some(why) = k["why"].as_str() {
                let _ = writeln!(out, "           why: {why}");
            }
            for f in k["found"].as_array().into_iter().flatten() {
                let _ = writeln!(out, "           found: {}", s(f));
            }
        }
    }
    match k["lastWrite"].as_object() {
        Some(w) => {
            let at = w["atUnixMs"].as_u64().unwrap_or(0);
            let ago = now_ms.saturating_sub(at) as f64 / 1000.0;
            let _ = writeln!(
                out,
                "           felix last wrote it: {} {ago:.1} s ago (unix ms {at})",
                s(&w["kind"])
            );
        }
        None if k["prefix"].is_string() => {
            let _ = writeln!(out, "           felix has not written it since it started");
        }
        None => {}
    }
    for w in k["warnings"].as_array().into_iter().flatten() {
        let _ = writeln!(out, "           warning: {}", s(w));
    }
    if let Some(x) = r["encap"].as_object() {
        let local = x["local"].as_str().unwrap_or("none");
        let node = x["nextHopNode"]
            .as_str()
            .map_or("not a node".to_string(), |n| format!("node {n}"));
        let _ = writeln!(out, "  Encap:   {}", s(&x["decision"]));
        let _ = writeln!(
            out,
            "           pool {}: ipipMode {}, vxlanMode {}",
            x["pool"].as_str().unwrap_or("none"),
            s(&x["ipipMode"]),
            s(&x["vxlanMode"])
        );
        let same = if x["sameSubnet"].as_bool() == Some(true) {
            "same subnet"
        } else {
            "another subnet"
        };
        let _ = writeln!(
            out,
            "           next hop {} ({node}), this node {local}: {same}",
            s(&x["nextHop"])
        );
    }
    match r["bgp"].as_object() {
        None => {
            let _ = writeln!(
                out,
                "  BGP:     {}",
                r["bgpError"].as_str().unwrap_or("no answer")
            );
        }
        Some(b) => {
            let paths = b["paths"].as_array().cloned().unwrap_or_default();
            match b["prefix"].as_str() {
                None => {
                    let _ = writeln!(out, "  BGP:     no path, and no peer sent it");
                }
                Some(p) => {
                    let _ = writeln!(out, "  BGP:     {p}: {} path(s)", paths.len());
                }
            }
            for p in &paths {
                let mark = if p["best"].as_bool() == Some(true) {
                    "best".to_string()
                } else {
                    format!("lost: {}", p["lost"].as_str().unwrap_or("?"))
                };
                let lp = p["localPref"]
                    .as_u64()
                    .map_or(String::new(), |v| format!(" local-pref {v}"));
                let med = p["med"]
                    .as_u64()
                    .map_or(String::new(), |v| format!(" med {v}"));
                let stale = if p["stale"].as_bool() == Some(true) {
                    " (stale)"
                } else {
                    ""
                };
                let _ = writeln!(
                    out,
                    "    {mark:<26} from {} next hop {} as-path {}{lp}{med} origin {}{stale}",
                    s(&p["from"]),
                    s(&p["nextHop"]),
                    s(&p["asPath"]),
                    s(&p["origin"])
                );
            }
            for p in b["peers"].as_array().into_iter().flatten() {
                let up = if p["established"].as_bool() == Some(true) {
                    ""
                } else {
                    " (not established)"
                };
                let told = if p["advertised"].as_bool() == Some(true) {
                    "advertised"
                } else {
                    "not advertised"
                };
                let _ = writeln!(
                    out,
                    "    peer {}{up}: sent {}; import: {}; {told}",
                    s(&p["peer"]),
                    s(&p["announced"]),
                    s(&p["import"])
                );
            }
        }
    }
    let filters = r["filters"].as_array().cloned().unwrap_or_default();
    if filters.is_empty() {
        let _ = writeln!(out, "  Filters: none acted");
    }
    for (i, f) in filters.iter().enumerate() {
        let head = if i == 0 { "  Filters: " } else { "           " };
        let _ = writeln!(out, "{head}{}", s(f));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arguments_are_checked_before_asking() {
        for ok in [
            "10.244.1.0/26",
            "10.244.1.5",
            "fd00::1",
            "default/web-0",
            "kube-system/a.b",
        ] {
            assert!(check_target(ok).is_ok(), "{ok}");
        }
        let err = |s: &str| check_target(s).unwrap_err().to_string();
        assert_eq!(
            err("10.244.1.5/26"),
            "10.244.1.5/26: host bits set; the prefix is 10.244.1.0/26 (or give the address 10.244.1.5)"
        );
        assert!(err("web").contains("is not a prefix"), "{}", err("web"));
        assert!(err("Default/Web").contains("namespace/pod"));
        assert!(err("a/b/c").contains("namespace/pod"));
        assert_eq!(encode("default/web"), "default%2Fweb");
        assert_eq!(encode("fd00::/64"), "fd00%3A%3A%2F64");
    }

    #[test]
    fn the_block_reads_kernel_encap_bgp_and_filters() {
        let e = serde_json::json!({
            "node": "n1", "target": "10.244.2.0/26", "kind": "prefix", "pod": null,
            "problems": [],
            "prefixes": [{
                "asked": "10.244.2.0/26",
                "owner": {"kind": "block", "summary": "block 10.244.2.0/26 of node n2", "pool": "default (10.244.0.0/16)"},
                "kernel": {"prefix": "10.244.2.0/26", "wanted": "10.244.2.0/26 via 192.168.1.12 dev eth0",
                           "why": "learned over BGP from node n2 (192.168.1.12); same subnet, no encapsulation",
                           "found": ["10.244.2.0/26 via 192.168.1.12 dev eth0"], "state": "installed",
                           "lastWrite": {"atUnixMs": 10_000, "kind": "added"}, "warnings": []},
                "encap": {"pool": "default (10.244.0.0/16)", "ipipMode": "Never", "vxlanMode": "Never",
                          "local": "192.168.1.11/24", "nextHop": "192.168.1.12", "nextHopNode": "n2",
                          "nextHopAddresses": ["192.168.1.12"], "sameSubnet": true, "decision": "Direct"},
                "bgp": {"prefix": "10.244.2.0/26", "paths": [
                    {"from": "192.168.1.12 (node n2)", "nextHop": "192.168.1.12", "asPath": "(empty)",
                     "localPref": 100, "med": null, "origin": "igp", "best": true, "stale": false, "lost": null},
                    {"from": "192.168.1.254 (BGPPeer/tor)", "nextHop": "192.168.1.12", "asPath": "65000",
                     "localPref": null, "med": null, "origin": "igp", "best": false, "stale": false,
                     "lost": "longer AS_PATH"}],
                    "peers": [{"peer": "192.168.1.12 (node n2)", "established": true, "announced": "accepted",
                               "import": "no rule matched; accepted by default", "importAllowed": true,
                               "export": null, "advertised": false}]},
                "bgpError": null,
                "filters": ["export to 192.168.1.254 (BGPPeer/tor): BGPFilter/f exportV4[0]: Reject In 10.244.0.0/16"]
            }]
        });
        let text = render(&e, 12_500);
        let want = [
            "Explain 10.244.2.0/26 (prefix) on node n1",
            "  Owner:   block 10.244.2.0/26 of node n2",
            "  Kernel:  installed: wanted 10.244.2.0/26 via 192.168.1.12 dev eth0",
            "           felix last wrote it: added 2.5 s ago (unix ms 10000)",
            "  Encap:   Direct",
            "           next hop 192.168.1.12 (node n2), this node 192.168.1.11/24: same subnet",
            "  BGP:     10.244.2.0/26: 2 path(s)",
            "    lost: longer AS_PATH       from 192.168.1.254 (BGPPeer/tor) next hop 192.168.1.12 as-path 65000 origin igp",
            "  Filters: export to 192.168.1.254 (BGPPeer/tor): BGPFilter/f exportV4[0]: Reject In 10.244.0.0/16",
        ];
        for w in want {
            assert!(text.lines().any(|l| l == w), "missing {w:?} in:\n{text}");
        }
    }
}
