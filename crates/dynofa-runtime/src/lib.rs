//! The run-time manager of dynofa: runs a family of sub-networks in-process on each
//! processor it is given — on the CPU one shared copy of the supernet's weights, on a GPU
//! each level resident on the device — and after every frame lets a [`Policy`] pick the
//! processor, level (and thread count) of the next one so that the latency target holds
//! while accuracy stays as high as the machine allows.
//!
//! - [`runtime`]: the [`Runtime`] over a family per processor: requirements, `infer`,
//!   calibration, observers, statistics.
//! - [`level_table`]: each level's accuracy and idle latency as the policies see them.
//! - [`policy`]: the policies (`dofa`, `predictive` and its single-knob ablations, `static`).
//! - [`monitor`]: the latency window and what the OS says about the machine.
//! - [`contention`]: competing loads (busy, memory-streaming, DNN, GPU; intermittent
//!   windows) for experiments.
//! - [`trace`]: one row per frame (CSV) and a run's summary; `plot` (the `plot` feature):
//!   the trace drawn as SVG or PNG.
//! - [`oracle`]: the hindsight oracles a run is judged against; [`stats`]: the order
//!   statistics every latency figure uses.
//!
//! ```no_run
//! # fn main() -> dynofa_runtime::Result<()> {
//! use dynofa_runtime::{policy, Frame, Requirements, Runtime};
//! # let supernet: dynofa_supernet::Supernet = todo!();
//! let mut runtime = Runtime::from_family_file(&supernet, "family.ron".as_ref(), 2)?
//!     .with_requirements(Requirements::latency(30.0)?)?
//!     .with_policy(policy::by_name("predictive", &[])?);
//! runtime.calibrate(3)?;
//! let pixels = vec![0u8; 320 * 240 * 3];
//! let result = runtime.infer(&Frame::rgb(320, 240, &pixels)?)?;
//! println!("class {} by level {} in {:.1} ms", result.class, result.level, result.latency_ms);
//! # Ok(()) }
//! ```

pub mod contention;
pub mod error;
pub mod frame;
pub mod level_table;
pub mod monitor;
pub mod oracle;
#[cfg(feature = "plot")]
pub mod plot;
pub mod policy;
pub mod requirements;
pub mod runtime;
pub mod stats;
pub mod trace;

pub use error::{Error, Result};
pub use frame::Frame;
pub use level_table::LevelTable;
pub use policy::{Configuration, Decision, Policy, Reason};
pub use requirements::{Priority, Requirements};
pub use runtime::{Calibration, Event, Inference, Observer, ProcessorFamily, Runtime, Stats};
