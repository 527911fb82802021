//! Route programming benchmark: N /32 `via` routes
//! into an empty network namespace and out again, side by side in one run:
//!
//! - felix's kernel executor (`felix::kernel::apply::Executor`),
//! - `ip -batch` of the same routes,
//! - BIRD's kernel protocol exporting a static protocol with the same
//!   routes (timed until the kernel holds all of them; removal by
//!   `birdc disable`),
//!
//! then a resync of the unchanged table through felix's reconciler (writes,
//! time) and the memory a resync holds per route (desired + dumped).
//! Failures are checked: a few unreachable routes are mixed into felix's
//! batch and must be reported one by one.
//!
//! `cargo build --release -p tortie-bench --bin felix-route-bench &&
//!  target/release/felix-route-bench [ROUTES] [--no-bird] [--rounds K]`
//! (root; makes and removes its own namespaces `tfbench-<tag>-<pid>-*`).

use std::fmt::Write as _;
use std::io::Write as _;
use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use futures::TryStreamExt;
use ipnet::IpNet;
use rtnetlink::packet_route::route::{RouteProtocol, RouteType};
use rtnetlink::{Handle, RouteMessageBuilder};

use felix::desired::{compute, DesiredState, LearnedRoute, LocalNode, PeerNode};
use felix::kernel::apply::{Executor, Request};
use felix::kernel::{self, dump};
use felix::reconciler::{self, ReconcilerConfig};
use felix::route::{InstalledRoute, KernelRoute};

const GATEWAY: &str = "192.168.1.12";
/// Routes with an unreachable gateway mixed into felix's batch.
const BAD: usize = 10;

/// A namespace with `eth0` (veth, 192.168.1.11/24, up); processes inside
/// killed and the namespace deleted on drop.
struct Ns(tortie_testkit::netns::Netns);

impl Ns {
    fn new(tag: &str) -> Ns {
        let ns = Ns(tortie_testkit::netns::Netns::new(&format!("tfbench-{tag}"))
            .unwrap_or_else(|e| panic!("creating a netns: {e}")));
        ns.ip(&[
            "link", "add", "eth0", "type", "veth", "peer", "name", "eth0p",
        ]);
        ns.ip(&["addr", "add", "192.168.1.11/24", "dev", "eth0"]);
        ns.ip(&["link", "set", "eth0", "up"]);
        ns.ip(&["link", "set", "eth0p", "up"]);
        ns
    }
    fn name(&self) -> &str {
        self.0.name()
    }
    fn path(&self) -> PathBuf {
        self.0.path()
    }
    fn ip(&self, args: &[&str]) -> String {
        self.0.ip(args).unwrap_or_else(|e| panic!("{e}"))
    }
}

/// BIRD running in a namespace; killed on drop.
struct Bird {
    child: Child,
    sock: PathBuf,
    dir: PathBuf,
}

impl Drop for Bird {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Runs a command; panics with its stderr on failure; returns stdout.
fn sh(cmd: &str, args: &[&str]) -> String {
    tortie_testkit::netns::output(Command::new(cmd).args(args)).unwrap_or_else(|e| panic!("{e}"))
}

fn prefix(i: u32) -> Ipv4Addr {
    // 10.0.0.0 upwards, skipping nothing: /32s are all distinct.
    Ipv4Addr::from(0x0a00_0000 + i)
}

fn routes(n: u32) -> Vec<KernelRoute> {
    let gw: IpAddr = GATEWAY.parse().unwrap();
    (0..n)
        .map(|i| KernelRoute::via(IpNet::from(IpAddr::V4(prefix(i))), gw, "eth0", false))
        .collect()
}

fn rss_kib() -> u64 {
    let s = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    s.lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

/// Counts routes of protocol `proto` in table main (strict dump).
async fn count(handle: &Handle, proto: u8) -> usize {
    let mut filter = RouteMessageBuilder::<Ipv4Addr>::new()
        .protocol(RouteProtocol::from(proto))
        .kind(RouteType::Unspec)
        .build();
    filter.header.table = 254;
    let stream = handle.route().get(filter).execute();
    let all: Vec<_> = stream.try_collect().await.unwrap_or_default();
    all.iter()
        .filter(|m| m.header.protocol == RouteProtocol::from(proto))
        .count()
}

/// Whether `ip route get fibmatch`-style lookups of sample prefixes all hit
/// a route of `proto` (cheap progress check, no full dump).
fn samples_present(ns: &Ns, samples: &[Ipv4Addr], proto: &str, want: bool) -> bool {
    samples.iter().all(|s| {
        let out = Command::new("ip")
            .args(["-n", ns.name(), "route", "get", "fibmatch", &s.to_string()])
            .output();
        let hit = out.is_ok_and(|o| {
            let t = String::from_utf8_lossy(&o.stdout);
            t.starts_with(&s.to_string()) && t.contains(&format!("proto {proto}"))
        });
        hit == want
    })
}

struct Row {
    peer: &'static str,
    add: Duration,
    del: Duration,
    note: String,
}

async fn bench_felix(n: u32, noack: bool) -> Row {
    let ns = Ns::new(if noack { "felix" } else { "felixack" });
    let k = kernel::open(Some(&ns.path())).unwrap();
    let links = dump::links(&k.handle).await.unwrap();
    let mut exec = if noack {
        Executor::open(k.handle.clone(), Some(&ns.path())).unwrap()
    } else {
        Executor::new(k.handle.clone())
    };
    let mut reqs: Vec<Request> = routes(n).into_iter().map(Request::Add).collect();
    // Unreachable gateways (off-subnet, no onlink): each must fail, named.
    let bad: Vec<Request> = (0..BAD as u32)
        .map(|i| {
            Request::Add(KernelRoute::via(
                IpNet::from(IpAddr::V4(Ipv4Addr::from(0x0b00_0000 + i))),
                "172.31.0.1".parse().unwrap(),
                "eth0",
                false,
            ))
        })
        .collect();
    let mid = reqs.len() / 2;
    reqs.splice(mid..mid, bad);
    let t = Instant::now();
    let rep = exec.execute(reqs, &links).await;
    let add = t.elapsed();
    let installed = count(&k.handle, kernel::TORTIE_RT_PROTO).await;
    assert_eq!(installed, n as usize, "felix installed {installed} of {n}");
    assert_eq!(rep.failures.len(), BAD, "failures: {:?}", &rep.failures[..]);
    assert!(rep.failures.iter().all(|f| f.message.contains("11.0.0.")));
    let dels: Vec<Request> = routes(n)
        .into_iter()
        .map(|route| {
            Request::Delete(InstalledRoute {
                route,
                metric: None,
            })
        })
        .collect();
    let t = Instant::now();
    let rep2 = exec.execute(dels, &links).await;
    let del = t.elapsed();
    assert!(rep2.failures.is_empty(), "{:?}", rep2.failures.first());
    assert_eq!(count(&k.handle, kernel::TORTIE_RT_PROTO).await, 0);
    Row {
        peer: if noack {
            "felix executor, batched without ACK (default)"
        } else {
            "felix executor, one ACK per request (128 in flight)"
        },
        add,
        del,
        note: format!(
            "{} writes; {BAD} bad routes mixed in, {} reported (errno {:?})",
            rep.writes,
            rep.failures.len(),
            rep.failures.first().and_then(|f| f.errno)
        ),
    }
}

/// The floor: the same routes pre-encoded (not timed), sent 256 per
/// `sendmsg` without ACK on a raw socket, error replies drained after each
/// send. What felix's no-ACK executor could reach with free userspace work.
fn bench_floor(n: u32) -> Row {
    use rtnetlink::packet_core::{NetlinkMessage, NLM_F_CREATE, NLM_F_EXCL, NLM_F_REQUEST};
    use rtnetlink::packet_route::RouteNetlinkMessage;
    use rtnetlink::sys::{protocols::NETLINK_ROUTE, Socket, SocketAddr};
    let ns = Ns::new("floor");
    let idx: u32 = ns
        .ip(&["-j", "link", "show", "eth0"])
        .split("\"ifindex\":")
        .nth(1)
        .and_then(|r| r.split(',').next()?.trim().parse().ok())
        .expect("eth0 ifindex");
    let path = ns.path();
    std::thread::spawn(move || {
        tortie_testkit::netns::enter_path(&path).expect("enter the namespace");
        let mut sock = Socket::new(NETLINK_ROUTE).unwrap();
        sock.bind_auto().unwrap();
        sock.connect(&SocketAddr::new(0, 0)).unwrap();
        let _ = sock.set_cap_ack(true);
        sock.set_non_blocking(true).unwrap();
        let gw: Ipv4Addr = GATEWAY.parse().unwrap();
        let encode = |i: u32, del: bool| {
            let mut b = RouteMessageBuilder::<Ipv4Addr>::new()
                .destination_prefix(prefix(i), 32)
                .table_id(254)
                .protocol(RouteProtocol::from(116));
            if !del {
                b = b.gateway(gw).output_interface(idx);
            }
            let m = b.build();
            let (inner, flags) = if del {
                (RouteNetlinkMessage::DelRoute(m), NLM_F_REQUEST)
            } else {
                (
                    RouteNetlinkMessage::NewRoute(m),
                    NLM_F_REQUEST | NLM_F_CREATE | NLM_F_EXCL,
                )
            };
            let mut nl = NetlinkMessage::from(inner);
            nl.header.flags = flags;
            nl.header.sequence_number = i + 1;
            nl.finalize();
            let mut v = vec![0u8; nl.buffer_len()];
            nl.serialize(&mut v);
            v
        };
        let batches = |del: bool| -> Vec<Vec<u8>> {
            (0..n)
                .collect::<Vec<_>>()
                .chunks(256)
                .map(|c| c.iter().flat_map(|&i| encode(i, del)).collect())
                .collect()
        };
        let run = |bs: &[Vec<u8>]| {
            let mut errors = 0usize;
            let mut rbuf = vec![0u8; 65536];
            let t = Instant::now();
            for b in bs {
                sock.send(b, 0).unwrap();
                loop {
                    rbuf.clear();
                    match sock.recv(&mut rbuf, 0) {
                        Ok(_) => errors += 1,
                        Err(_) => break,
                    }
                }
            }
            (t.elapsed(), errors)
        };
        let (add, e1) = run(&batches(false));
        let (del, e2) = run(&batches(true));
        assert_eq!((e1, e2), (0, 0), "floor run had error replies");
        Row {
            peer: "floor: pre-encoded, 256 per sendmsg, no ACK",
            add,
            del,
            note: "encoding not timed; same socket settings as felix".into(),
        }
    })
    .join()
    .unwrap()
}

fn bench_ip_batch(n: u32) -> Row {
    let ns = Ns::new("ipbatch");
    let dir = std::env::temp_dir();
    let add_file = dir.join(format!("tfbench-{}-add", std::process::id()));
    let del_file = dir.join(format!("tfbench-{}-del", std::process::id()));
    let mut add = String::with_capacity(n as usize * 48);
    let mut del = String::with_capacity(n as usize * 32);
    for i in 0..n {
        let _ = writeln!(
            add,
            "route add {}/32 via {GATEWAY} dev eth0 proto 116",
            prefix(i)
        );
        let _ = writeln!(del, "route del {}/32 proto 116", prefix(i));
    }
    std::fs::write(&add_file, add).unwrap();
    std::fs::write(&del_file, del).unwrap();
    let run = |f: &PathBuf| {
        let t = Instant::now();
        sh("ip", &["-n", ns.name(), "-batch", f.to_str().unwrap()]);
        t.elapsed()
    };
    let a = run(&add_file);
    let count_lines = || {
        ns.ip(&["-4", "route", "show", "proto", "116"])
            .lines()
            .count()
    };
    assert_eq!(count_lines(), n as usize);
    let d = run(&del_file);
    assert_eq!(count_lines(), 0);
    let _ = std::fs::remove_file(add_file);
    let _ = std::fs::remove_file(del_file);
    Row {
        peer: "ip -batch",
        add: a,
        del: d,
        note: "one request, one ACK, in turn".into(),
    }
}

async fn bench_bird(n: u32) -> Option<Row> {
    let ns = Ns::new("bird");
    let dir = std::env::temp_dir().join(format!("tfbench-{}-bird", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let conf = dir.join("bird.conf");
    let sock = dir.join("bird.ctl");
    let mut c = String::with_capacity(n as usize * 48);
    c.push_str("router id 192.168.1.11;\nprotocol device { scan time 10; }\n");
    c.push_str("protocol kernel kern1 { ipv4 { export all; import none; }; scan time 60; }\n");
    c.push_str("protocol static static1 { disabled; ipv4;\n");
    for i in 0..n {
        let _ = writeln!(c, "  route {}/32 via {GATEWAY};", prefix(i));
    }
    c.push_str("}\n");
    std::fs::write(&conf, c).unwrap();
    let k = kernel::open(Some(&ns.path())).unwrap();
    let samples: Vec<Ipv4Addr> = (0..16).map(|j| prefix(j * (n / 16) + n / 32)).collect();
    let child = Command::new("ip")
        .args(["netns", "exec", ns.name(), "bird", "-f", "-c"])
        .arg(&conf)
        .arg("-s")
        .arg(&sock)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn();
    let Ok(child) = child else {
        eprintln!("skipping BIRD: cannot start bird");
        return None;
    };
    let bird = Bird {
        child,
        sock: sock.clone(),
        dir,
    };
    let deadline = Duration::from_secs(60);
    // BIRD up (config parsed), static protocol still disabled: the clock
    // starts at `birdc enable`, so only route installation is timed.
    let up = Instant::now();
    let birdc = |cmd: &str| {
        Command::new("birdc")
            .arg("-s")
            .arg(&bird.sock)
            .args(cmd.split(' '))
            .output()
            .is_ok_and(|o| {
                o.status.success() && !String::from_utf8_lossy(&o.stdout).contains("rror")
            })
    };
    while !birdc("show status") {
        if up.elapsed() > deadline {
            eprintln!("BIRD control socket did not come up within {deadline:?}");
            return None;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let t = Instant::now();
    if !birdc("enable static1") {
        eprintln!("birdc enable static1 failed");
        return None;
    }
    let add = wait_bird(&ns, &k.handle, &samples, n, true, t, deadline).await;
    let Some(add) = add else {
        eprintln!("BIRD did not install {n} routes within {deadline:?}");
        return None;
    };
    let t = Instant::now();
    if !birdc("disable static1") {
        eprintln!("birdc disable static1 failed");
        return None;
    }
    let del = wait_bird(&ns, &k.handle, &samples, n, false, t, deadline).await?;
    drop(bird);
    Some(Row {
        peer: "BIRD 2.0.12 kernel protocol",
        add,
        del,
        note: "from `birdc enable static1` (BIRD up, config parsed) until all in the kernel; removal: `birdc disable static1`".into(),
    })
}

/// Waits until BIRD's routes are all in the kernel (`want`) or all gone:
/// sample lookups first, then one counting dump; `None` after `deadline`.
async fn wait_bird(
    ns: &Ns,
    handle: &Handle,
    samples: &[Ipv4Addr],
    n: u32,
    want: bool,
    since: Instant,
    deadline: Duration,
) -> Option<Duration> {
    loop {
        if samples_present(ns, samples, "bird", want) {
            let c = count(handle, 12).await;
            if (want && c == n as usize) || (!want && c == 0) {
                return Some(since.elapsed());
            }
        }
        if since.elapsed() > deadline {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn resync_state(n: u32) -> DesiredState {
    DesiredState {
        local_node: LocalNode {
            name: "a".into(),
            addresses: vec!["192.168.1.11/24".parse().unwrap()],
            underlay: "eth0".into(),
            vteps: vec![],
        },
        nodes: vec![PeerNode {
            name: "b".into(),
            addresses: vec![GATEWAY.parse().unwrap()],
            vteps: vec![],
        }],
        learned: (0..n)
            .map(|i| LearnedRoute {
                prefix: IpNet::from(IpAddr::V4(prefix(i))),
                next_hop: GATEWAY.parse().unwrap(),
            })
            .collect(),
        ..DesiredState::default()
    }
}

/// Resync of an unchanged table through the reconciler, plus memory.
async fn bench_resync(n: u32) -> String {
    let ns = Ns::new("resync");
    let state = resync_state(n);
    let mut h = reconciler::start(ReconcilerConfig {
        netns: Some(ns.path()),
        ..ReconcilerConfig::default()
    })
    .unwrap();
    h.set_desired(state.clone()).await.unwrap();
    let s = h
        .wait_for(Duration::from_secs(60), |s| s.passes > 0)
        .await
        .expect("no first pass");
    let first = s.last_pass.clone().unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let before = h.status().passes;
    h.resync().await.unwrap();
    let s2 = h
        .wait_for(Duration::from_secs(60), |s| s.passes > before)
        .await
        .expect("no resync");
    let second = s2.last_pass.unwrap();
    h.shutdown().await;
    // Memory a resync holds (desired routes + the dump of the table),
    // measured in a fresh process so freed memory of the runs above does
    // not hide it.
    let exe = std::env::current_exe().unwrap();
    let out = sh(
        exe.to_str().unwrap(),
        &["--memory", &n.to_string(), ns.name()],
    );
    let (per_route, delta) = out.trim().split_once(' ').unwrap_or(("?", "?"));
    format!(
        "| reconciler first pass (empty -> {n}) | {:.3} s | writes {} |\n\
         | reconciler resync, unchanged {n} | {:.3} s | writes {}, failures {} |\n\
         | memory held by a resync | {per_route} B/route | desired + dump, RSS delta {delta} KiB in a fresh process |\n",
        first.duration.as_secs_f64(),
        first.writes,
        second.duration.as_secs_f64(),
        second.writes,
        second.failures.len(),
    )
}

/// "median s (min-max)" of `v`.
fn spread(v: &[f64]) -> String {
    let mut v = v.to_vec();
    v.sort_by(f64::total_cmp);
    let med = if v.len() % 2 == 1 {
        v[v.len() / 2]
    } else {
        (v[v.len() / 2 - 1] + v[v.len() / 2]) / 2.0
    };
    format!("{med:.3} s ({:.3}-{:.3})", v[0], v[v.len() - 1])
}

/// `--memory N NS`: RSS held by computing the desired routes for N learned
/// /32s and dumping NS's table of ours; prints "bytes_per_route kib".
async fn memory(n: u32, ns: &str) {
    let k = kernel::open(Some(&PathBuf::from("/run/netns").join(ns))).unwrap();
    let state = resync_state(n);
    let rss0 = rss_kib();
    let desired = compute(&state);
    let links = dump::links(&k.handle).await.unwrap();
    let installed = dump::routes(&k.handle, &links).await.unwrap();
    let rss1 = rss_kib();
    assert_eq!(installed.len(), desired.routes.len());
    let delta = rss1.saturating_sub(rss0);
    println!("{:.0} {delta}", (delta * 1024) as f64 / f64::from(n));
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("--memory") {
        let n = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(100_000);
        memory(n, args.get(2).map_or("", String::as_str)).await;
        return;
    }
    let n: u32 = args.iter().find_map(|a| a.parse().ok()).unwrap_or(100_000);
    let rounds: usize = args
        .iter()
        .position(|a| a == "--rounds")
        .and_then(|i| args.get(i + 1)?.parse().ok())
        .unwrap_or(1);
    let no_bird = args.iter().any(|a| a == "--no-bird");
    let mut out = String::new();
    let _ = writeln!(
        out,
        "| peer | add {n}: median (min-max) | remove {n}: median (min-max) | note |\n|---|---|---|---|"
    );
    // (peer, adds, removes, note), in the order first seen.
    let mut all: Vec<(&'static str, Vec<f64>, Vec<f64>, String)> = Vec::new();
    for round in 0..rounds {
        let mut rows = vec![
            bench_floor(n),
            bench_felix(n, true).await,
            bench_felix(n, false).await,
            bench_ip_batch(n),
        ];
        if !no_bird {
            match bench_bird(n).await {
                Some(r) => rows.push(r),
                None => eprintln!("BIRD row skipped (see above)"),
            }
        }
        for r in rows {
            eprintln!(
                "round {}: {}: add {:.3} s, remove {:.3} s",
                round + 1,
                r.peer,
                r.add.as_secs_f64(),
                r.del.as_secs_f64()
            );
            match all.iter_mut().find(|e| e.0 == r.peer) {
                Some(e) => {
                    e.1.push(r.add.as_secs_f64());
                    e.2.push(r.del.as_secs_f64());
                }
                None => all.push((
                    r.peer,
                    vec![r.add.as_secs_f64()],
                    vec![r.del.as_secs_f64()],
                    r.note,
                )),
            }
        }
    }
    for (peer, adds, dels, note) in &all {
        let _ = writeln!(
            out,
            "| {peer} | {} | {} | {note} |",
            spread(adds),
            spread(dels)
        );
    }
    let _ = writeln!(out, "\n| resync | time | note |\n|---|---|---|");
    out.push_str(&bench_resync(n).await);
    print!("{out}");
    let _ = std::io::stdout().flush();
}
