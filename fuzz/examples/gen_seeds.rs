//! Writes the committed seed corpus, `fuzz/seeds/<target>/`, from the
//! repository's own examples:
//!
//! - `bgp_message`: every message of the codec tables
//!   (`bgp-speaker/tests/packet/tables.rs`, `malformed.rs`: the bytes the
//!   rows build with `hex`, `msg`, `open`, `update`, `with`), and a few
//!   the encoders build; each behind a context octet.
//! - `bgp_session`: operation sequences for the session's paths
//!   (establish in and out, collision, hold timer, graceful restart,
//!   max-prefix, route reflection, garbage).
//! - `cni_request`: the network configs of `docs/cni.md` and
//!   `deploy/tortie-node.yaml` with the environment of each command.
//! - `resources_yaml`: `deploy/defaults.yaml`, the YAML examples of
//!   `docs/`, the manifests of the config crate's tests, and one
//!   `tortie.io/v1` document of each kind the system writes.
//!
//! Run: `cargo run --manifest-path fuzz/Cargo.toml --example gen_seeds`.
//! It replaces the seed directories.

use std::fs;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use bgp_speaker::packet::{
    encode_announce, encode_end_of_rib, encode_open, encode_withdraw, Capabilities, EncodeCtx,
    GracefulRestartCap, Open,
};
use bgp_speaker::route::AsSegment;
use bgp_speaker::{Afi, NextHop, PathAttrs, Prefix};

fn main() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let seeds = root.join("fuzz/seeds");
    write(&seeds.join("bgp_message"), bgp_message(&root));
    write(&seeds.join("bgp_session"), bgp_session());
    write(&seeds.join("cni_request"), cni_request(&root));
    write(&seeds.join("resources_yaml"), resources_yaml(&root));
}

fn write(dir: &PathBuf, seeds: Vec<(String, Vec<u8>)>) {
    let _ = fs::remove_dir_all(dir);
    fs::create_dir_all(dir).expect("seed directory");
    for (name, bytes) in &seeds {
        fs::write(dir.join(name), bytes).expect("seed file");
    }
    println!("{}: {} seeds", dir.display(), seeds.len());
}

// ----- bgp_message -----

fn bgp_message(root: &Path) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    for file in ["tables.rs", "malformed.rs"] {
        let path = root.join("bgp-speaker/tests/packet").join(file);
        let src = fs::read_to_string(&path).expect("codec test file");
        for (line, bytes) in codec_rows(&src) {
            let stem = file.trim_end_matches(".rs");
            // asn4 (the tables' usual context); the fuzzer flips the rest.
            out.push((format!("{stem}-{line}"), [vec![0x01], bytes].concat()));
        }
    }
    let ctx = |asn4| EncodeCtx {
        asn4,
        max_len: 4096,
    };
    let attrs = PathAttrs {
        as_path: vec![
            AsSegment::Sequence(vec![65000, 4_200_000_001]),
            AsSegment::Set(vec![1, 2]),
        ],
        med: Some(5),
        local_pref: Some(100),
        aggregator: Some((4_200_000_001, Ipv4Addr::new(10, 0, 0, 9))),
        communities: vec![0xffff_ff01],
        originator_id: Some(Ipv4Addr::new(10, 0, 0, 2)),
        cluster_list: vec![Ipv4Addr::new(10, 0, 0, 3)],
        ext_communities: vec![[0, 2, 0xfd, 0xe8, 0, 0, 0, 1]],
        large_communities: vec![[65000, 1, 2]],
        ..PathAttrs::local(NextHop::V4(Ipv4Addr::new(192, 0, 2, 1)))
    };
    let v4: Vec<Prefix> = vec!["10.244.0.0/26".parse().unwrap(), "10.1.1.1/32".parse().unwrap()];
    let v6: Vec<Prefix> = vec!["2001:db8::/32".parse().unwrap()];
    for (asn4, bits) in [(true, 0x03u8), (false, 0x02)] {
        let mut msgs = Vec::new();
        encode_announce(&ctx(asn4), &attrs, &v4, &mut msgs);
        let mut a6 = attrs.clone();
        a6.next_hop = NextHop::V6 {
            global: "2001:db8::1".parse().unwrap(),
            link_local: Some("fe80::1".parse().unwrap()),
        };
        encode_announce(&ctx(asn4), &a6, &v6, &mut msgs);
        encode_withdraw(&ctx(asn4), &[v4[0], v6[0]], &mut msgs);
        msgs.push(encode_end_of_rib(Afi::Ipv6));
        // One stream, as a session reads it.
        let name = format!("encoded-ibgp-asn4-{asn4}");
        out.push((name, [vec![bits], msgs.concat()].concat()));
    }
    let open = encode_open(&Open {
        version: 4,
        asn: 4_200_000_001,
        hold_time: 90,
        router_id: Ipv4Addr::new(10, 0, 0, 2),
        capabilities: Capabilities {
            multiprotocol: vec![Afi::Ipv4, Afi::Ipv6],
            four_octet_as: Some(4_200_000_001),
            route_refresh: true,
            enhanced_route_refresh: true,
            graceful_restart: Some(GracefulRestartCap {
                restart_state: true,
                notification: true,
                restart_time: 120,
                families: vec![(Afi::Ipv4, true), (Afi::Ipv6, false)],
            }),
            extended_message: true,
            unknown: vec![(69, vec![0, 1, 1, 3]), (200, vec![7; 300])],
        },
    });
    out.push(("encoded-open-extended-params".into(), [vec![0x05], open].concat()));
    out
}

/// The messages the codec tables build: `(line, bytes)`.
fn codec_rows(src: &str) -> Vec<(usize, Vec<u8>)> {
    let mut consts = vec![("MARKER".to_string(), "ff".repeat(16))];
    for l in src.lines() {
        if let Some(rest) = l.strip_prefix("const ") {
            if let Some((name, v)) = rest.split_once(": &str = \"") {
                consts.push((name.to_string(), v.trim_end_matches("\";").to_string()));
            }
        }
    }
    let c = |name: &str| {
        consts
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.clone())
            .unwrap_or_default()
    };
    let mut out: Vec<(usize, Vec<u8>)> = Vec::new();
    let b = src.as_bytes();
    for (i, _) in src.char_indices() {
        let Some(name) = ["with(", "update(", "msg(", "open(", "hex("]
            .into_iter()
            .find(|n| src[i..].starts_with(n))
        else {
            continue;
        };
        if i > 0 && (b[i - 1].is_ascii_alphanumeric() || b[i - 1] == b'_') {
            continue;
        }
        if src[..i].ends_with("fn ") {
            continue;
        }
        let mut p = Parser {
            s: &src[i + name.len()..],
            consts: &consts,
        };
        let bytes = match name {
            "with(" => p.string().map(|x| {
                let attrs = format!("{} {} {} {x}", c("ORIGIN"), c("AS_PATH"), c("NEXT_HOP"));
                update("", &attrs, &c("NLRI"))
            }),
            "open(" => p.string().map(|x| msg(1, &x)),
            "hex(" => p.string().map(|x| hex(&x)),
            "msg(" => p.int().and_then(|t| p.comma().then(|| p.string()).flatten().map(|x| msg(t, &x))),
            _ => (|| {
                let w = p.string()?;
                p.comma().then_some(())?;
                let a = p.string()?;
                p.comma().then_some(())?;
                let n = p.string()?;
                Some(update(&w, &a, &n))
            })(),
        };
        let Some(bytes) = bytes.filter(|v| v.len() >= 19) else {
            continue;
        };
        if !out.iter().any(|(_, v)| *v == bytes) {
            out.push((src[..i].lines().count(), bytes));
        }
    }
    out
}

/// A string argument: `"..."` or `&format!("...")` with `{CONST}`s.
struct Parser<'a> {
    s: &'a str,
    consts: &'a [(String, String)],
}

impl Parser<'_> {
    fn string(&mut self) -> Option<String> {
        let t = self.s.trim_start();
        let (t, fmt) = match t.strip_prefix("&format!(") {
            Some(r) => (r.trim_start(), true),
            None => (t, false),
        };
        let body = t.strip_prefix('"')?;
        let end = body.find('"')?;
        let mut v = body[..end].to_string();
        let mut rest = &body[end + 1..];
        if fmt {
            rest = rest.trim_start().strip_prefix(')')?;
            for (n, c) in self.consts {
                v = v.replace(&format!("{{{n}}}"), c);
            }
            if v.contains('{') {
                return None;
            }
        }
        self.s = rest;
        Some(v)
    }

    fn int(&mut self) -> Option<u8> {
        let t = self.s.trim_start();
        let n = t.find(|c: char| !c.is_ascii_digit())?;
        let v = t[..n].parse().ok()?;
        self.s = &t[n..];
        Some(v)
    }

    fn comma(&mut self) -> bool {
        match self.s.trim_start().strip_prefix(',') {
            Some(r) => {
                self.s = r;
                true
            }
            None => false,
        }
    }
}

fn hex(s: &str) -> Vec<u8> {
    let d: Vec<u8> = s.bytes().filter(|c| c.is_ascii_hexdigit()).collect();
    d.chunks(2)
        .filter(|p| p.len() == 2)
        .map(|p| u8::from_str_radix(std::str::from_utf8(p).unwrap(), 16).unwrap())
        .collect()
}

fn msg(t: u8, body: &str) -> Vec<u8> {
    let body = hex(body);
    let mut v = vec![0xff; 16];
    v.extend_from_slice(&((19 + body.len()) as u16).to_be_bytes());
    v.push(t);
    v.extend_from_slice(&body);
    v
}

fn update(w: &str, a: &str, n: &str) -> Vec<u8> {
    let (w, a, n) = (hex(w), hex(a), hex(n));
    let mut body = Vec::new();
    body.extend_from_slice(&(w.len() as u16).to_be_bytes());
    body.extend_from_slice(&w);
    body.extend_from_slice(&(a.len() as u16).to_be_bytes());
    body.extend_from_slice(&a);
    body.extend_from_slice(&n);
    msg(2, &body.iter().map(|x| format!("{x:02x}")).collect::<String>())
}

// ----- bgp_session -----

/// Builds an operation sequence (`tortie_fuzz::bgp_session`'s format).
#[derive(Default)]
struct Ops(Vec<u8>);

impl Ops {
    fn new(config: u8) -> Ops {
        Ops(vec![config])
    }
    fn connect(mut self, slot: u8, from: u8) -> Ops {
        self.0.extend([0, slot, from]);
        self
    }
    fn dial(mut self, how: u8) -> Ops {
        self.0.extend([1, how]);
        self
    }
    /// OPEN with the peer's AS, a hold time (`hold_sel` 0: 90 s, 2: 3 s),
    /// its own identifier, capability bits.
    fn open(mut self, slot: u8, hold_sel: u8, bits: u16) -> Ops {
        self.0.extend([2, slot, 0, hold_sel, 0]);
        self.0.extend(bits.to_be_bytes());
        self
    }
    fn keepalive(mut self, slot: u8) -> Ops {
        self.0.extend([3, slot]);
        self
    }
    /// `pfx`: bits 3-5 + 1 prefixes from `base`; bit 2: IPv6 (bits 0-1
    /// must be 0 here).
    fn update(mut self, slot: u8, pfx: u8, base: u16, attrs: u16) -> Ops {
        assert!(pfx & 3 == 0);
        self.0.extend([4, slot, 0, pfx]);
        self.0.extend(base.to_be_bytes());
        self.0.extend(attrs.to_be_bytes());
        self
    }
    fn withdraw(mut self, slot: u8, pfx: u8, base: u16) -> Ops {
        assert!(pfx & 3 == 0);
        self.0.extend([5, slot, 0, pfx]);
        self.0.extend(base.to_be_bytes());
        self
    }
    fn end_of_rib(mut self, slot: u8, v6: bool) -> Ops {
        self.0.extend([6, slot, u8::from(v6)]);
        self
    }
    fn notification(mut self, slot: u8, code: u8, sub: u8) -> Ops {
        self.0.extend([7, slot, code, sub]);
        self
    }
    fn route_refresh(mut self, slot: u8, v6: bool, subtype: u8) -> Ops {
        self.0.extend([8, slot, u8::from(v6), subtype]);
        self
    }
    fn raw(mut self, slot: u8, bytes: &[u8]) -> Ops {
        self.0.extend([9, slot]);
        self.0.extend((bytes.len() as u16).to_be_bytes());
        self.0.extend(bytes);
        self
    }
    /// A template (0 OPEN, 1 KEEPALIVE, 2 UPDATE, 3 ROUTE-REFRESH) with
    /// the octet at `at` replaced; an OPEN or UPDATE template takes its
    /// arguments after (here: all zero, but the UPDATE's attribute bits).
    fn mutate(mut self, slot: u8, template: u8, at: u16, byte: u8) -> Ops {
        self.0.extend([10, slot, template]);
        self.0.extend(at.to_be_bytes());
        self.0.push(byte);
        match template {
            0 => self.0.extend([0, 0, 0, 0, 0]),
            2 => self.0.extend([0, 0, 0, 0, 0, ATTRS as u8]),
            _ => {}
        }
        self
    }
    fn wait_ms(mut self, ms: u32) -> Ops {
        self.0.push(11);
        self.0.extend(((ms / 10).min(65535) as u16).to_be_bytes());
        self
    }
    fn close(mut self, slot: u8, whole: bool) -> Ops {
        self.0.extend([12, slot, u8::from(whole)]);
        self
    }
    fn local(mut self, i: u8) -> Ops {
        self.0.extend([13, i]);
        self
    }
    /// 0: the peer's hold time (`arg`: 0, 3, 30 or 240 s), 1: no peer,
    /// 2: the peer's passive flag flipped, 3: no dynamic prefix.
    fn reconfigure(mut self, variant: u8, arg: u8) -> Ops {
        self.0.extend([14, variant]);
        if variant == 0 {
            self.0.push(arg);
        }
        self
    }
    /// OPEN, KEEPALIVE from the peer in `slot`: Established.
    fn establish(self, slot: u8, bits: u16) -> Ops {
        self.open(slot, 0, bits).keepalive(slot)
    }
}

/// Attribute bits of [`Ops::update`]: AS_PATH of the peer's AS, next
/// hop the peer, LOCAL_PREF.
const ATTRS: u16 = 2;

fn bgp_session() -> Vec<(String, Vec<u8>)> {
    // Config bits: 1 eBGP, 2 passive, 4 GR off, 8 RR, 16 max-prefix,
    // 32 teardown, 64 dynamic prefix, 128 hold 3 s.
    let seeds = [
        (
            "inbound-established-routes",
            Ops::new(2)
                .connect(0, 0)
                .establish(0, 2)
                .update(0, 0x08, 1, ATTRS)
                .update(0, 0x0c, 7, ATTRS)
                .end_of_rib(0, false)
                .wait_ms(60_000)
                .keepalive(0)
                .withdraw(0, 0x00, 1),
        ),
        (
            "outbound-dial-accepted",
            Ops::new(0)
                .wait_ms(1000)
                .dial(0)
                .establish(0, 2)
                .update(0, 0x04, 3, ATTRS | 64)
                .local(1)
                .local(9)
                .route_refresh(0, false, 0)
                .wait_ms(31_000),
        ),
        (
            "outbound-refused-then-hung",
            Ops::new(0).wait_ms(1000).dial(1).wait_ms(6000).dial(2).wait_ms(20_000),
        ),
        (
            "collision-inbound-and-outbound",
            Ops::new(0)
                .wait_ms(1000)
                .dial(0)
                .connect(1, 0)
                .open(0, 0, 0)
                .open(1, 0, 0)
                .keepalive(1)
                .keepalive(0),
        ),
        (
            "hold-timer-expires",
            Ops::new(128 | 2).connect(0, 0).open(0, 2, 0).keepalive(0).wait_ms(10_000),
        ),
        (
            "graceful-restart-helper",
            Ops::new(2)
                .connect(0, 0)
                .establish(0, 512 | 128)
                .update(0, 0x0c, 40, ATTRS)
                .close(0, true)
                .wait_ms(5000)
                .connect(0, 0)
                .establish(0, 512 | 128 | 64)
                .update(0, 0x00, 40, ATTRS)
                .end_of_rib(0, false)
                .notification(0, 6, 4)
                .wait_ms(130_000),
        ),
        (
            "max-prefix-teardown",
            Ops::new(2 | 16 | 32).connect(0, 0).establish(0, 0).update(0, 0x38, 100, ATTRS),
        ),
        (
            "dynamic-peers-reflected",
            Ops::new(2 | 8 | 64)
                .connect(1, 1)
                .connect(2, 2)
                .connect(3, 3)
                .establish(1, 0)
                .establish(2, 2)
                .update(1, 0x08, 9, ATTRS)
                .update(2, 0x04, 9, ATTRS)
                // CLUSTER_LIST holding our cluster id: a loop, not taken.
                .update(1, 0x00, 20, ATTRS | 4096)
                .wait_ms(2000),
        ),
        (
            "ebgp-loop-and-bad-next-hop",
            Ops::new(1 | 2)
                .connect(0, 0)
                .establish(0, 0)
                .update(0, 0x00, 1, 4 | 512)
                .update(0, 0x00, 2, 2 | (2 << 3) | 512)
                .update(0, 0x04, 3, 2 | 32 | 512),
        ),
        (
            "garbage-and-mutations",
            Ops::new(2)
                .connect(0, 0)
                .mutate(0, 0, 19, 3)
                .connect(1, 0)
                .raw(1, &[0xff; 18])
                .connect(2, 0)
                .establish(2, 0)
                .mutate(2, 2, 40, 0xff)
                .close(3, false),
        ),
        (
            "reconfigured-while-up",
            Ops::new(2)
                .connect(0, 0)
                .establish(0, 8)
                .route_refresh(0, true, 1)
                .reconfigure(0, 1)
                .reconfigure(1, 0)
                .wait_ms(1000)
                .reconfigure(2, 0),
        ),
    ];
    seeds.into_iter().map(|(n, o)| (n.to_string(), o.0)).collect()
}

// ----- cni_request -----

fn cni_request(root: &Path) -> Vec<(String, Vec<u8>)> {
    let doc = fs::read_to_string(root.join("docs/cni.md")).expect("docs/cni.md");
    let first = doc
        .split("```json")
        .nth(1)
        .and_then(|b| b.split("```").next())
        .expect("the network config of docs/cni.md")
        .to_string();
    let deploy = r#"{"cniVersion":"1.0.0","name":"tortie","type":"tortie","nodeName":"node-a","mtu":1480,"datastore":{"type":"kubernetes","kubeconfig":"/etc/cni/net.d/tortie-kubeconfig"}}"#;
    let add = ["ADD", "3f6c1c0ffee", "/var/run/netns/cni-1234", "eth0"];
    let k8s = "IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=web;K8S_POD_INFRA_CONTAINER_ID=3f6c1c0ffee";
    let seed = |stdin: &str, env: [&str; 4], args: &str, pod: &str, ns: &str| {
        let parts = [stdin, env[0], env[1], env[2], env[3], args, pod, ns];
        parts.join("\0").into_bytes()
    };
    vec![
        ("docs-add".into(), seed(&first, add, k8s, "", "")),
        ("deploy-kubernetes-add".into(), seed(deploy, add, k8s, "", "")),
        (
            "requested-ips".into(),
            seed(
                r#"{"cniVersion":"1.1.0","name":"podman","type":"tortie","assignIPv6":true,"runtimeConfig":{"ips":["10.244.0.50/24","fd00:10:244::5"]}}"#,
                add,
                "IP=10.244.0.51,10.244.0.50",
                "",
                "",
            ),
        ),
        (
            "annotations".into(),
            seed(
                deploy,
                add,
                k8s,
                "cni.projectcalico.org/ipAddrs=[\"10.244.1.5\", \"fd00:10:244::9\"]\ncni.projectcalico.org/ipFamilies=[\"IPv4\", \"IPv6\"]\ncni.projectcalico.org/ipv4pools=[\"default-ipv4-ippool\"]",
                "cni.projectcalico.org/ipv6pools=[\"fd00:10:244::/64\"]",
            ),
        ),
        (
            "namespace-pools".into(),
            seed(
                deploy,
                add,
                k8s,
                "",
                "cni.projectcalico.org/ipv4pools=[\"10.244.0.0/16\", \"old\"]\ncni.projectcalico.org/ipv6pools=[\"default-ipv6-ippool\"]",
            ),
        ),
        (
            "check-prev-result".into(),
            seed(
                r#"{"cniVersion":"1.0.0","name":"tortie","type":"tortie","prevResult":{"cniVersion":"1.0.0","interfaces":[{"name":"eth0","sandbox":"/var/run/netns/cni-1234"}],"ips":[{"address":"10.244.0.5/32","interface":0}]}}"#,
                ["CHECK", add[1], add[2], add[3]],
                k8s,
                "",
                "",
            ),
        ),
        (
            "gc-valid-attachments".into(),
            seed(
                r#"{"cniVersion":"1.1.0","name":"tortie","type":"tortie","cni.dev/valid-attachments":[{"containerID":"3f6c1c0ffee","ifname":"eth0"}]}"#,
                ["GC", "", "", ""],
                "",
                "",
                "",
            ),
        ),
        (
            "etcd-del".into(),
            seed(
                r#"{"cniVersion":"1.0.0","name":"tortie","type":"tortie","datastore":{"type":"etcd","endpoints":["http://10.0.0.1:2379"],"prefix":"/tortie"},"pools":["default-ipv4"],"strictAffinity":true,"timeoutSeconds":5}"#,
                ["DEL", add[1], "", add[3]],
                "",
                "",
                "",
            ),
        ),
        ("version".into(), seed("{\"cniVersion\":\"1.0.0\"}", ["VERSION", "", "", ""], "", "", "")),
    ]
}

// ----- resources_yaml -----

fn resources_yaml(root: &Path) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    let defaults = fs::read(root.join("deploy/defaults.yaml")).expect("deploy/defaults.yaml");
    out.push(("deploy-defaults".to_string(), defaults));
    for doc in ["docs/resources.md", "docs/operations.md"] {
        let text = fs::read_to_string(root.join(doc)).expect("a doc");
        for (i, block) in yaml_blocks(&text).into_iter().enumerate() {
            if block.contains("apiVersion:") {
                let name = doc.trim_start_matches("docs/").trim_end_matches(".md");
                out.push((format!("{name}-{i}"), block.into_bytes()));
            }
        }
    }
    for (name, file) in [
        ("config-tests-calico", "config/src/resources/tests.rs"),
        ("config-tests-node-status", "config/src/resources/node_status_tests.rs"),
    ] {
        let src = fs::read_to_string(root.join(file)).expect("a test file");
        if let Some(text) = src
            .split_once("const CALICO: &str = r#\"")
            .and_then(|(_, rest)| rest.split_once("\"#;"))
        {
            out.push((name.to_string(), text.0.as_bytes().to_vec()));
        }
    }
    out.push(("tortie-system-kinds".to_string(), SYSTEM_KINDS.as_bytes().to_vec()));
    out
}

/// The `yaml` code blocks of a Markdown text, unindented.
fn yaml_blocks(md: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur: Option<(usize, String)> = None;
    for line in md.lines() {
        let t = line.trim_start();
        match &mut cur {
            None if t == "```yaml" => cur = Some((line.len() - t.len(), String::new())),
            Some(_) if t == "```" => out.push(cur.take().unwrap().1),
            Some((indent, s)) => {
                s.push_str(line.get(*indent..).unwrap_or(t));
                s.push('\n');
            }
            None => {}
        }
    }
    out
}

/// One document of each kind the system writes (as `tortiectl get -o
/// yaml` shows them).
const SYSTEM_KINDS: &str = r#"apiVersion: tortie.io/v1
kind: WorkloadEndpoint
metadata:
  name: node-a-k8s-web-eth0
  namespace: default
spec:
  node: node-a
  orchestrator: k8s
  pod: web
  containerID: 3f6c1c0ffee
  endpoint: eth0
  interfaceName: tort0123456789a
  ipNetworks: [10.244.0.5/32, "fd00:10:244::5/128"]
  mac: ee:ee:ee:ee:ee:ee
---
apiVersion: tortie.io/v1
kind: Block
metadata:
  name: 10-244-0-0-30
spec:
  cidr: 10.244.0.0/30
  affinity: host:node-a
  allocations: [0, null, null, 1]
  unallocated: [1, 2]
  attributes:
    - handleID: tortie.3f6c1c0ffee.eth0
      secondary: {node: node-a, K8S_POD_NAME: web}
    - {}
---
apiVersion: tortie.io/v1
kind: BlockAffinity
metadata:
  name: node-a-10-244-0-0-30
spec:
  node: node-a
  cidr: 10.244.0.0/30
  state: Confirmed
---
apiVersion: tortie.io/v1
kind: Handle
metadata:
  name: tortie.3f6c1c0ffee.eth0
spec:
  handleID: tortie.3f6c1c0ffee.eth0
  block: {10.244.0.0/30: 1}
"#;
