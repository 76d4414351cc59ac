//! # dynofa-profiler
//!
//! Latency look-up tables (LUTs) for the search and the run-time manager:
//! - [`keys`]: a sub-network's layers as table keys (Dynamic-OFA's rule);
//! - [`table`]: reading both published formats (Dynamic-OFA's JSON, OFA's YAML) and
//!   predicting a sub-network's latency as the sum of its layers' entries.

pub mod error;
pub mod keys;
pub mod table;

pub use error::{Error, Result};
pub use keys::{all_layer_keys, layer_keys, LayerKey};
pub use table::{Entry, LatencyTables, Table};
