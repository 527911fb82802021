//! Errors of loading and validating configuration files.

use std::path::PathBuf;

/// Why a configuration file was rejected. Every variant names where the
/// problem is; the ones a user causes also name the value and what is
/// allowed.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// What the OS said.
        #[source]
        source: std::io::Error,
    },
    /// The text is not YAML (syntax error, duplicate key, several
    /// documents); the message carries line and column.
    #[error("not valid YAML: {0}")]
    Yaml(String),
    /// The YAML does not have the expected shape: unknown field, missing
    /// field, wrong type. `field` is the full path, e.g. `peers[1].holdTime`.
    #[error("{field}: {message}")]
    Schema {
        /// Full path of the field.
        field: String,
        /// serde's message: unknown field and the allowed ones, missing
        /// field, or the type found and the type expected.
        message: String,
    },
    /// A value of the right type that is not allowed.
    #[error("{field}: {value}: {allowed}")]
    Invalid {
        /// Full path of the field, e.g. `peers[0].holdTime`.
        field: String,
        /// The offending value as written (secrets are replaced by their
        /// length).
        value: String,
        /// What is wrong and what is allowed instead.
        allowed: String,
    },
    /// Any of the above, with the line of the file it is about. Displays
    /// as the inner error; callers that know the file name print
    /// `file:line: error`.
    #[error("{error}")]
    At {
        /// 1-based line number.
        line: usize,
        /// The error itself.
        error: Box<ConfigError>,
    },
}

// ===== impl ConfigError =====

impl ConfigError {
    /// Shorthand for [`ConfigError::Invalid`].
    pub fn invalid(
        field: impl Into<String>,
        value: impl std::fmt::Display,
        allowed: impl Into<String>,
    ) -> ConfigError {
        ConfigError::Invalid {
            field: field.into(),
            value: value.to_string(),
            allowed: allowed.into(),
        }
    }

    /// The path of the offending field, if the error is about one.
    pub fn field(&self) -> Option<&str> {
        match self {
            ConfigError::Schema { field, .. } | ConfigError::Invalid { field, .. } => Some(field),
            ConfigError::At { error, .. } => error.field(),
            ConfigError::Read { .. } | ConfigError::Yaml(_) => None,
        }
    }

    /// The 1-based line of the file the error is about, when known.
    pub fn line(&self) -> Option<usize> {
        match self {
            ConfigError::At { line, .. } => Some(*line),
            _ => None,
        }
    }

    /// `file:line: error` (or `file: error` without a line), the way
    /// compilers print it so editors can jump there.
    pub fn in_file(&self, file: &std::path::Path) -> String {
        match (self, self.line()) {
            // Already names the file.
            (ConfigError::Read { .. }, _) => self.to_string(),
            (_, Some(line)) => format!("{}:{line}: {self}", file.display()),
            (_, None) => format!("{}: {self}", file.display()),
        }
    }
}
