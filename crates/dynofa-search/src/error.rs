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
    Infeasible {
        /// The cost's name.
        name: String,
        /// Its limit.
        limit: f64,
        /// Sub-networks tried.
        tried: usize,
        /// The cheapest one's cost.
        cheapest: f64,
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
}

/// Result with [`Error`].
pub type Result<T> = std::result::Result<T, Error>;
