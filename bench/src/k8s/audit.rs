//! Who asked the API server for what: its audit log (level Metadata, one
//! JSON line per request stage), counted by client, verb and resource.
//!
//! The agents, tortie-cni and tortiectl all talk through the datastore's
//! kube-rs client, which sends no User-Agent, and in the lab they share
//! one kubeconfig. So the benchmark gives the agents a client certificate
//! of their own ([`AGENT_USER`]); kubectl is known by its User-Agent; the
//! rest from a node's address is tortie-cni (it runs in the node's
//! namespace, as a kubelet runs it). A request counts once (by
//! `auditID`), in the read where it first appears: its RequestReceived
//! stage, logged as it arrives. (The later stages do not do for watches:
//! this API server logs a watch's ResponseStarted only when the watch
//! ends.)

use std::collections::{BTreeMap, HashSet};
use std::io::{Read, Seek, SeekFrom};
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde_json::Value;

/// The agents' user name (their client certificate's CN).
pub const AGENT_USER: &str = "tortie-bench-agent";

/// Every request at level Metadata, every stage.
pub const POLICY: &str = "apiVersion: audit.k8s.io/v1
kind: Policy
rules:
- level: Metadata
";

/// Who made a request.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Client {
    /// tortie-node, by node name.
    Agent(String),
    /// tortie-cni, by node name.
    Cni(String),
    Kubectl,
    /// Anyone else: the user name.
    Other(String),
}

/// Requests per (verb, resource).
pub type Counts = BTreeMap<(String, String), u64>;

/// Requests per client.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Tally(pub BTreeMap<Client, Counts>);

/// An audit log read piece by piece.
pub struct Log {
    path: PathBuf,
    offset: u64,
    seen: HashSet<String>,
    /// The lab's nodes: name and address.
    nodes: Vec<(String, Ipv4Addr)>,
}

// ===== impl Tally =====

impl Tally {
    /// All requests of the clients `pick` accepts, merged.
    pub fn merged(&self, pick: impl Fn(&Client) -> bool) -> Counts {
        let mut out = Counts::new();
        for (_, counts) in self.0.iter().filter(|(c, _)| pick(c)) {
            for (k, n) in counts {
                *out.entry(k.clone()).or_default() += n;
            }
        }
        out
    }

    /// Adds `other`'s requests to these.
    pub fn add(&mut self, other: Tally) {
        for (c, counts) in other.0 {
            let mine = self.0.entry(c).or_default();
            for (k, n) in counts {
                *mine.entry(k).or_default() += n;
            }
        }
    }

    /// How many requests client `c` made.
    pub fn total(&self, c: &Client) -> u64 {
        self.0.get(c).map(|m| m.values().sum()).unwrap_or(0)
    }
}

// ===== impl Log =====

impl Log {
    /// The log at `path` (it may not exist yet), for a lab with `nodes`.
    pub fn new(path: &Path, nodes: Vec<(String, Ipv4Addr)>) -> Log {
        Log {
            path: path.to_path_buf(),
            offset: 0,
            seen: HashSet::new(),
            nodes,
        }
    }

    /// The requests logged since the last call.
    pub fn take(&mut self) -> Result<Tally> {
        let mut f = match std::fs::File::open(&self.path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Tally::default()),
            Err(e) => return Err(e).with_context(|| format!("opening {}", self.path.display())),
        };
        f.seek(SeekFrom::Start(self.offset))?;
        let mut text = String::new();
        f.read_to_string(&mut text)
            .with_context(|| format!("reading {}", self.path.display()))?;
        // Only whole lines: the server may be writing the next one.
        let whole = text.rfind('\n').map_or(0, |i| i + 1);
        self.offset += whole as u64;
        let mut tally = Tally::default();
        for line in text[..whole].lines().filter(|l| !l.trim().is_empty()) {
            let event: Value = serde_json::from_str(line)
                .with_context(|| format!("{}: not JSON: {line}", self.path.display()))?;
            let Some(id) = event["auditID"].as_str() else {
                continue;
            };
            if !self.seen.insert(id.to_string()) {
                continue;
            }
            let client = classify(&event, &self.nodes);
            let key = (verb(&event), resource(&event));
            *tally.0.entry(client).or_default().entry(key).or_default() += 1;
        }
        Ok(tally)
    }
}

// ===== helpers =====

/// Who made the request of `event` (see the module comment).
fn classify(event: &Value, nodes: &[(String, Ipv4Addr)]) -> Client {
    let user = event["user"]["username"].as_str().unwrap_or("");
    let agent = event["userAgent"].as_str().unwrap_or("");
    let node = event["sourceIPs"][0]
        .as_str()
        .and_then(|ip| ip.parse::<Ipv4Addr>().ok())
        .and_then(|ip| nodes.iter().find(|(_, a)| *a == ip))
        .map(|(n, _)| n.clone());
    if agent.starts_with("kubectl") {
        return Client::Kubectl;
    }
    match node {
        Some(n) if user == AGENT_USER => Client::Agent(n),
        Some(n) => Client::Cni(n),
        None => Client::Other(user.to_string()),
    }
}

fn verb(event: &Value) -> String {
    event["verb"].as_str().unwrap_or("?").to_string()
}

/// `pods`, `ipamblocks.tortie.io`, `pods/status`; the path for a request
/// that names no resource.
fn resource(event: &Value) -> String {
    let o = &event["objectRef"];
    let Some(r) = o["resource"].as_str() else {
        let uri = event["requestURI"].as_str().unwrap_or("?");
        return uri.split('?').next().unwrap_or(uri).to_string();
    };
    let mut s = r.to_string();
    if let Some(g) = o["apiGroup"].as_str().filter(|g| !g.is_empty()) {
        s = format!("{s}.{g}");
    }
    if let Some(sub) = o["subresource"].as_str() {
        s = format!("{s}/{sub}");
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(id: &str, user: &str, ua: &str, ip: &str, verb: &str, res: &str) -> String {
        serde_json::json!({
            "auditID": id, "stage": "ResponseComplete", "verb": verb,
            "user": {"username": user}, "userAgent": ua, "sourceIPs": [ip],
            "objectRef": {"resource": res, "apiGroup": if res == "ipamblocks" { "tortie.io" } else { "" }},
            "requestURI": format!("/x/{res}"),
        })
        .to_string()
    }

    #[test]
    fn counts_each_request_once_by_client() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.log");
        let nodes = vec![
            ("node1".to_string(), Ipv4Addr::new(172, 30, 1, 11)),
            ("node2".to_string(), Ipv4Addr::new(172, 30, 1, 12)),
        ];
        let mut log = Log::new(&path, nodes);
        assert_eq!(log.take().unwrap(), Tally::default());
        let lines = [
            event("a", AGENT_USER, "", "172.30.1.11", "watch", "pods"),
            event("a", AGENT_USER, "", "172.30.1.11", "watch", "pods"),
            event("b", "admin", "", "172.30.1.12", "create", "ipamblocks"),
            event(
                "c",
                "admin",
                "kubectl/v1.20.2",
                "172.30.1.1",
                "create",
                "pods",
            ),
            event(
                "d",
                "system:apiserver",
                "",
                "127.0.0.1",
                "get",
                "namespaces",
            ),
        ];
        // The last line unfinished: read next time.
        let text = format!("{}\n{}", lines[..4].join("\n"), lines[4]);
        std::fs::write(&path, &text).unwrap();
        let t = log.take().unwrap();
        let agent = Client::Agent("node1".into());
        assert_eq!(t.total(&agent), 1);
        assert_eq!(
            t.0[&Client::Cni("node2".into())][&("create".into(), "ipamblocks.tortie.io".into())],
            1
        );
        assert_eq!(t.total(&Client::Kubectl), 1);
        assert_eq!(t.0.len(), 3);
        std::fs::write(&path, format!("{text}\n")).unwrap();
        let t = log.take().unwrap();
        assert_eq!(t.total(&Client::Other("system:apiserver".into())), 1);
        assert_eq!(t.0.len(), 1);
        let all = t.merged(|_| true);
        assert_eq!(all[&("get".into(), "namespaces".into())], 1);
    }
}
