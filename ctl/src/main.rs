//! `tortiectl`: see the library's documentation (`lib.rs`) and
//! `docs/operations.md`.

// The argument types' doc comments are `--help` text (clap), where
// `[NAME]` means an optional argument, not a rustdoc link.
#![allow(rustdoc::broken_intra_doc_links)]

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use clap::parser::ValueSource;
use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};
use tortie_config::node::{
    parse_datastore, DatastoreSetting, DEFAULT_DATASTORE, DEFAULT_ETCD_PREFIX,
};
use tortie_config::resources::{load_documents, Key};
use tortie_ctl::lab::{deployed, interrupt, report, Encap, Lab, LabSpec, Stack, DEFAULT_ROOT};
use tortie_ctl::resources::{self, Output};
use tortie_ctl::{explain, ipam, node_status, node_statuses, routes};

/// Tortie's command line.
#[derive(Debug, Parser)]
#[command(name = "tortiectl", version, about)]
struct Cli {
    /// The datastore: file:DIR, etcd:URL[,URL...] or kubernetes[:KUBECONFIG].
    #[arg(long, global = true, env = "TORTIE_DATASTORE", default_value = DEFAULT_DATASTORE)]
    datastore: String,
    /// Key prefix in etcd.
    #[arg(long, global = true, env = "TORTIE_ETCD_PREFIX", default_value = DEFAULT_ETCD_PREFIX)]
    etcd_prefix: String,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// The local node agent.
    Node {
        #[command(subcommand)]
        what: NodeCommand,
    },
    /// The local node's kernel routes of ours and why.
    Routes {
        /// The node agent's admin address.
        #[arg(long, env = "TORTIE_ADMIN", default_value = "127.0.0.1:9099")]
        admin: SocketAddr,
        #[arg(short, long, value_enum, default_value_t = Format::Table)]
        output: Format,
    },
    /// Why a route is (or is not) in this node's kernel: the owner, the
    /// BGP paths and why each lost, the filters that acted, the
    /// encapsulation decision, and what felix wants, found and last wrote.
    Explain {
        /// A prefix (10.244.1.0/26), an address (10.244.1.5) or
        /// namespace/pod.
        target: String,
        /// The node agent's admin address.
        #[arg(long, env = "TORTIE_ADMIN", default_value = "127.0.0.1:9099")]
        admin: SocketAddr,
        #[arg(short, long, value_enum, default_value_t = Format::Table)]
        output: Format,
    },
    /// Shows resources: KIND [NAME].
    Get {
        kind: String,
        name: Option<String>,
        #[arg(short, long, value_enum, default_value_t = Output::Table)]
        output: Output,
    },
    /// Creates or replaces the resources of a YAML file.
    Apply {
        #[arg(short, long, value_name = "FILE")]
        filename: PathBuf,
    },
    /// Deletes KIND NAME, or the resources of a file (-f).
    Delete {
        kind: Option<String>,
        name: Option<String>,
        #[arg(short, long, value_name = "FILE")]
        filename: Option<PathBuf>,
    },
    /// IP address management.
    Ipam {
        #[command(subcommand)]
        what: IpamCommand,
    },
    /// A local cluster in network namespaces, each node a real tortie-node.
    Lab {
        #[command(subcommand)]
        what: LabCommand,
    },
}

#[derive(Debug, Subcommand)]
enum NodeCommand {
    /// The BGP peers and sessions of this node (its agent's admin
    /// address), or of every node (their CalicoNodeStatus in the
    /// datastore, when --datastore or TORTIE_DATASTORE is given without
    /// an admin address, or with --node).
    Status {
        /// The node agent's admin address [default: 127.0.0.1:9099].
        #[arg(long, env = "TORTIE_ADMIN")]
        admin: Option<SocketAddr>,
        /// One node's sessions, from the datastore.
        #[arg(long, value_name = "NAME")]
        node: Option<String>,
        #[arg(short, long, value_enum, default_value_t = Format::Table)]
        output: Format,
    },
}

/// Where `node status` reads.
#[derive(Debug, PartialEq, Eq)]
enum StatusSource {
    /// One agent's `/status`.
    Admin(SocketAddr),
    /// The datastore's `CalicoNodeStatus` objects (of one node).
    Datastore(Option<String>),
}

/// The admin address `node status` reads without one given.
const DEFAULT_ADMIN: &str = "127.0.0.1:9099";

#[derive(Debug, Subcommand)]
enum IpamCommand {
    /// Pool usage.
    Show {
        /// Also every block with its owner.
        #[arg(long)]
        show_blocks: bool,
    },
}

#[derive(Debug, Subcommand)]
enum LabCommand {
    /// Builds the lab, prints its state and leaves it running.
    Up(LabArgs),
    /// Builds the lab, prints its state and the ping matrix, tears it down.
    Demo(LabArgs),
    /// Prints a running lab's state.
    Status(LabName),
    /// Tears a lab down.
    Down(LabName),
}

#[derive(Debug, clap::Args)]
struct LabName {
    /// The lab's name (namespaces tl-NAME-*).
    #[arg(long, default_value = "lab")]
    name: String,
    /// Where labs keep their state.
    #[arg(long, default_value = DEFAULT_ROOT)]
    root: PathBuf,
}

#[derive(Debug, clap::Args)]
struct LabArgs {
    #[command(flatten)]
    lab: LabName,
    /// Nodes (two thirds on subnet A, the rest behind the router on B).
    #[arg(long, default_value_t = 3)]
    nodes: usize,
    #[arg(long, default_value_t = 1)]
    pods_per_node: usize,
    /// Cross-subnet encapsulation.
    #[arg(long, value_enum, default_value_t = Encap::Auto)]
    encap: Encap,
    /// IP families of nodes and pods: ipv4, dual (an IPv6 pool too, pings
    /// over both) or ipv6 (IPv6 only).
    #[arg(long, value_enum, default_value_t = Stack::Ipv4)]
    stack: Stack,
    /// Where tortie-node and tortie-cni are [default: next to tortiectl].
    #[arg(long)]
    bin_dir: Option<PathBuf>,
    /// Keep the datastore in a real etcd (Debian etcd-server) instead of
    /// the file backend.
    #[arg(long)]
    etcd: bool,
    /// Keep the datastore in a real Kubernetes API server (built by
    /// scripts/k8s.sh) on the lab's etcd, instead of the file backend.
    #[arg(long, conflicts_with = "etcd")]
    kubernetes: bool,
    /// With --kubernetes: real Kubernetes nodes, each a containerd and a
    /// kubelet; Tortie installed from deploy/ (tortie-node a DaemonSet),
    /// the pods real containers.
    #[arg(long, requires = "kubernetes")]
    kubelets: bool,
    /// With --kubelets: the Tortie checkout whose deploy/ and
    /// scripts/image.sh are used [default: the one tortiectl was built
    /// from].
    #[arg(long, requires = "kubelets", value_name = "DIR")]
    repo: Option<PathBuf>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
enum Format {
    Table,
    Json,
}

fn main() -> ExitCode {
    let matches = Cli::command().get_matches();
    let cli = match Cli::from_arg_matches(&matches) {
        Ok(cli) => cli,
        Err(e) => e.exit(),
    };
    // Whether the datastore was named (flag or environment), and the admin
    // address on the command line: they choose where `node status` reads.
    let named = |id: &str| {
        let source = matches.value_source(id).or_else(|| {
            matches
                .subcommand_matches("node")
                .and_then(|m| m.subcommand_matches("status"))
                .and_then(|m| m.value_source(id))
        });
        source.is_some_and(|s| s != ValueSource::DefaultValue)
    };
    let given = Given {
        datastore: named("datastore"),
        admin_flag: matches!(
            matches
                .subcommand_matches("node")
                .and_then(|m| m.subcommand_matches("status"))
                .and_then(|m| m.value_source("admin")),
            Some(ValueSource::CommandLine)
        ),
    };
    match run(cli, given) {
        Ok(()) => ExitCode::SUCCESS,
        Err(_) if interrupt::interrupted() => {
            eprintln!("tortiectl: interrupted; the lab is torn down");
            ExitCode::from(130)
        }
        Err(e) => {
            eprintln!("tortiectl: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// What the user named, beyond the parsed values.
#[derive(Clone, Copy, Debug, Default)]
struct Given {
    /// `--datastore` or `TORTIE_DATASTORE`.
    datastore: bool,
    /// `--admin` on the command line (not from `TORTIE_ADMIN`).
    admin_flag: bool,
}

/// Where `node status` reads: `--node` reads the datastore; an admin
/// address (flag or `TORTIE_ADMIN`) reads that agent; a datastore named
/// without either reads every node's status from it; nothing named reads
/// the local agent, as before the datastore mode existed.
fn status_source(
    admin: Option<SocketAddr>,
    node: Option<String>,
    given: Given,
) -> Result<StatusSource> {
    Ok(match (node, admin) {
        (Some(_), Some(_)) if given.admin_flag => {
            bail!("--node reads the datastore, --admin one node's agent: give one of them")
        }
        (Some(node), _) => StatusSource::Datastore(Some(node)),
        (None, Some(admin)) => StatusSource::Admin(admin),
        (None, None) if given.datastore => StatusSource::Datastore(None),
        (None, None) => StatusSource::Admin(DEFAULT_ADMIN.parse().expect("a socket address")),
    })
}

fn run(cli: Cli, given: Given) -> Result<()> {
    match cli.command {
        Command::Node {
            what:
                NodeCommand::Status {
                    admin,
                    node,
                    output,
                },
        } => match status_source(admin, node, given)? {
            StatusSource::Admin(admin) => {
                let status = node_status::fetch(admin)?;
                match output {
                    Format::Json => println!("{}", serde_json::to_string_pretty(&status)?),
                    Format::Table => print!("{}", node_status::render(&status)),
                }
            }
            StatusSource::Datastore(node) => {
                let setting = parse_datastore(&cli.datastore, &cli.etcd_prefix)
                    .map_err(|e| anyhow::anyhow!("--datastore: {e}"))?;
                tokio::runtime::Runtime::new()?.block_on(async {
                    let store = resources::open(&setting).await?;
                    let now = unix_now();
                    let view = node_statuses::fetch(&store, node.as_deref(), now).await?;
                    match output {
                        Format::Json => println!("{}", serde_json::to_string_pretty(&view)?),
                        Format::Table => print!("{}", node_statuses::render(&view, now)),
                    }
                    anyhow::Ok(())
                })?;
            }
        },
        Command::Routes { admin, output } => {
            let r = routes::fetch(admin)?;
            match output {
                Format::Json => println!("{}", serde_json::to_string_pretty(&r)?),
                Format::Table => print!("{}", routes::render(&r)),
            }
        }
        Command::Explain {
            target,
            admin,
            output,
        } => {
            let e = explain::fetch(admin, &target)?;
            match output {
                Format::Json => println!("{}", serde_json::to_string_pretty(&e)?),
                Format::Table => {
                    let now = std::time::SystemTime::now()
                        .duration_since(std::time::UNIX_EPOCH)
                        .map_or(0, |d| d.as_millis() as u64);
                    print!("{}", explain::render(&e, now));
                }
            }
        }
        Command::Lab { what } => lab(what)?,
        other => {
            let setting = parse_datastore(&cli.datastore, &cli.etcd_prefix)
                .map_err(|e| anyhow::anyhow!("--datastore: {e}"))?;
            tokio::runtime::Runtime::new()?.block_on(store_command(other, setting))?;
        }
    }
    Ok(())
}

async fn store_command(command: Command, setting: DatastoreSetting) -> Result<()> {
    let store = resources::open(&setting).await?;
    match command {
        Command::Get { kind, name, output } => {
            let kind = resources::parse_kind(&kind)?;
            print!(
                "{}",
                resources::get(&store, kind, name.as_deref(), output).await?
            );
        }
        Command::Apply { filename } => {
            let text = read(&filename)?;
            for line in resources::apply(&store, &setting, &text).await? {
                println!("{line}");
            }
        }
        Command::Delete {
            kind,
            name,
            filename,
        } => {
            let keys: Vec<Key> = match (kind, name, filename) {
                (Some(kind), Some(name), None) => {
                    vec![Key::new(resources::parse_kind(&kind)?, name)]
                }
                (None, None, Some(f)) => load_documents(&read(&f)?)
                    .map_err(|e| anyhow::anyhow!("{}: {e}", f.display()))?
                    .resources
                    .iter()
                    .map(|r| r.key())
                    .collect(),
                _ => bail!("delete KIND NAME, or delete -f FILE"),
            };
            for key in keys {
                println!("{}", resources::delete(&store, &setting, &key).await?);
            }
        }
        Command::Ipam {
            what: IpamCommand::Show { show_blocks },
        } => {
            print!("{}", ipam::show(&store, show_blocks).await?);
        }
        Command::Node { .. }
        | Command::Routes { .. }
        | Command::Explain { .. }
        | Command::Lab { .. } => {
            unreachable!("handled above")
        }
    }
    Ok(())
}

/// Seconds since the Unix epoch.
fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

fn read(path: &PathBuf) -> Result<String> {
    std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))
}

fn lab(what: LabCommand) -> Result<()> {
    match what {
        LabCommand::Up(args) | LabCommand::Demo(args)
            if !nix::unistd::Uid::effective().is_root() =>
        {
            let _ = args;
            bail!("the lab makes network namespaces: run it as root")
        }
        LabCommand::Up(args) => {
            let mut lab = build(&args)?;
            print!("{}", report::render(&lab));
            interrupt::check()?;
            lab.keep();
            let pod = lab.pods.first().map(|p| p.name.clone()).unwrap_or_default();
            let enter = if lab.spec.kubelets {
                let ours = tortie_ctl::lab::kube::cache().join("bin/kubectl");
                let kubectl = if ours.exists() {
                    ours.display().to_string()
                } else {
                    "kubectl".into()
                };
                format!(
                    "ip netns exec {} {kubectl} --kubeconfig {} exec -it {pod} -- sh",
                    lab.router,
                    lab.kubeconfig().display()
                )
            } else {
                let ns = lab.pods.first().map(|p| p.ns.clone()).unwrap_or_default();
                format!("ip netns exec {ns} sh")
            };
            println!(
                "\nThe lab runs. Enter a pod: {enter}\n\
                 A node's status: ip netns exec {} tortiectl node status\n\
                 Logs and datastore: {}\nTear down: tortiectl lab down --name {}",
                lab.nodes[0].ns,
                lab.spec.dir.display(),
                lab.spec.name
            );
        }
        LabCommand::Demo(args) => {
            let lab = build(&args)?;
            print!("{}", report::render(&lab));
            let (_, all) = report::matrix(&lab);
            drop(lab);
            interrupt::check()?;
            if !all {
                bail!("some pods could not reach each other (see the matrix above)");
            }
            println!("\nlab: OK: every pod reaches every other; the lab is torn down");
        }
        LabCommand::Status(name) => {
            let lab = Lab::load(&name.root.join(&name.name))?;
            print!("{}", report::render(&lab));
        }
        LabCommand::Down(name) => {
            let mut lab = Lab::load(&name.root.join(&name.name))?;
            lab.down();
            println!("lab {}: torn down", name.name);
        }
    }
    Ok(())
}

/// Builds a lab and waits until its pods reach each other; Ctrl-C (or
/// SIGTERM, SIGHUP) on the way tears it down.
fn build(args: &LabArgs) -> Result<Lab> {
    interrupt::install(&args.lab.name)?;
    let bin_dir = match &args.bin_dir {
        Some(d) => d.clone(),
        None => std::env::current_exe()?
            .parent()
            .context("tortiectl has no directory")?
            .to_path_buf(),
    };
    let mut spec = LabSpec::new(&args.lab.name, args.nodes, &args.lab.root, &bin_dir);
    spec.pods_per_node = args.pods_per_node;
    spec.encap = args.encap;
    spec.stack = args.stack;
    spec.etcd = args.etcd;
    spec.kubernetes = args.kubernetes;
    spec.kubelets = args.kubelets;
    let (lab, within) = if args.kubelets {
        // Built from a checkout: its deploy/ and scripts/ are beside ctl/.
        let repo = args
            .repo
            .clone()
            .unwrap_or_else(|| PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/..")));
        let say = &mut |m: String| eprintln!("lab: {m}");
        (Lab::up_deployed(spec, &repo, say)?, deployed::MESH_WITHIN)
    } else {
        eprintln!(
            "lab: building {} nodes in network namespaces ...",
            args.nodes
        );
        (Lab::up(spec)?, std::time::Duration::from_secs(30))
    };
    match lab.wait_full_mesh(within) {
        Ok(t) => eprintln!(
            "lab: every pod reaches every other after {:.1} s",
            t.as_secs_f64()
        ),
        Err(e) => eprintln!("lab: {e:#}"),
    }
    interrupt::check()?;
    Ok(lab)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_status_reads_where_the_user_points() {
        let admin: SocketAddr = "127.0.0.1:9199".parse().unwrap();
        let local = StatusSource::Admin(DEFAULT_ADMIN.parse().unwrap());
        let given = |datastore, admin_flag| Given {
            datastore,
            admin_flag,
        };
        // Nothing named: the local agent, as always.
        assert_eq!(
            status_source(None, None, given(false, false)).unwrap(),
            local
        );
        // A datastore named: every node's status.
        assert_eq!(
            status_source(None, None, given(true, false)).unwrap(),
            StatusSource::Datastore(None)
        );
        // An admin address wins over a datastore (the DaemonSet's pod has
        // both in its environment).
        assert_eq!(
            status_source(Some(admin), None, given(true, false)).unwrap(),
            StatusSource::Admin(admin)
        );
        // --node: the datastore, also with TORTIE_ADMIN set; not with --admin.
        assert_eq!(
            status_source(Some(admin), Some("n2".into()), given(false, false)).unwrap(),
            StatusSource::Datastore(Some("n2".into()))
        );
        let e = status_source(Some(admin), Some("n2".into()), given(false, true)).unwrap_err();
        assert!(e.to_string().contains("give one of them"), "{e}");
    }
}
