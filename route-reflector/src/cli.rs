//! The command line.

use std::path::PathBuf;

use clap::Parser;
pub use tortie_daemon::logging::LogFormat;

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
