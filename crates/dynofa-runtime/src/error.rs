//! Errors of the runtime.

use std::path::PathBuf;

/// What can go wrong when building or running the runtime.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A value outside what it may be (requirements, load spec, level index, …; the same
    /// shape in every dynofa crate).
    #[error("invalid `{field}`: got {value}, expected {expected}")]
    InvalidValue {
        /// Field (with index or file) at fault.
        field: String,
        /// What was found.
        value: String,
        /// What would have been accepted.
        expected: String,
    },
    /// A file could not be read or written.
    #[error("{}: {cause}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error (part of the message, not a separate cause).
        cause: std::io::Error,
    },
    /// The family store or the supernet refused something.
    #[error(transparent)]
    Model(#[from] dynofa_supernet::Error),
    /// A competing process could not be started or stopped.
    #[error("load process: {0}")]
    Load(String),
    /// A plot could not be drawn.
    #[error("plot {}: {detail}", path.display())]
    Plot {
        /// The plot's file.
        path: PathBuf,
        /// What failed.
        detail: String,
    },
}

impl Error {
    /// An [`Error::InvalidValue`].
    pub fn invalid(field: impl Into<String>, value: impl ToString, expected: impl Into<String>) -> Self {
        Error::InvalidValue { field: field.into(), value: value.to_string(), expected: expected.into() }
    }

    /// An [`Error::Io`] about `path`.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io { path: path.into(), cause: source }
    }
}

/// Result with [`Error`].
pub type Result<T> = std::result::Result<T, Error>;
