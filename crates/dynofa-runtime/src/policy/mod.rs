//! Policies: after each frame, which level and thread count run the next one.
//!
//! - [`Dofa`]: the reference Dynamic-OFA manager (step down one level when the 20-frame
//!   mean latency exceeds the target, step up when accuracy is below the floor).
//! - [`Predictive`]: ours — estimates the slowdown from observed vs predicted latency and
//!   jumps to the best (level, threads) predicted to meet the target.
//! - [`Fixed`]: one level, never switches (`static:LEVEL`).

mod dofa;
mod fixed;
mod predictive;

use std::fmt;

pub use dofa::Dofa;
pub use fixed::Fixed;
pub use predictive::{Predictive, PredictiveOptions};

use crate::error::{Error, Result};
use crate::model::FamilyModel;
use crate::monitor::SystemSample;
use crate::requirements::Requirements;

/// What a policy sees after a frame.
#[derive(Debug, Clone, Copy)]
pub struct Observation<'a> {
    /// Frames run so far, this one included.
    pub frame: u64,
    /// Seconds since the runtime started.
    pub t_s: f64,
    /// Level that ran the frame.
    pub level: usize,
    /// Threads that ran it.
    pub threads: usize,
    /// Its measured latency (the forward), in ms.
    pub latency_ms: f64,
    /// The latest OS reading.
    pub system: SystemSample,
    /// The application's requirements now.
    pub requirements: &'a Requirements,
    /// The family's levels.
    pub model: &'a FamilyModel,
    /// The most threads the runtime may use.
    pub max_threads: usize,
}

/// Why a policy chose what it chose.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    /// Nothing to change.
    Hold,
    /// Before the first frame.
    Start,
    /// Latency over the target: a faster configuration.
    Down,
    /// Room under the target: a more accurate configuration.
    Up,
    /// Below the accuracy floor: a more accurate level.
    Floor,
    /// No configuration is predicted to meet the target: the fastest one.
    Infeasible,
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Reason::Hold => "hold",
            Reason::Start => "start",
            Reason::Down => "down",
            Reason::Up => "up",
            Reason::Floor => "floor",
            Reason::Infeasible => "infeasible",
        })
    }
}

/// A level and thread count to run next, and why.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    /// Level for the next frame.
    pub level: usize,
    /// Threads for the next frame.
    pub threads: usize,
    /// Why.
    pub reason: Reason,
}

/// Chooses the configuration of the next frame from what the last one showed.
pub trait Policy: Send {
    /// Name shown in traces and reports.
    fn name(&self) -> String;

    /// The configuration of the first frame.
    fn start(&mut self, model: &FamilyModel, requirements: &Requirements, max_threads: usize) -> Decision;

    /// The configuration of the next frame after `observation`.
    fn decide(&mut self, observation: &Observation) -> Decision;
}

/// A policy by its command-line name: `dofa`, `predictive` or `static:LEVEL` (a level
/// index, or `smallest` / `largest`) for a family of `levels` levels.
pub fn by_name(name: &str, levels: usize) -> Result<Box<dyn Policy>> {
    let expected = "dofa, predictive or static:LEVEL (LEVEL an index, smallest or largest)";
    match name {
        "dofa" => Ok(Box::new(Dofa::default())),
        "predictive" => Ok(Box::new(Predictive::new(PredictiveOptions::default()))),
        _ => {
            let level = name.strip_prefix("static:").ok_or_else(|| Error::invalid("policy", name, expected))?;
            let index = match level {
                "smallest" => 0,
                "largest" => levels.saturating_sub(1),
                _ => level.parse().map_err(|_| Error::invalid("policy", name, expected))?,
            };
            if index >= levels {
                return Err(Error::invalid("policy", name, format!("a level in 0..{levels} (the family has {levels})")));
            }
            Ok(Box::new(Fixed::new(index)))
        }
    }
}

#[cfg(test)]
pub(crate) mod simulation;
