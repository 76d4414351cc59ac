//! # dynofa-profiler
//!
//! Latency look-up tables (LUTs) for the search and the run-time manager:
//! - [`keys`]: a sub-network's layers as table keys (Dynamic-OFA's rule);
//! - [`table`]: reading both published formats (Dynamic-OFA's JSON, OFA's YAML) and
//!   predicting a sub-network's latency as the sum of its layers' entries;
//! - [`rounds`]: timing on a noisy machine: interleaved rounds beside a canary workload,
//!   estimates from the quiet rounds, an adaptive stop;
//! - [`measure`](mod@measure): what a profile times on this machine for the fast path (tables per
//!   resolution and thread count, validation and additivity networks), with those rounds;
//! - [`noise`]: how noisy the machine was while it was profiled;
//! - [`validate`](mod@validate): the tables' predictions against networks measured whole, with a
//!   correction chosen by cross-validation;
//! - [`compare`]: how far two or more table sets agree on random sub-networks;
//! - [`machine`]: what the tables were measured on (their metadata).

pub mod compare;
pub mod error;
pub mod keys;
pub mod machine;
pub mod measure;
pub mod noise;
pub mod rounds;
pub mod table;
pub mod validate;

pub use error::{Error, Result};
pub use keys::{LayerKey, all_layer_keys, layer_keys};
pub use measure::{Profile, ProfileOptions, measure};
pub use table::{Entry, LatencyTables, Table};
pub use validate::{Correction, Validation, validate};
