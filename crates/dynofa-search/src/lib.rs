//! # dynofa-search
//!
//! Choosing sub-networks for a device:
//! - [`predictor`]: OFA's accuracy predictor (an MLP on a one-hot encoding), loaded from
//!   the official file;
//! - [`cost`]: efficiency models behind one trait (LUT latency, measured latency,
//!   MFLOPs, parameters);
//! - [`space`]: OFA's search space, mutation and crossover;
//! - [`nsga2`]: multi-objective search (accuracy ↑, cost ↓) in one pass;
//! - [`evolution`]: OFA's constrained single-objective evolution (the reference);
//! - [`family`]: picking a family's levels along the front;
//! - [`train`]: training a predictor on measured accuracies (CSV).

pub mod cost;
pub mod error;
pub mod evolution;
pub mod family;
pub mod nsga2;
pub mod predictor;
pub mod space;
pub mod train;

pub use error::{Error, Result};
pub use predictor::AccuracyPredictor;
