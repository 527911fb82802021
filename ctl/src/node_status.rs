//! `tortiectl node status`: the node agent's `/status`, as the peer table
//! Calico users know (peer address, peer type, state, since, info), then
//! the node's routes summary and any problems.

use std::net::SocketAddr;

use anyhow::{Context, Result};
use serde_json::Value;

use crate::table;

/// Fetches `/status` from the agent at `admin`.
pub fn fetch(admin: SocketAddr) -> Result<Value> {
    let body = crate::http::get(admin, "/status")?;
    serde_json::from_str(&body).context("tortie-node's /status is not JSON")
}

/// The human view of a `/status` document.
pub fn render(s: &Value) -> String {
    let str_of = |v: &Value| v.as_str().unwrap_or("").to_string();
    let mut out = format!(
        "Tortie node {} is {} ({} on {}, AS {}{}).\n",
        str_of(&s["node"]),
        match s["phase"].as_str() {
            Some("running") => "running".to_string(),
            Some(other) => format!("starting: {}", other.replace('-', " ")),
            None => "in an unknown phase".to_string(),
        },
        match s["addressV6"].as_str() {
            Some(v6) => format!("{} and {v6}", str_of(&s["address"])),
            None => str_of(&s["address"]),
        },
        str_of(&s["interface"]),
        s["asNumber"].as_u64().map_or("?".into(), |a| a.to_string()),
        s["clusterId"]
            .as_str()
            .map_or(String::new(), |c| format!(", route reflector cluster {c}")),
    );
    let peers = s["peers"].as_array().cloned().unwrap_or_default();
    for (family, v4) in [("IPv4", true), ("IPv6", false)] {
        let rows: Vec<Vec<String>> = peers
            .iter()
            .filter(|p| p["address"].as_str().is_some_and(|a| a.contains('.') == v4))
            .map(peer_row)
            .collect();
        out += &format!("\n{family} BGP status\n");
        if rows.is_empty() && !v4 && s["addressV6"].is_string() {
            // Dual stack: the mesh's IPv4 sessions carry IPv6 too.
            out += "No IPv6 peers found; IPv6 routes go over the IPv4 sessions.\n";
        } else if rows.is_empty() {
            out += &format!("No {family} peers found.\n");
        } else {
            out += &table::render(
                &["PEER ADDRESS", "PEER TYPE", "STATE", "SINCE", "INFO"],
                &rows,
            );
        }
    }
    let originated: Vec<String> = s["originated"]
        .as_array()
        .map(|a| a.iter().map(str_of).collect())
        .unwrap_or_default();
    out += &format!(
        "\nRoutes: announces {} ({}), learned {}, kernel routes wanted {}{}.\n",
        originated.len(),
        if originated.is_empty() {
            "none".into()
        } else {
            originated.join(", ")
        },
        s["learned"].as_u64().unwrap_or(0),
        s["dataplane"]["routes"].as_u64().unwrap_or(0),
        match s["dataplane"]["failures"].as_array().map_or(0, Vec::len) {
            0 => String::new(),
            n => format!(", {n} failing"),
        }
    );
    let problems: Vec<String> = s["problems"]
        .as_array()
        .map(|a| a.iter().map(str_of).collect())
        .unwrap_or_default();
    if !problems.is_empty() {
        out += "\nProblems:\n";
        for p in problems {
            out += &format!("  - {p}\n");
        }
    }
    out
}

fn peer_row(p: &Value) -> Vec<String> {
    let state = p["state"].as_str().unwrap_or("Idle");
    let since = p["sinceUnix"]
        .as_u64()
        .filter(|s| *s > 0)
        .map_or("-".into(), clock);
    let mut info = match (state, p["lastError"].as_str()) {
        ("Established", _) | (_, None) => state.to_string(),
        (s, Some(e)) => format!("{s}: {e}"),
    };
    if let Some(bfd) = bfd_info(&p["bfd"]) {
        info += &format!(", {bfd}");
    }
    let mut kind = p["type"].as_str().unwrap_or("").to_string();
    if p["rrClient"].as_bool() == Some(true) {
        kind += " (rr client)";
    }
    vec![
        p["address"].as_str().unwrap_or("").to_string(),
        kind,
        if state == "Established" {
            "up"
        } else {
            "start"
        }
        .to_string(),
        since,
        info,
    ]
}

/// A BFD peer's word for INFO: `BFD up`, `BFD down, BGP held`, ...;
/// `None` for a peer without BFD.
fn bfd_info(b: &Value) -> Option<String> {
    if b.is_null() {
        return None;
    }
    if b["holding"].as_bool() == Some(true) {
        return Some("BFD down, BGP held".into());
    }
    Some(match b["session"]["state"].as_str() {
        Some(s) => format!("BFD {}", s.replace('_', " ")),
        None => "BFD not started".into(),
    })
}

/// `HH:MM:SS` (UTC) of a Unix time.
fn clock(unix: u64) -> String {
    let s = unix % 86_400;
    format!("{:02}:{:02}:{:02}", s / 3600, s % 3600 / 60, s % 60)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_dual_stack_node_names_both_addresses() {
        let s: Value = serde_json::json!({
            "node": "node1", "address": "172.30.1.11/24", "addressV6": "fd30:1::11/64",
            "interface": "eth0", "phase": "running", "asNumber": 64512,
            "peers": [{"address": "172.30.1.12", "type": "node-to-node mesh",
                       "state": "Established", "sinceUnix": 0, "rrClient": false}],
            "originated": [], "learned": 0, "dataplane": {"routes": 0, "failures": []},
            "problems": []
        });
        let text = render(&s);
        assert!(
            text.starts_with(
                "Tortie node node1 is running (172.30.1.11/24 and fd30:1::11/64 on eth0, AS 64512).\n"
            ),
            "{text}"
        );
        assert!(
            text.contains("No IPv6 peers found; IPv6 routes go over the IPv4 sessions."),
            "{text}"
        );
    }

    #[test]
    fn table_of_a_node() {
        let s: Value = serde_json::json!({
            "node": "node1", "address": "172.30.1.11/24", "interface": "eth0",
            "phase": "running", "asNumber": 64512, "clusterId": null,
            "peers": [
                {"address": "172.30.1.12", "type": "node-to-node mesh", "state": "Established",
                 "sinceUnix": 1796240451u64, "lastError": "sent NOTIFICATION 6/7", "rrClient": false},
                {"address": "172.30.2.13", "type": "global", "state": "Active",
                 "sinceUnix": 0, "lastError": "connect: Connection refused", "rrClient": true}
            ],
            "originated": ["10.244.0.0/26"], "learned": 2,
            "dataplane": {"routes": 4, "failures": []},
            "problems": ["BGPPeer/tor: spec.peerIP: 224.0.0.5 is not a unicast address: peer skipped"]
        });
        let text = render(&s);
        assert!(
            text.starts_with("Tortie node node1 is running (172.30.1.11/24 on eth0, AS 64512).\n"),
            "{text}"
        );
        assert!(
            text.contains(
                "| 172.30.1.12  | node-to-node mesh  | up    | 19:40:51 | Established         "
            ),
            "{text}"
        );
        assert!(text.contains("| 172.30.2.13  | global (rr client) | start | -        | Active: connect: Connection refused |"), "{text}");
        assert!(text.contains("No IPv6 peers found."), "{text}");
        assert!(
            text.contains(
                "Routes: announces 1 (10.244.0.0/26), learned 2, kernel routes wanted 4."
            ),
            "{text}"
        );
        assert!(text.contains("  - BGPPeer/tor: spec.peerIP"), "{text}");
    }

    #[test]
    fn bfd_in_the_info_column() {
        let row = |bfd: Value, state: &str, error: Option<&str>| {
            let p = serde_json::json!({"address": "172.30.1.1", "type": "global",
                "state": state, "lastError": error, "bfd": bfd});
            peer_row(&p)[4].clone()
        };
        let up = serde_json::json!({"session": {"state": "up"}, "holding": false});
        assert_eq!(row(up, "Established", None), "Established, BFD up");
        let held = serde_json::json!({"session": {"state": "down"}, "holding": true});
        assert_eq!(
            row(held, "Active", Some("BFD down (detection time expired)")),
            "Active: BFD down (detection time expired), BFD down, BGP held"
        );
        let admin = serde_json::json!({"session": {"state": "down", "remoteState": "admin_down"},
            "holding": false});
        assert_eq!(row(admin, "Established", None), "Established, BFD down");
        let waiting = serde_json::json!({"session": null, "holding": false});
        assert_eq!(row(waiting, "Active", None), "Active, BFD not started");
        assert_eq!(row(Value::Null, "Active", None), "Active");
    }
}
