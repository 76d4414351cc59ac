//! Errors of the profiler, each naming the file, key or value at fault.

use std::path::PathBuf;

/// What went wrong.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file or directory could not be read or written.
    #[error("{}: {cause}", path.display())]
    Io { path: PathBuf, cause: std::io::Error },
    /// A table file does not parse.
    #[error("{path}:{line}: {message}")]
    Malformed { path: PathBuf, line: usize, message: String },
    /// A table lacks a layer that a sub-network needs.
    #[error("{path}: no entry for layer '{key}'")]
    MissingKey { path: PathBuf, key: String },
    /// No table for a resolution.
    #[error("{dir}: no look-up table for resolution {resolution} (tables: {available:?})")]
    NoTable { dir: PathBuf, resolution: usize, available: Vec<usize> },
    /// A directory holds no table.
    #[error("{dir}: no '<R>_lookup_table.json' or '<R>_lookup_table.yaml' file")]
    Empty { dir: PathBuf },
    /// A value is out of range.
    #[error("invalid {field}: {message}")]
    Invalid { field: String, message: String },
    /// From the supernet crate (configurations, weights).
    #[error(transparent)]
    Supernet(#[from] dynofa_supernet::Error),
}

/// Result with [`Error`].
pub type Result<T> = std::result::Result<T, Error>;
