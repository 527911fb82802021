//! The node benchmarks in order, every daemon at every size in one run.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Result;
use nix::sys::signal::Signal;

use super::report::{median_max, ConvergenceRow, LifecycleRow, ScaleRow};
use super::{Bed, Daemon, Topology};

/// What to run.
#[derive(Clone, Debug)]
pub struct Options {
    /// Where tortie-node, tortie-cni and tortiectl are.
    pub bin_dir: PathBuf,
    pub daemons: Vec<Daemon>,
    /// Full-mesh sizes for convergence (10 and 30).
    pub sizes: Vec<usize>,
    /// Claims and releases per size.
    pub trials: usize,
    /// The size at which bring-up's ping matrix, heal and restart are
    /// measured too (one of `sizes`).
    pub lifecycle_nodes: usize,
    pub heal_trials: usize,
    /// Nodes in the reflector topology (0: skip).
    pub scale: usize,
    pub scale_trials: usize,
    /// Profiling: tortie-node's log level and where the logs are kept.
    pub trace: Option<(String, PathBuf)>,
}

/// Everything measured, and what failed.
#[derive(Debug, Default)]
pub struct Results {
    pub convergence: Vec<ConvergenceRow>,
    pub lifecycle: Vec<LifecycleRow>,
    pub scale: Vec<ScaleRow>,
    pub errors: Vec<String>,
}

/// How long the daemons get after bring-up before anything is timed
/// (restart markers, End-of-RIB, deferral).
const SETTLE: Duration = Duration::from_secs(3);

/// Runs the node benchmarks.
pub fn run(o: &Options) -> Result<Results> {
    let mut r = Results::default();
    for &n in &o.sizes {
        for &d in &o.daemons {
            crate::stop::check()?;
            eprintln!("node: {} x{n}, full mesh ...", d.label());
            if let Err(e) = mesh(o, d, n, &mut r) {
                r.errors.push(format!("{} at {n} nodes: {e:#}", d.label()));
            }
        }
    }
    if o.scale > 0 {
        for &d in &o.daemons {
            crate::stop::check()?;
            eprintln!("node: {} x{}, one reflector ...", d.label(), o.scale);
            match scale(o, d) {
                Ok(row) => r.scale.push(row),
                Err(e) => r.errors.push(format!(
                    "{} at {} nodes (reflector): {e:#}",
                    d.label(),
                    o.scale
                )),
            }
        }
    }
    Ok(r)
}

fn with_diagnostics<T>(bed: &Bed, res: Result<T>) -> Result<T> {
    res.map_err(|e| {
        let diag = bed.diagnostics();
        let short: String = diag.chars().take(3000).collect();
        e.context(short)
    })
}

fn mesh(o: &Options, d: Daemon, n: usize, r: &mut Results) -> Result<()> {
    let mut bed = Bed::new(d, Topology::Mesh, n, &o.bin_dir)?;
    if let Some((level, dir)) = &o.trace {
        bed.trace_nodes(level, dir);
    }
    let res = bed.bring_up();
    let bring_up = with_diagnostics(&bed, res)?;
    let res = bed.wait_complete(Duration::from_secs(30));
    with_diagnostics(&bed, res)?;
    let matrix = if n == o.lifecycle_nodes {
        Some(bed.ping_matrix(n))
    } else {
        None
    };
    std::thread::sleep(SETTLE);
    let cpu0 = bed.cpu_secs()?;
    let res = bed.convergence(o.trials);
    let trials = with_diagnostics(&bed, res)?;
    let cpu = Duration::from_secs_f64((bed.cpu_secs()? - cpu0).max(0.0) / trials.len() as f64);
    let mem = bed.memory()?;
    let rss_kib = median_max(&mem.iter().map(|m| m.rss_kib).collect::<Vec<_>>());
    let anon_kib = median_max(&mem.iter().map(|m| m.anon_kib).collect::<Vec<_>>());
    r.convergence.push(ConvergenceRow {
        daemon: d,
        topology: Topology::Mesh,
        nodes: n,
        bring_up,
        trials,
        cpu_per_trial: cpu,
        rss_kib,
        anon_kib,
    });
    if let Some(matrix) = matrix {
        let res = bed.heal(o.heal_trials);
        let heal = with_diagnostics(&bed, res)?;
        let res = bed.restart(Signal::SIGKILL);
        let kill = with_diagnostics(&bed, res)?;
        std::thread::sleep(SETTLE);
        let res = bed.restart(Signal::SIGTERM);
        let term = with_diagnostics(&bed, res)?;
        r.lifecycle.push(LifecycleRow {
            daemon: d,
            nodes: n,
            bring_up,
            matrix,
            heal,
            kill,
            term,
        });
    }
    Ok(())
}

fn scale(o: &Options, d: Daemon) -> Result<ScaleRow> {
    let mut bed = Bed::new(d, Topology::Reflector, o.scale, &o.bin_dir)?;
    if let Some((level, dir)) = &o.trace {
        bed.trace_nodes(level, dir);
    }
    let res = bed.bring_up();
    let bring_up = with_diagnostics(&bed, res)?;
    std::thread::sleep(SETTLE);
    let mem = bed.memory()?;
    let idle_cpu = bed.idle_cpu(Duration::from_secs(10))?;
    let res = bed.convergence(o.scale_trials);
    let trials = with_diagnostics(&bed, res)?;
    Ok(ScaleRow {
        daemon: d,
        nodes: o.scale,
        bring_up,
        rr_rss_kib: mem[0].rss_kib,
        rss_kib: median_max(&mem[1..].iter().map(|m| m.rss_kib).collect::<Vec<_>>()),
        anon_kib: median_max(&mem[1..].iter().map(|m| m.anon_kib).collect::<Vec<_>>()),
        idle_cpu,
        trials,
    })
}
