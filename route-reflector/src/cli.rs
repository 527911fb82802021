//! The command line and the logging setup.

use std::io::IsTerminal;
use std::path::PathBuf;

use clap::{Parser, ValueEnum};
use tracing_subscriber::EnvFilter;

/// Tortie's BGP route reflector.
#[derive(Debug, Parser)]
#[command(name = "tortie-rr", version, about)]
pub struct Cli {
    /// The configuration file (YAML; see docs/tortie-rr.md).
    #[arg(long, value_name = "PATH")]
    pub config: PathBuf,
    /// Log filter: a level (error, warn, info, debug, trace) or
    /// tracing directives such as `info,bgp_speaker=debug`.
    #[arg(long, value_name = "FILTER", default_value = "info")]
    pub log_level: String,
    /// Log line format.
    #[arg(long, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    /// Where the graceful restart marker (`running`) is kept.
    #[arg(long, value_name = "DIR", default_value = "/var/lib/tortie-rr")]
    pub state_dir: PathBuf,
    /// Validate the configuration file and exit: 0 if valid, 1 with the
    /// error on stderr if not.
    #[arg(long)]
    pub check: bool,
}

/// How log lines look.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// Installs the global subscriber, logging to stderr.
pub fn init_logging(filter: &str, format: LogFormat) -> Result<(), String> {
    let filter = EnvFilter::try_new(filter).map_err(|e| {
        format!("--log-level: {filter:?} is not a level or filter directive ({e}); use e.g. info or info,bgp_speaker=debug")
    })?;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        // Colours only on a terminal, never in files or journald.
        .with_ansi(std::io::stderr().is_terminal());
    let result = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
    result.map_err(|e| format!("cannot install the logger: {e}"))
}
