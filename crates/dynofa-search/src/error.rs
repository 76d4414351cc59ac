//! Errors of the search, naming the value or file at fault.

/// What went wrong.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// From the supernet crate (configurations, files).
    #[error(transparent)]
    Supernet(#[from] dynofa_supernet::Error),
    /// From the profiler (tables: a missing key names it).
    #[error(transparent)]
    Profiler(#[from] dynofa_profiler::Error),
    /// No sub-network meets a constraint.
    #[error("no sub-network meets {name} ≤ {limit} (the cheapest of {tried} tried costs {cheapest:.4})")]
    Infeasible { name: String, limit: f64, tried: usize, cheapest: f64 },
    /// A setting out of range.
    #[error("invalid {field}: {message}")]
    Invalid { field: String, message: String },
}

/// Result with [`Error`].
pub type Result<T> = std::result::Result<T, Error>;
