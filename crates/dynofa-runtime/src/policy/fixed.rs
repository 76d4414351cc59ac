//! `static:LEVEL`: one level on every thread, never switches (the comparison baseline).

use super::{Decision, Observation, Policy, Reason};
use crate::model::FamilyModel;
use crate::requirements::Requirements;

/// Runs one level on all threads.
#[derive(Debug, Clone)]
pub struct Fixed {
    level: usize,
}

impl Fixed {
    /// Always `level`.
    pub fn new(level: usize) -> Self {
        Fixed { level }
    }
}

impl Policy for Fixed {
    fn name(&self) -> String {
        format!("static:{}", self.level)
    }

    fn start(&mut self, model: &FamilyModel, _: &Requirements, max_threads: usize) -> Decision {
        Decision { level: self.level.min(model.levels().saturating_sub(1)), threads: max_threads, reason: Reason::Start }
    }

    fn decide(&mut self, o: &Observation) -> Decision {
        Decision { level: o.level, threads: o.threads, reason: Reason::Hold }
    }
}
