//! # dynofa-profiler
//!
//! Latency look-up tables (LUTs) for the search and the run-time manager:
//! - [`keys`]: a sub-network's layers as table keys (Dynamic-OFA's rule);
//! - [`table`]: reading both published formats (Dynamic-OFA's JSON, OFA's YAML) and
//!   predicting a sub-network's latency as the sum of its layers' entries;
//! - [`measure`]: building tables on this machine for the fast path (per resolution, per
//!   thread count), resumable;
//! - [`validate`]: measuring random sub-networks end to end against the tables'
//!   prediction, and fitting a linear correction on held-out data;
//! - [`machine`]: what the tables were measured on (their metadata).

pub mod error;
pub mod keys;
pub mod machine;
pub mod measure;
pub mod table;
pub mod validate;

pub use error::{Error, Result};
pub use keys::{all_layer_keys, layer_keys, LayerKey};
pub use measure::{build_tables, BuildOptions};
pub use table::{Entry, LatencyTables, Table};
pub use validate::{validate, Correction, Validation};
