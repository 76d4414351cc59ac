//! Policies: after each frame, which processor, level and thread count run the next one.
//!
//! - [`Dofa`]: the reference Dynamic-OFA manager (step down one level when the 20-frame
//!   mean latency exceeds the target, step up when accuracy is below the floor), on the
//!   first processor only.
//! - [`Predictive`]: ours — estimates each processor's slowdown from observed vs predicted
//!   latency and jumps to the best (processor, level, threads) predicted to meet the target.
//! - [`Fixed`]: one level of one processor, never switches (`static:LEVEL`,
//!   `static:DEVICE:LEVEL`, `@T` for a fixed thread count too).

mod dofa;
mod fixed;
mod predictive;

use std::fmt;

pub use dofa::Dofa;
pub use fixed::Fixed;
pub use predictive::{Knobs, Predictive, PredictiveOptions};

use dynofa_device::Processor;

use crate::error::{Error, Result};
use crate::level_table::LevelTable;
use crate::monitor::SystemSample;
use crate::requirements::Requirements;

/// What runs a frame: a processor (an index into the runtime's families), a level of its
/// family, and a thread count (always 1 on a GPU).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Configuration {
    /// The processor: index of its family.
    pub device: usize,
    /// The level of that family (0 = the smallest).
    pub level: usize,
    /// Threads.
    pub threads: usize,
}

/// The thread counts `model` can run on when the CPU allows `cpu_threads`: 1 on a GPU.
pub fn thread_counts(model: &LevelTable, cpu_threads: usize) -> usize {
    match model.processor {
        Processor::Cpu => cpu_threads.max(1),
        Processor::Gpu => 1,
    }
}

/// What a policy sees after a frame.
#[derive(Debug, Clone, Copy)]
pub struct Observation<'a> {
    /// Frames run so far, this one included.
    pub frame: u64,
    /// Seconds since the runtime started.
    pub t_s: f64,
    /// What ran the frame.
    pub config: Configuration,
    /// Its measured latency (the forward), in ms.
    pub latency_ms: f64,
    /// The latest OS reading.
    pub system: SystemSample,
    /// The application's requirements now.
    pub requirements: &'a Requirements,
    /// Each processor's family, in the runtime's order.
    pub models: &'a [LevelTable],
    /// The most threads the runtime may use on the CPU.
    pub max_threads: usize,
}

impl Observation<'_> {
    /// The family of the processor that ran the frame.
    pub fn model(&self) -> &LevelTable {
        &self.models[self.config.device]
    }

    /// Predicted accuracy of `config`'s level.
    pub fn accuracy(&self, config: Configuration) -> f64 {
        self.models[config.device].accuracy[config.level]
    }
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

/// What runs the next frame, and why.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    /// Processor, level and threads for the next frame.
    pub config: Configuration,
    /// Why.
    pub reason: Reason,
}

impl Decision {
    /// `config`, for `reason`.
    pub fn new(config: Configuration, reason: Reason) -> Self {
        Decision { config, reason }
    }
}

/// Chooses the configuration of the next frame from what the last one showed.
pub trait Policy: Send {
    /// Name shown in traces and reports.
    fn name(&self) -> String;

    /// The configuration of the first frame, for the families `models` (one per
    /// processor) and up to `max_threads` threads on the CPU.
    fn start(&mut self, models: &[LevelTable], requirements: &Requirements, max_threads: usize) -> Decision;

    /// The configuration of the next frame after `observation`.
    fn decide(&mut self, observation: &Observation) -> Decision;
}

/// A policy by its command-line name, for the families `models` (one per processor):
/// `dofa`, `predictive`, `predictive:levels` (levels only, the CPU on every thread),
/// `predictive:threads:LEVEL` (threads only, at a level of the first family),
/// `static:LEVEL` (a level of the CPU's family, or of the only family: an index, or
/// `smallest` / `largest`; append `@T` for T threads instead of all) or
/// `static:DEVICE:LEVEL` (`DEVICE`: `cpu`, `gpu` — the first GPU family — or a family's
/// device as `gpu:N`).
pub fn by_name(name: &str, models: &[LevelTable]) -> Result<Box<dyn Policy>> {
    let expected = "dofa, predictive, predictive:levels, predictive:threads:LEVEL, static:LEVEL[@T] or static:DEVICE:LEVEL (LEVEL an index, smallest or largest; DEVICE cpu, gpu or gpu:N)";
    let level_of = |text: &str, levels: usize, device: &str| -> Result<usize> {
        let level = match text {
            "smallest" => 0,
            "largest" => levels.saturating_sub(1),
            _ => text.parse().map_err(|_| Error::invalid("policy", name, expected))?,
        };
        if level >= levels {
            return Err(Error::invalid("policy", name, format!("a level in 0..{levels} (the {device} family has {levels})")));
        }
        Ok(level)
    };
    match name {
        "dofa" => Ok(Box::new(Dofa::default())),
        "predictive" => Ok(Box::new(Predictive::new(PredictiveOptions::default()))),
        "predictive:levels" => Ok(Box::new(Predictive::new(PredictiveOptions { knobs: Knobs::LevelsOnly, ..PredictiveOptions::default() }))),
        _ if name.starts_with("predictive:threads:") => {
            let first = models.first().map_or((usize::MAX, "first"), |m| (m.levels(), m.device.as_str()));
            let level = level_of(&name["predictive:threads:".len()..], first.0, first.1)?;
            Ok(Box::new(Predictive::new(PredictiveOptions { knobs: Knobs::ThreadsOnly { level }, ..PredictiveOptions::default() })))
        }
        _ => {
            let pinned = name.strip_prefix("static:").ok_or_else(|| Error::invalid("policy", name, expected))?;
            let (pinned, threads) = match pinned.split_once('@') {
                Some((pinned, t)) => (
                    pinned,
                    Some(t.parse::<usize>().ok().filter(|&t| t > 0).ok_or_else(|| Error::invalid("policy", name, "@T with T a positive thread count"))?),
                ),
                None => (pinned, None),
            };
            let only = match models {
                [model] => model.device.as_str(),
                _ => "cpu",
            };
            let (device, level) = pinned.rsplit_once(':').unwrap_or((only, pinned));
            let devices = models.iter().map(|m| m.device.as_str()).collect::<Vec<_>>().join(", ");
            let index = models
                .iter()
                .position(|m| m.device == device || m.processor.to_string() == device)
                .ok_or_else(|| Error::invalid("policy", name, format!("a processor among those running ({devices})")))?;
            let level = level_of(level, models[index].levels(), &models[index].device)?;
            Ok(Box::new(Fixed::new(index, &models[index], level).with_threads(threads)))
        }
    }
}

#[cfg(test)]
pub(crate) mod simulation;
