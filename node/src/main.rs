//! `tortie-node`: the node agent. One process per node (a DaemonSet pod):
//! it registers the node, runs the BGP speaker (node-to-node mesh, route
//! reflectors, ToR peers, as the datastore's resources say) and programs
//! the node's kernel routes through felix.
//!
//! # Layout
//!
//! - `cli`: flags and environment; `app`: start-up, signals, shutdown.
//! - `underlay`: the node's address (given or autodetected).
//! - `register`: the node's Node object and tunnel addresses.
//! - watchers: `tortie_datastore::follow`, one per kind, relisting on gaps.
//! - `cluster`: the agent's picture of the resources.
//! - `peers` (pure): resources -> the speaker's configuration;
//!   `peer_filters` (pure): a BGPPeer's BGPFilters -> its rules.
//! - `routes` (pure): resources + best paths -> originated routes and
//!   felix's desired state.
//! - `services` (pure): service ranges + Services + Endpoints -> the
//!   service prefixes the node announces (Kubernetes datastore only).
//! - `agent`: the owner task joining datastore, speaker and felix:
//!   `agent/mod.rs` (state, main loop, dispatch), `agent/inputs.rs`
//!   (one handler per input), `agent/recompute.rs` (picture -> speaker,
//!   felix, tunnel addresses), `agent/publish.rs` (the status snapshot).
//! - `housekeeping`: workload interface GC, `tunl0`, restart marker.
//! - `status`, `explain`, `admin`, `metrics`: `/status`, `/routes`,
//!   `/healthz`, `/readyz`, `/metrics`; `why`, `why_bgp` (pure) and
//!   `why_fetch`: `/explain` (`tortiectl explain`).
//! - `status_report`: the node's sessions into the datastore as
//!   `CalicoNodeStatus` (`tortiectl node status` of every node).
//! - `object_status`: the node's problems with a BGPConfiguration,
//!   BGPPeer or IPPool onto that object's status (Kubernetes datastore).
//!
//! The user reference is `docs/operations.md`.

use std::process::ExitCode;

use clap::Parser;
use tortie_config::node::{LogFormatSetting, NodeSettings, NodeSettingsLayer};
use tortie_daemon::logging::{self, LogFormat};

mod admin;
mod agent;
mod app;
mod cli;
mod cluster;
mod explain;
mod housekeeping;
mod metrics;
mod object_status;
mod peer_filters;
mod peers;
mod reachable;
mod register;
mod routes;
mod services;
mod status;
mod status_report;
mod underlay;
mod why;
mod why_bgp;
mod why_fetch;

fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    let file = match &cli.config {
        Some(path) => match NodeSettingsLayer::load(path) {
            Ok(layer) => layer,
            Err(e) => {
                eprintln!("tortie-node: {e}");
                return ExitCode::from(2);
            }
        },
        None => NodeSettingsLayer::default(),
    };
    let hostname = nix::unistd::gethostname()
        .ok()
        .and_then(|h| h.into_string().ok())
        .unwrap_or_default();
    let settings = match NodeSettings::from_layer(cli.layer().over(file), &hostname) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("tortie-node: {e}");
            return ExitCode::from(2);
        }
    };
    let format = match settings.log_format {
        LogFormatSetting::Text => LogFormat::Text,
        LogFormatSetting::Json => LogFormat::Json,
    };
    if let Err(e) = logging::init(&settings.log_level, format) {
        eprintln!("tortie-node: {e}");
        return ExitCode::from(2);
    }
    // An agent's work is light: one thread runs every task (as BIRD runs
    // one event loop), so a route going from the BGP session to the
    // speaker, the agent, felix and netlink hands over between tasks, not
    // threads; a small pool runs the blocking datastore calls. Tokio's
    // defaults (a worker per core, up to 512 blocking threads) cost memory
    // per thread (a stack, and a malloc arena each). Measured on the
    // 10-node lab bench, with the agent giving memory back after a
    // listing: RSS 13.0 -> 11.4 MiB per agent, anonymous 3.9 -> 2.7 MiB
    // (two workers before); CPU per block claim the same within noise.
    // The pool threads share the main thread's malloc arena: on the
    // 10-node lab an agent's anonymous memory went 1.9 -> 1.6 MiB (each
    // pool thread had kept an arena of 100-170 KiB).
    bgp_speaker::limit_malloc_arenas(1);
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .max_blocking_threads(4)
        .thread_keep_alive(std::time::Duration::from_secs(2))
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("tortie-node: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = if cli.check {
        runtime.block_on(app::check(&settings))
    } else {
        runtime.block_on(app::run(settings))
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e:#}");
            eprintln!("tortie-node: {e:#}");
            ExitCode::FAILURE
        }
    }
}
