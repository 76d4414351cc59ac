//! Errors of the profiler, each naming the file, key or value at fault.

use std::path::PathBuf;

/// What went wrong.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file or directory could not be read or written.
    #[error("{}: {cause}", path.display())]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The OS error (part of the message, not a separate cause).
        cause: std::io::Error,
    },
    /// A table file does not parse.
    #[error("{path}:{line}: {message}")]
    Malformed {
        /// The table file.
        path: PathBuf,
        /// Where (1-based; 0 when the whole file).
        line: usize,
        /// What is wrong.
        message: String,
    },
    /// A table lacks a layer that a sub-network needs.
    #[error("{path}: no entry for layer '{key}'")]
    MissingKey {
        /// The table file.
        path: PathBuf,
        /// The layer's key.
        key: String,
    },
    /// No table for a resolution.
    #[error("{dir}: no look-up table for resolution {resolution} (tables: {available:?})")]
    NoTable {
        /// The table directory.
        dir: PathBuf,
        /// The resolution asked for.
        resolution: usize,
        /// The resolutions it has tables for.
        available: Vec<usize>,
    },
    /// A directory holds no table.
    #[error("{dir}: no '<R>_lookup_table.json' or '<R>_lookup_table.yaml' file")]
    Empty {
        /// The directory.
        dir: PathBuf,
    },
    /// A value outside what it may be (the same shape in every dynofa crate).
    #[error("invalid `{field}`: got {value}, expected {expected}")]
    InvalidValue {
        /// Field (with index or file) at fault.
        field: String,
        /// What was found.
        value: String,
        /// What would have been accepted.
        expected: String,
    },
    /// From the supernet crate (configurations, weights).
    #[error(transparent)]
    Supernet(#[from] dynofa_supernet::Error),
}

/// Result with [`Error`].
pub type Result<T> = std::result::Result<T, Error>;
