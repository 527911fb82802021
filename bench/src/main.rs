//! `tortie-bench`: runs the issue-3 benchmarks and prints Markdown tables;
//! `--write-doc` also updates the generated sections of
//! `docs/benchmarks.md`. Needs root (namespaces) and, for tortie-rr, a
//! release build (`cargo build --release -p tortie-rr`).

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use clap::{Parser, ValueEnum};
use tortie_bench::receivers::Kind;
use tortie_bench::{fanout, find_tortie_rr, ingest, report};

/// Bulk ingest, RR fan-out and keepalives under load: tortie-rr, BIRD, FRR
/// and GoBGP in the same run.
#[derive(Debug, Parser)]
#[command(name = "tortie-bench")]
struct Cli {
    /// Which benchmark.
    #[arg(value_enum)]
    which: Which,
    /// Small sizes (10k routes, 10 clients x 1k routes, 4 s of keepalive load, 1 repetition): a minute.
    #[arg(long)]
    quick: bool,
    /// Receivers, comma-separated: tortie, bird, frr, gobgp.
    #[arg(long, default_value = "tortie,bird,frr,gobgp", value_delimiter = ',')]
    receivers: Vec<String>,
    /// Routes for ingest and keepalive (default 100000; quick 10000).
    #[arg(long)]
    routes: Option<u32>,
    /// RR clients for fan-out (default 100; quick 10).
    #[arg(long)]
    clients: Option<usize>,
    /// Routes for fan-out (default 10000; quick 1000).
    #[arg(long)]
    fanout_routes: Option<u32>,
    /// Keepalive: announce/withdraw the table for at least this long, seconds (default 10; quick 4).
    #[arg(long)]
    load_secs: Option<u64>,
    /// The tortie-rr binary (default: $TORTIE_RR_BIN, the one beside this binary, target/release, target/debug).
    #[arg(long)]
    tortie_rr: Option<PathBuf>,
    /// Run ingest and fan-out this many times, receivers interleaved; the
    /// tables show the median run (default 3; quick 1).
    #[arg(long)]
    repeat: Option<usize>,
    /// Update this Markdown file's generated sections (e.g. docs/benchmarks.md).
    #[arg(long)]
    write_doc: Option<PathBuf>,
    /// How often tortie-rr and BIRD are asked for their Loc-RIB size, ms
    /// (the time's resolution; FRR and GoBGP are asked every 100 ms).
    #[arg(long, default_value_t = 1.0)]
    poll_ms: f64,
    /// node: full-mesh sizes (default 10,30; quick 5). Bring-up's ping
    /// matrix, heal and restart run at the first.
    #[arg(long, value_delimiter = ',')]
    nodes: Vec<usize>,
    /// node: block claims and releases per size (default 20; quick 5).
    #[arg(long)]
    trials: Option<usize>,
    /// node: nodes in the route-reflector topology, 0 to skip (default 100; quick 0).
    #[arg(long)]
    scale: Option<usize>,
    /// node: daemons, comma-separated: tortie, bird.
    #[arg(long, default_value = "tortie,bird", value_delimiter = ',')]
    daemons: Vec<String>,
    /// node: where tortie-node, tortie-cni and tortiectl are (default: the
    /// workspace's target/release).
    #[arg(long)]
    bin_dir: Option<PathBuf>,
    /// node, profiling: tortie-node logs at this level (e.g. debug: each
    /// stage of a claim, timed) and the logs are kept in --keep-logs.
    #[arg(long, requires = "keep_logs")]
    node_log_level: Option<String>,
    /// node, profiling: where the node logs are copied before each lab
    /// goes away.
    #[arg(long, requires = "node_log_level")]
    keep_logs: Option<PathBuf>,
    /// k8s-reach: pods started one after another (default 50; quick 5);
    /// k8s-watch: pods created and deleted (default 1000; quick 60).
    /// k8s-watch takes its node count from --nodes (default 3).
    #[arg(long)]
    pods: Option<usize>,
    /// filter: rules of the import filter (default 100).
    #[arg(long, default_value_t = 100)]
    filter_rules: u32,
}

/// The benchmarks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Which {
    Ingest,
    Fanout,
    Keepalive,
    All,
    /// Bulk ingest through an import filter of --filter-rules rules
    /// (BGPFilter-shaped for tortie-rr, BIRD's own for BIRD) against none,
    /// tortie-rr and BIRD in the same run.
    Filter,
    /// In-process ingest over loopback into the bgp-speaker library (no
    /// daemons, no root; for profiling the receive path).
    Loopback,
    /// The node agent: bring-up, convergence, heal, restart and scale,
    /// tortie-node next to BIRD as Calico runs it.
    Node,
    /// Kubernetes: pod start to reachable from another node, on real
    /// kubelets with deploy/ applied.
    K8sReach,
    /// Kubernetes: the agents' CPU, memory and API requests while pods
    /// are created and deleted across the nodes.
    K8sWatch,
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    tortie_bench::stop::install()?;
    if !(cli.poll_ms.is_finite() && (0.1..=1000.0).contains(&cli.poll_ms)) {
        bail!(
            "--poll-ms must be between 0.1 and 1000, not {}",
            cli.poll_ms
        );
    }
    if cli.which == Which::Node {
        return node(&cli);
    }
    if matches!(cli.which, Which::K8sReach | Which::K8sWatch) {
        return k8s(&cli);
    }
    tortie_bench::receivers::set_fast_poll(std::time::Duration::from_secs_f64(
        cli.poll_ms / 1000.0,
    ));
    let kinds = cli
        .receivers
        .iter()
        .map(|s| Kind::parse(s))
        .collect::<Result<Vec<_>>>()?;
    let bin = match cli.tortie_rr.clone().or_else(find_tortie_rr) {
        Some(b) => b,
        None if !kinds.contains(&Kind::Tortie) => PathBuf::new(),
        None => bail!(
            "no tortie-rr binary: run `cargo build --release -p tortie-rr` or pass --tortie-rr"
        ),
    };
    let routes = cli
        .routes
        .unwrap_or(if cli.quick { 10_000 } else { 100_000 });
    let clients = cli.clients.unwrap_or(if cli.quick { 10 } else { 100 });
    let fanout_routes = cli
        .fanout_routes
        .unwrap_or(if cli.quick { 1_000 } else { 10_000 });
    let repeat = cli.repeat.unwrap_or(if cli.quick { 1 } else { 3 }).max(1);
    let load_secs = cli.load_secs.unwrap_or(if cli.quick { 4 } else { 10 });
    if routes == 0 || fanout_routes == 0 || clients == 0 || clients > 2500 {
        bail!("--routes and --fanout-routes must be at least 1, --clients 1..=2500");
    }
    if cli.which == Which::Loopback {
        let times = tortie_bench::loopback::ingest(routes, repeat)?;
        for t in &times {
            println!(
                "loopback ingest of {routes} routes: {:.4} s ({:.0} ns/route)",
                t,
                t * 1e9 / f64::from(routes)
            );
        }
        let mut sorted = times.clone();
        sorted.sort_by(f64::total_cmp);
        let median = sorted[sorted.len() / 2];
        println!(
            "median of {}: {median:.4} s ({:.0} ns/route)",
            sorted.len(),
            median * 1e9 / f64::from(routes)
        );
        return Ok(());
    }
    let header = run_header(&bin, kinds.contains(&Kind::Tortie));
    let mut failed = false;
    if matches!(cli.which, Which::Ingest | Which::All) {
        let mut runs = vec![Vec::new(); kinds.len()];
        let mut errors = Vec::new();
        for rep in 1..=repeat {
            for (i, &k) in kinds.iter().enumerate() {
                tortie_bench::stop::check()?;
                eprintln!("ingest {rep}/{repeat}: {} ({routes} routes) ...", k.label());
                match ingest::ingest(k, routes, &bin) {
                    Ok(r) => runs[i].push(r),
                    Err(e) => errors.push(format!("{} (run {rep}): {e:#}", k.label())),
                }
            }
        }
        let rows: Vec<_> = runs
            .into_iter()
            .filter_map(|v| report::median(v, |r| r.secs, |r, all| r.runs = all))
            .collect();
        failed |= !errors.is_empty();
        let body = section(
            "Bulk ingest",
            &header,
            &report::ingest_table(&rows),
            &errors,
        );
        println!("{body}");
        write(&cli, "ingest", &body)?;
    }
    if cli.which == Which::Filter {
        failed |= filter(&cli, &kinds, routes, repeat, &bin, &header)?;
    }
    if matches!(cli.which, Which::Fanout | Which::All) {
        let mut runs = vec![Vec::new(); kinds.len()];
        let mut errors = Vec::new();
        for rep in 1..=repeat {
            for (i, &k) in kinds.iter().enumerate() {
                tortie_bench::stop::check()?;
                eprintln!(
                    "fanout {rep}/{repeat}: {} ({clients} clients x {fanout_routes} routes) ...",
                    k.label()
                );
                match fanout::fanout(k, clients, fanout_routes, &bin) {
                    Ok(r) => runs[i].push(r),
                    Err(e) => errors.push(format!("{} (run {rep}): {e:#}", k.label())),
                }
            }
        }
        let rows: Vec<_> = runs
            .into_iter()
            .filter_map(|v| report::median(v, |r| r.secs, |r, all| r.runs = all))
            .collect();
        failed |= !errors.is_empty();
        let body = section("RR fan-out", &header, &report::fanout_table(&rows), &errors);
        println!("{body}");
        write(&cli, "fanout", &body)?;
    }
    if matches!(cli.which, Which::Keepalive | Which::All) {
        let mut rows = Vec::new();
        let mut errors = Vec::new();
        for &k in &kinds {
            tortie_bench::stop::check()?;
            eprintln!(
                "keepalive: {} ({routes} routes, {load_secs} s) ...",
                k.label()
            );
            match ingest::keepalive(k, routes, load_secs, &bin) {
                Ok(r) => {
                    failed |= r.probe_closed.is_some();
                    rows.push(r)
                }
                Err(e) => errors.push(format!("{}: {e:#}", k.label())),
            }
        }
        failed |= !errors.is_empty();
        let body = section(
            "Keepalives under load",
            &header,
            &report::keepalive_table(&rows),
            &errors,
        );
        println!("{body}");
        write(&cli, "keepalive", &body)?;
    }
    if failed {
        bail!("some measurements failed (see above)");
    }
    Ok(())
}

/// `tortie-bench filter`: each of `kinds` (tortie-rr and BIRD only) with
/// no filter and with `--filter-rules` rules, interleaved, `repeat`
/// times; whether a run failed.
fn filter(
    cli: &Cli,
    kinds: &[Kind],
    routes: u32,
    repeat: usize,
    bin: &Path,
    header: &str,
) -> Result<bool> {
    let kinds: Vec<Kind> = kinds
        .iter()
        .copied()
        .filter(|k| matches!(k, Kind::Tortie | Kind::Bird))
        .collect();
    if kinds.is_empty() {
        bail!("filter compares tortie-rr and BIRD: --receivers tortie,bird");
    }
    let cases: Vec<(Kind, u32)> = kinds
        .iter()
        .flat_map(|&k| [(k, 0), (k, cli.filter_rules)])
        .collect();
    let mut runs = vec![Vec::new(); cases.len()];
    let mut errors = Vec::new();
    for rep in 1..=repeat {
        for (i, &(k, rules)) in cases.iter().enumerate() {
            tortie_bench::stop::check()?;
            eprintln!(
                "filter {rep}/{repeat}: {} ({routes} routes, {rules} rules) ...",
                k.label()
            );
            match ingest::ingest_filtered(k, routes, bin, rules) {
                Ok(r) => runs[i].push(r),
                Err(e) => errors.push(format!("{} {rules} rules (run {rep}): {e:#}", k.label())),
            }
        }
    }
    let rows: Vec<_> = runs
        .into_iter()
        .filter_map(|v| report::median(v, |r| r.secs, |r, all| r.runs = all))
        .collect();
    let body = section(
        "Route filters: ingest through an import filter",
        header,
        &report::filter_table(&rows),
        &errors,
    );
    println!("{body}");
    write(cli, "filter", &body)?;
    Ok(!errors.is_empty())
}

/// `tortie-bench node`.
fn node(cli: &Cli) -> Result<()> {
    use tortie_bench::node::{self, report, run};
    let sizes = if cli.nodes.is_empty() {
        if cli.quick {
            vec![5]
        } else {
            vec![10, 30]
        }
    } else {
        cli.nodes.clone()
    };
    if sizes.iter().any(|n| !(3..=200).contains(n)) {
        bail!("--nodes: each size between 3 and 200");
    }
    let scale = cli.scale.unwrap_or(if cli.quick { 0 } else { 100 });
    if scale != 0 && !(3..=200).contains(&scale) {
        bail!("--scale: 0, or between 3 and 200");
    }
    let trials = cli.trials.unwrap_or(if cli.quick { 5 } else { 20 });
    if !(1..=224).contains(&trials) {
        bail!("--trials: between 1 and 224");
    }
    let opts = run::Options {
        bin_dir: cli.bin_dir.clone().unwrap_or_else(node::default_bin_dir),
        daemons: cli
            .daemons
            .iter()
            .map(|d| node::Daemon::parse(d))
            .collect::<Result<_>>()?,
        lifecycle_nodes: sizes[0],
        sizes,
        trials,
        heal_trials: if cli.quick { 3 } else { 5 },
        scale,
        scale_trials: trials.min(10),
        trace: cli.node_log_level.clone().zip(cli.keep_logs.clone()),
    };
    let header = format!(
        "{} Binaries: `{}`.",
        run_header(Path::new(""), false),
        opts.bin_dir.display()
    );
    let results = run::run(&opts)?;
    let mut body = format!(
        "### Node agent: convergence\n\n{header}\n\n{}",
        report::convergence_table(&results.convergence)
    );
    body.push_str(&format!(
        "\n### Node agent: bring-up, heal, restart ({} nodes)\n\n{}",
        opts.lifecycle_nodes,
        report::lifecycle_table(&results.lifecycle)
    ));
    if opts.scale > 0 {
        body.push_str(&format!(
            "\n### Node agent: scale ({} nodes, one route reflector)\n\n{}",
            opts.scale,
            report::scale_table(&results.scale)
        ));
    }
    for e in &results.errors {
        body.push_str(&format!("\n**failed**: {e}\n"));
    }
    println!("{body}");
    write(cli, "node", &body)?;
    if !results.errors.is_empty() {
        bail!("some measurements failed (see above)");
    }
    Ok(())
}

/// `tortie-bench k8s-reach | k8s-watch`.
fn k8s(cli: &Cli) -> Result<()> {
    use tortie_bench::k8s;
    let opts = k8s::Options {
        bench: if cli.which == Which::K8sReach {
            k8s::Bench::Reach
        } else {
            k8s::Bench::Watch
        },
        bin_dir: cli
            .bin_dir
            .clone()
            .unwrap_or_else(tortie_bench::node::default_bin_dir),
        quick: cli.quick,
        pods: cli.pods,
        nodes: cli.nodes.first().copied(),
    };
    let header = format!(
        "{} Binaries: `{}`.",
        run_header(Path::new(""), false),
        opts.bin_dir.display()
    );
    let body = format!("{header}\n\n{}", k8s::run(&opts)?);
    println!("{body}");
    write(cli, opts.bench.section(), &body)
}

/// Date, command and machine, printed above every table.
fn run_header(bin: &std::path::Path, tortie: bool) -> String {
    let cmd: Vec<String> = std::env::args().skip(1).collect();
    let date = capture("date", &["-u", "+%Y-%m-%d %H:%M UTC"]);
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines()
                .find(|l| l.starts_with("model name"))
                .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_string())
        })
        .unwrap_or_default();
    let mut h = format!(
        "Run {date}: `cargo run --release -p tortie-bench -- {}`; machine: {} cores ({cpu}), kernel {}, shared and noisy: only ratios within one run mean anything.",
        cmd.join(" "),
        capture("nproc", &[]),
        capture("uname", &["-r"]),
    );
    if tortie {
        h.push_str(&format!(" tortie-rr: `{}`.", bin.display()));
    }
    h
}

fn section(title: &str, header: &str, table: &str, errors: &[String]) -> String {
    let mut s = format!("### {title}\n\n{header}\n\n{table}");
    for e in errors {
        s.push_str(&format!("\n**failed**: {e}\n"));
    }
    s
}

fn write(cli: &Cli, name: &str, body: &str) -> Result<()> {
    if let Some(path) = &cli.write_doc {
        report::write_section(path, name, body)
            .with_context(|| format!("updating {}", path.display()))?;
        eprintln!("updated section {name} of {}", path.display());
    }
    Ok(())
}

fn capture(cmd: &str, args: &[&str]) -> String {
    std::process::Command::new(cmd)
        .args(args)
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default()
}
