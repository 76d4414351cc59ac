//! What the application asks of the runtime.

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// Which requirement wins when no level meets both.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum Priority {
    /// Meet the latency target, dropping below the accuracy floor if needed (default).
    #[default]
    Latency,
    /// Keep the accuracy floor, running over the latency target if needed.
    Accuracy,
}

/// The latency target, an optional accuracy floor and which wins when both cannot hold.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Requirements {
    /// Latency target per frame (the DNN's forward), in milliseconds.
    pub target_ms: f64,
    /// Lowest acceptable predicted accuracy (a fraction, e.g. 0.78), if any.
    pub min_accuracy: Option<f64>,
    /// Which one wins when no level meets both.
    pub priority: Priority,
}

impl Requirements {
    /// A latency target only.
    pub fn latency(target_ms: f64) -> Result<Self> {
        Requirements { target_ms, min_accuracy: None, priority: Priority::Latency }.validated()
    }

    /// Checks the values: a positive, finite target; a floor in (0, 1].
    pub fn validated(self) -> Result<Self> {
        if !(self.target_ms.is_finite() && self.target_ms > 0.0) {
            return Err(Error::invalid("latency target", format!("{} ms", self.target_ms), "a positive number of milliseconds"));
        }
        if let Some(a) = self.min_accuracy
            && !(a.is_finite() && a > 0.0 && a <= 1.0)
        {
            return Err(Error::invalid("accuracy floor", a, "a fraction in (0, 1], e.g. 0.78"));
        }
        Ok(self)
    }

    /// Whether a level of predicted accuracy `acc` meets the floor (always, without one).
    pub fn accepts_accuracy(&self, acc: f64) -> bool {
        self.min_accuracy.is_none_or(|floor| acc >= floor)
    }
}
