//! `tortie-rr --config rr.yaml`: a BGP route reflector (RFC 4456).
//!
//! # Layout
//!
//! - `cli`: command line and logging setup.
//! - `app`: start-up, the main loop (signals) and shutdown.
//! - `speaker_config`: the user's file (`tortie_config::RrConfig`) to the
//!   speaker's `SpeakerConfig`.
//! - `state`: what the tasks share (speaker handle, running config, readiness).
//! - `admin`: HTTP `/status`, `/metrics`, `/healthz`, `/readyz`.
//! - `metrics`: Prometheus families built from the speaker's status.
//! - `reload`: SIGHUP and file-change reloads.
//! - `clients`: route reflector clients from the datastore.
//!
//! Logging, the graceful restart marker and the BGP metrics are shared with
//! tortie-node (crate `tortie-daemon`).
//!
//! The user reference is `docs/tortie-rr.md`.

use std::process::ExitCode;

use clap::Parser;

mod admin;
mod app;
mod cli;
mod clients;
mod metrics;
mod reload;
mod speaker_config;
mod state;

fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    if cli.check {
        return app::check(&cli.config);
    }
    if let Err(e) = tortie_daemon::logging::init(&cli.log_level, cli.log_format) {
        eprintln!("tortie-rr: {e}");
        return ExitCode::from(2);
    }
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("tortie-rr: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(app::run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e:#}");
            ExitCode::FAILURE
        }
    }
}
